"""Genre models on disk and in memory: ``load_model``, ``save_model`` and :class:`GenreModel`.

A model is two files sharing a stem: ``NAME.safetensors`` holds every tensor and ``NAME.json``
everything else (labels, sample rate, segmentation, feature spec, architecture, calibration,
metrics, split, data fingerprint). Nothing is pickled, so loading a model from a stranger
cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .errors import ModelError

FORMAT = "genrekit-model"
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "default"


def default_model_path() -> Path:
    """The bundled default model's JSON file (inside the installed package)."""
    return Path(str(resources.files("genrekit") / "data" / "models" / f"{DEFAULT_MODEL_NAME}.json"))


def bundled_model_names() -> list[str]:
    """Names of the models shipped inside the package (``default``, ``fast``, ...)."""
    folder = resources.files("genrekit") / "data" / "models"
    if not folder.is_dir():
        return []
    return sorted(item.name.removesuffix(".json") for item in folder.iterdir() if item.name.endswith(".json"))


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or the bundled model it names (``"fast"``) when no such file exists here.

    A model file on disk wins over a bundled model of the same name; a bare name that is
    neither gives a :class:`ModelError` listing the bundled names.
    """
    path = Path(path)
    if model_paths(path)[0].is_file() or path.parent != Path(".") or path.suffix in (".json", ".safetensors"):
        return path
    bundled = Path(str(resources.files("genrekit") / "data" / "models" / f"{path.name}.json"))
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

    from .utils import atomic_write_bytes, atomic_write_text

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
    atomic_write_text(json_path, json.dumps(full_spec, indent=2, sort_keys=False) + "\n")
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


@dataclass
class GenreModel:
    """A genre classifier: feature front end + network + labels + calibration.

    Audio is cut into ``segment["window"]``-second windows at ``sample_rate`` Hz; each window
    goes through ``feature`` (an ``nn.Module`` mapping ``(batch, samples)`` to features) and
    ``network`` (features to logits ``(batch, n_classes)``). Probabilities are
    ``softmax(logits / temperature)``.
    """

    spec: dict[str, Any]
    feature: nn.Module
    network: nn.Module
    source: Path | None = None
    _device: torch.device = field(default_factory=lambda: torch.device("cpu"), repr=False)

    @property
    def labels(self) -> list[str]:
        return list(self.spec["labels"])

    @property
    def name(self) -> str:
        return str(self.spec.get("name", "unnamed"))

    @property
    def sample_rate(self) -> int:
        return int(self.spec["sample_rate"])

    @property
    def window(self) -> float:
        return float(self.spec["segment"]["window"])

    @property
    def hop(self) -> float:
        return float(self.spec["segment"].get("hop") or self.window)

    @property
    def temperature(self) -> float:
        return float(self.spec.get("calibration", {}).get("temperature", 1.0))

    @property
    def model_id(self) -> str:
        """Identifies these exact weights (used to know which stored results are stale)."""
        return str(self.spec.get("model_id") or f"{self.name}@{self.spec.get('created', '')}")

    @torch.inference_mode()
    def segment_logits(self, segments: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for audio windows ``(batch, window_samples)`` at ``sample_rate``."""
        segments = torch.as_tensor(segments, dtype=torch.float32)
        return self.network(self.feature(segments))

    def segment_probabilities(self, segments: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Calibrated class probabilities ``(batch, n_classes)`` for audio windows."""
        return torch.softmax(self.segment_logits(segments) / self.temperature, dim=-1)

    def predict(self, audio, sr: int | None = None, **options):
        """Classify a file path or a waveform (``sr`` required for arrays); see :func:`genrekit.predict.predict_audio`."""
        from .predict import predict_audio

        return predict_audio(self, audio, sr=sr, **options)


def load_model(path: str | Path | None = None) -> GenreModel:
    """Load a model from ``NAME.json`` / ``NAME.safetensors`` / ``NAME``, or a bundled model by name.

    ``None`` loads the bundled default; ``"fast"`` (or any name in :func:`bundled_model_names`)
    the bundled model of that name, unless a model file of that name exists in the current folder.
    """
    from .features import build_feature
    from .models import build_model

    if path is None:
        path = default_model_path()
        if not path.is_file():
            raise ModelError("this genrekit has no bundled default model; pass --model PATH")
    else:
        path = resolve_model_path(path)
    spec, tensors = read_model_files(path)
    try:
        feature = _build_feature_stack(spec["feature"], build_feature)
        network = build_model(spec["architecture"], n_classes=len(spec["labels"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot build the model it describes ({exc})") from None
    _load_state(network, tensors, prefix="network.", where=path)
    _load_state(feature, tensors, prefix="feature.", where=path, strict=False)
    feature.eval()
    network.eval()
    return GenreModel(spec=spec, feature=feature, network=network, source=Path(path))


class MultiFeature(nn.Module):
    """Several front ends on the same audio, for multi-input models: returns a list of tensors."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(modules)

    def forward(self, samples: torch.Tensor) -> list[torch.Tensor]:
        return [branch(samples) for branch in self.branches]


def _build_feature_stack(feature_spec, build_feature) -> nn.Module:
    if isinstance(feature_spec, list):
        return MultiFeature([build_feature(item) for item in feature_spec])
    return build_feature(feature_spec)


def _load_state(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, where, strict=True) -> None:
    state = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
    if not state and not strict:
        return
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0]
        raise ModelError(f"{where}: weights do not fit the architecture ({first_line})") from None
