"""A genre model in memory: :class:`GenreModel` (feature front end + network + labels +
calibration) and :func:`load_model` for model files and bundled model names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genrekit.audio.segments import SegmentSettings
from genrekit.errors import ModelError
from genrekit.models.files import (
    default_model_path,
    read_model_files,
    resolve_model_path,
)


@dataclass
class GenreModel:
    """A genre classifier: feature front end + network + labels + calibration.

    Audio is cut into ``segment["window"]``-second windows at ``sample_rate`` Hz; each window
    goes through ``feature`` (an ``nn.Module`` mapping ``(batch, samples)`` to features) and
    ``network`` (features to logits ``(batch, n_classes)``). Probabilities are
    ``softmax(logits / temperature)``.

    A model whose feature is the MSD_musicnn taggram (:attr:`gives_taggram`) can also report
    styles, and, when its file carries a ``not_music`` block, which segments and files are not
    music (:mod:`genrekit.inference.taggram`), from the taggram it computes anyway.
    """

    spec: dict[str, Any]
    feature: nn.Module
    network: nn.Module
    source: Path | None = None
    _device: torch.device = field(default_factory=lambda: torch.device("cpu"), repr=False)
    _model_id: str | None = field(default=None, repr=False, compare=False)

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
    def segment(self) -> SegmentSettings:
        """How this model cuts audio into windows."""
        return SegmentSettings.from_spec(self.spec["segment"])

    @property
    def window(self) -> float:
        return self.segment.window

    @property
    def hop(self) -> float:
        return self.segment.hop

    @property
    def temperature(self) -> float:
        return float(self.spec.get("calibration", {}).get("temperature", 1.0))

    @property
    def gives_taggram(self) -> bool:
        """Whether the feature output is the MSD_musicnn taggram (styles and not-music need it)."""
        from genrekit.inference.taggram import computes_msd_taggram

        return computes_msd_taggram(self.spec.get("feature"))

    @property
    def not_music(self) -> dict | None:
        """The not-music detector of this model (the ``not_music`` block of its file), or None."""
        return self.spec.get("not_music")

    @property
    def model_id(self) -> str:
        """``NAME@sha256:DIGEST``: a digest of everything that decides an answer (weights of the
        front end and network, labels, calibration, sample rate, segmenting, feature and
        architecture specs), so that stored results of another model are never reused, even one
        of the same name and creation time. Computed once per model object."""
        if self._model_id is None:
            self._model_id = f"{self.name}@sha256:{self.content_digest()[:32]}"
        return self._model_id

    def content_digest(self) -> str:
        """SHA-256 hex of the weights and the answer-deciding parts of the spec."""
        digest = hashlib.sha256()
        decisive = {key: self.spec.get(key) for key in
                    ("labels", "calibration", "sample_rate", "segment", "feature", "architecture",
                     "not_music")}
        if decisive["not_music"] is None:  # digests of models without a detector stay as they were
            del decisive["not_music"]
        digest.update(json.dumps(decisive, sort_keys=True, default=str).encode())
        for part, module in (("feature", self.feature), ("network", self.network)):
            for name, tensor in sorted(module.state_dict().items()):
                digest.update(f"{part}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                flat = tensor.detach().cpu().contiguous().reshape(-1)
                if flat.numel():
                    digest.update(flat.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    @torch.inference_mode()
    def segment_logits(self, segments: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for audio windows ``(batch, window_samples)`` at ``sample_rate``."""
        segments = torch.as_tensor(segments, dtype=torch.float32)
        return self.network(self.feature(segments))

    def segment_probabilities(self, segments: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Calibrated class probabilities ``(batch, n_classes)`` for audio windows."""
        return torch.softmax(self.segment_logits(segments) / self.temperature, dim=-1)

    @torch.inference_mode()
    def segment_outputs(self, segments: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(calibrated probabilities (batch, n_classes), taggram (batch, 50) or None)``: the
        taggram is the feature output itself when :attr:`gives_taggram`, else None."""
        if not self.gives_taggram:
            return self.segment_probabilities(segments).numpy(), None
        features = self.feature(torch.as_tensor(segments, dtype=torch.float32))
        probabilities = torch.softmax(self.network(features) / self.temperature, dim=-1).numpy()
        return probabilities, features.numpy().astype(np.float64)

    def predict(self, audio, sr: int | None = None, **options):
        """Classify a file path or a waveform (``sr`` required for arrays); see :func:`genrekit.inference.predict.predict_audio`."""
        from genrekit.inference.predict import predict_audio

        return predict_audio(self, audio, sr=sr, **options)


def load_model(path: str | Path | None = None) -> GenreModel:
    """Load a model from ``NAME.json`` / ``NAME.safetensors`` / ``NAME``, or a bundled model by name.

    ``None`` loads the bundled default; ``"default"`` (or any name in :func:`bundled_model_names`)
    the bundled model of that name, unless a model file of that name exists in the current folder.
    """
    from genrekit.features.registry import build_feature
    from genrekit.models.registry import build_model

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
    if spec.get("not_music") is not None:
        from genrekit.inference.taggram import check_not_music_block

        check_not_music_block(spec["not_music"], spec.get("feature"), path)
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
