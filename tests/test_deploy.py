"""deploy/kubernetes.yaml: a Deployment + Service that agree with each other and with the image."""

import re
from pathlib import Path

import pytest
import yaml  # PyYAML, a dev dependency

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kubernetes.yaml"


@pytest.fixture(scope="module")
def documents() -> dict:
    docs = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert sorted(by_kind) == ["Deployment", "Service"] and len(docs) == 2
    return by_kind


@pytest.fixture(scope="module")
def container(documents) -> dict:
    containers = documents["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def dockerfile_final_stage() -> str:
    return (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]


def memory_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"([0-9.]+)([KMGT]i?)?", quantity).groups()
    scale = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    return int(float(number) * scale[unit])


def cpu_millis(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def test_deployment_selects_its_pods_and_the_service_them(documents):
    deployment, service = documents["Deployment"], documents["Service"]
    assert deployment["apiVersion"] == "apps/v1" and service["apiVersion"] == "v1"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["replicas"] >= 1


def test_serves_on_all_interfaces_on_the_named_port(documents, container):
    args = container["args"]
    assert args[0] == "serve" and args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1]) if "--port" in args else 8000
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert f"EXPOSE {port}" in dockerfile_final_stage()
    (service_port,) = documents["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in ("http", port)


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_ask_healthz(container, probe):
    check = container[probe]
    assert check["httpGet"] == {"path": "/healthz", "port": "http"}
    assert check["periodSeconds"] >= 1 and check["failureThreshold"] >= 1
    if probe == "livenessProbe":  # a busy service must not be restarted for one slow answer
        assert check["failureThreshold"] * check["periodSeconds"] >= 30


def test_resources_are_requested_and_limited(container):
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"] and kind in resources["limits"], kind
    assert cpu_millis(resources["requests"]["cpu"]) <= cpu_millis(resources["limits"]["cpu"])
    assert memory_bytes(resources["requests"]["memory"]) <= memory_bytes(resources["limits"]["memory"])
    # measured peak of the service with two long uploads at once: 440 MiB (docs/benchmarks.md)
    assert memory_bytes(resources["limits"]["memory"]) >= 768 * 2**20


def test_runs_as_the_image_user_read_only_and_unprivileged(documents, container):
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile_final_stage(), re.M)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (int(user[1]), int(user[2]))
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # the read-only root needs a writable /tmp for uploads
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
