"""Model files: ``NAME.json`` (labels, segmentation, feature, architecture, calibration, metrics,
split) and ``NAME.safetensors`` (every tensor). Nothing is pickled, so loading a stranger's
model cannot run code. The format: ``docs/model-format.md``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from genrekit.errors import ModelError
from genrekit.version import __version__

FORMAT = "genrekit-model"


FORMAT_VERSION = 1


DEFAULT_MODEL_NAME = "default"


def bundled_models_dir() -> Path:
    """The folder of the models shipped inside the installed package."""
    return Path(str(resources.files("genrekit") / "assets" / "models"))


def default_model_path() -> Path:
    """The bundled default model's JSON file (inside the installed package)."""
    return bundled_models_dir() / f"{DEFAULT_MODEL_NAME}.json"


def bundled_model_names() -> list[str]:
    """Names of the models shipped inside the package (``default``, ...)."""
    folder = bundled_models_dir()
    if not folder.is_dir():
        return []
    return sorted(item.name.removesuffix(".json") for item in folder.iterdir() if item.name.endswith(".json"))


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or the bundled model it names (``"default"``) when no such file exists here.

    A model file on disk wins over a bundled model of the same name; a bare name that is
    neither gives a :class:`ModelError` listing the bundled names.
    """
    path = Path(path)
    if model_paths(path)[0].is_file() or path.parent != Path(".") or path.suffix in (".json", ".safetensors"):
        return path
    bundled = bundled_models_dir() / f"{path.name}.json"
    if bundled.is_file():
        return bundled
    names = ", ".join(bundled_model_names()) or "none in this installation"
    raise ModelError(f"{path}: no such model file, nor a bundled model name (bundled: {names})")


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """``(json_path, safetensors_path)`` for ``NAME``, ``NAME.json`` or ``NAME.safetensors``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")


def save_model(path: str | Path, spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``spec`` (JSON) and ``tensors`` (safetensors) atomically; returns the JSON path.

    ``spec`` must hold at least ``labels``, ``sample_rate``, ``segment``, ``feature`` and
    ``architecture`` (see ``docs/model-format.md``); format fields are added here.
    """
    from safetensors.torch import save

    from genrekit.utils import atomic_write_bytes, atomic_write_text, finite_json

    for key in ("labels", "sample_rate", "segment", "feature", "architecture"):
        if key not in spec:
            raise ValueError(f"model spec lacks {key!r}")
    json_path, weights_path = model_paths(path)
    full_spec = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "genrekit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "calibration": {"temperature": 1.0},
        **spec,
    }
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    atomic_write_bytes(weights_path, save(contiguous, metadata={"format": FORMAT}))
    text = json.dumps(finite_json(full_spec), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(json_path, text + "\n")
    return json_path


def read_model_files(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a model's JSON spec and tensors, with clear :class:`ModelError`s for bad files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    json_path, weights_path = model_paths(path)
    for file in (json_path, weights_path):
        if not file.is_file():
            raise ModelError(f"{file}: model file not found")
    try:
        spec = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{json_path}: not a genrekit model description ({exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"{json_path}: not a genrekit model description (format field missing)")
    if spec.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{json_path}: model format {spec['format_version']} is newer than this genrekit")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights_path}: unreadable weights ({exc})") from None
    return spec, tensors
