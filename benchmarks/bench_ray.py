"""Cost of running ``genrekit predict`` on Ray: fixed cost per run and cost per file, vs the local path.

Every run is the real command in a fresh process, timed from start to exit, on N files (the
clips of a folder repeated through symbolic links: 80 and 800 by default):

- **local**: ``genrekit predict DIR -f jsonl -o out.jsonl`` (decoding workers + network, no Ray);
- **ray-local**: ``genrekit predict DIR --ray local -o out.parquet`` (starts its own Ray instance);
- **1-node** / **2-node**: ``--ray HEAD:PORT`` against a cluster started beforehand (and warmed
  up by one untimed-for-the-fit run of the small size, reported as "first run") with
  ``ray.cluster_utils.Cluster`` on loopback addresses (127.0.0.2, .3), the same total CPUs split
  over one or two nodes (``--cpus``, default 2: one node of 2, or two nodes of 1). On one machine
  the second node adds no cores, only what distribution costs (scheduling, objects crossing nodes).

From the two sizes: per-file time = (t_big - t_small) / (big - small) and fixed cost =
t_small - small * per-file. CPU seconds are those of the command, everything it started and,
for a pre-started cluster, the cluster's processes during the run (``/proc`` sampled every 0.2 s,
so workers that exit are counted). Each run records the 1-minute load average at its end: on a
shared machine wall times depend on the load, CPU seconds much less.

Usage, from the repository root (Ray installed: ``pip install -e '.[ray]'``)::

    .venv/bin/python benchmarks/bench_ray.py [../shared/data/gtzan-mini] [--sizes 80 800] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"
CONFIGS = ("local", "ray-local", "1-node", "2-node")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="folder of audio clips")
    parser.add_argument("--sizes", type=int, nargs=2, default=[80, 800], help="the two file counts")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--cpus", type=int, default=2, help="logical CPUs of a cluster (split over 2 nodes)")
    parser.add_argument("--model", default=None, help="model (default: the bundled default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args()


def make_inputs(data: Path, n: int, root: Path) -> Path:
    """A folder of ``n`` symbolic links to the clips of ``data``, cycling through them."""
    from genrekit.inference.batch import collect_audio_files

    clips = [path for path, problem in collect_audio_files([data]) if not problem]
    folder = root / f"files-{n}"
    folder.mkdir()
    for i in range(n):
        clip = Path(clips[i % len(clips)])
        (folder / f"{i:06d}-{clip.name}").symlink_to(clip.resolve())
    return folder


def processes() -> dict[tuple[int, int], tuple[int, float]]:
    """Every process: ``(pid, start time) -> (parent pid, CPU seconds of its own)``, from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # after the command: state(0) ppid(1) ... utime(11) stime(12) ... starttime(19)
        fields = text[text.rindex(")") + 2:].split()
        table[(int(entry), int(fields[19]))] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


class CpuMeter(threading.Thread):
    """CPU seconds used by processes ``roots()`` and their descendants while it runs.

    Samples ``/proc`` every ``interval`` seconds and keeps each process's last value, so processes
    that exit during the run count (up to their last sample): Ray's raylet reaps its workers without
    adding their time to its own children's time, so ``getrusage`` cannot see them.
    """

    def __init__(self, roots, interval: float = 0.2):
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.baseline = self._tree()
        self.seen = dict(self.baseline)
        self.stopped = threading.Event()

    def _tree(self) -> dict:
        table = processes()
        children: dict[int, list] = {}
        for key, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(key)
        wanted, frontier = {}, [pid for pid in self.roots()]
        while frontier:
            for key in children.get(frontier.pop(), []):
                if key not in wanted:
                    wanted[key] = table[key][1]
                    frontier.append(key[0])
        for key, (_, cpu) in table.items():
            if key[0] in self.roots():
                wanted[key] = cpu
        return wanted

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            for key, cpu in self._tree().items():
                self.seen[key] = max(cpu, self.seen.get(key, 0.0))

    def stop(self) -> float:
        self.stopped.set()
        self.join()
        for key, cpu in self._tree().items():
            self.seen[key] = max(cpu, self.seen.get(key, 0.0))
        return sum(cpu - self.baseline.get(key, 0.0) for key, cpu in self.seen.items())


def start_cluster(cpus: int, nodes: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(shutdown_at_exit=True)
    per_node = cpus // nodes
    for i in range(nodes):
        cluster.add_node(num_cpus=per_node, node_ip_address=f"127.0.0.{2 + i}", object_store_memory=300 << 20,
                         include_dashboard=False)
    cluster.wait_for_nodes()
    return cluster


def cluster_pids(cluster) -> list[int]:
    return [process.process.pid for node in cluster.list_all_nodes()
            for processes in node.all_processes.values() for process in processes]


def run_once(config: str, folder: Path, out_dir: Path, address: str | None, model: str | None,
             cluster=None) -> dict:
    out = out_dir / f"{config}-{folder.name}"
    command = [sys.executable, "-m", "genrekit", "-q", "predict", str(folder)]
    command += ["--model", model] if model else []
    if config == "local":
        command += ["-f", "jsonl", "-o", f"{out}.jsonl"]
    else:
        command += ["--ray", address or "local", "-o", f"{out}.parquet"]
    child: list[int] = []
    fixed = cluster_pids(cluster) if cluster else []
    meter = CpuMeter(lambda: fixed + child)
    meter.start()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.append(process.pid)
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    cpu = meter.stop()
    done = subprocess.CompletedProcess(command, process.returncode, "", stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if config == "local":
        n = sum(1 for _ in open(f"{out}.jsonl"))
    else:
        import pyarrow.parquet as pq

        n = pq.read_table(f"{out}.parquet", columns=["path"]).num_rows
    return {"config": config, "files": n, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "load_average": round(os.getloadavg()[0], 1)}


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="gkb", dir="/tmp"))
    os.environ.update(RAY_TMPDIR=str(root), RAY_AUTH_MODE="disabled")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    small, big = sorted(args.sizes)
    folders = {n: make_inputs(args.data, n, root) for n in (small, big)}
    (root / "first").mkdir()
    results = []
    try:
        for config in args.configs:
            cluster = None
            if config.endswith("-node"):
                cluster = start_cluster(args.cpus, int(config[0]))
            try:
                address = cluster.address if cluster else None
                # the first job on a fresh cluster also starts its worker processes: timed apart
                first = run_once(config, folders[small], root / "first", address, args.model, cluster) if cluster else None
                runs = [run_once(config, folders[n], root, address, args.model, cluster) for n in (small, big)]
            finally:
                if cluster:
                    cluster.shutdown()
            per_file = (runs[1]["seconds"] - runs[0]["seconds"]) / (big - small)
            cpu_per_file = (runs[1]["cpu_seconds"] - runs[0]["cpu_seconds"]) / (big - small)
            result = {"config": config, "runs": runs, "first_run_s": first and first["seconds"],
                      "per_file_s": round(per_file, 4),
                      "files_per_s": round(1 / per_file, 1) if per_file > 0 else None,
                      "fixed_s": round(runs[0]["seconds"] - small * per_file, 2),
                      "cpu_per_file_s": round(cpu_per_file, 4)}
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores\n")
    print(f"| run | {small} files (s) | {big} files (s) | fixed cost (s) | per file (s) | files/s | CPU per file (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['config']} | {r['runs'][0]['seconds']} | {r['runs'][1]['seconds']} | {r['fixed_s']} | "
              f"{r['per_file_s']} | {r['files_per_s']} | {r['cpu_per_file_s']} |")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "load_average": load}, indent=1))


if __name__ == "__main__":
    main()
