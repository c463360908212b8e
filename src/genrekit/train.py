"""Train a genre model: dataset -> track-level split -> cached segment features -> network.

:func:`train_model` takes a :class:`TrainConfig` (from Python, from ``genrekit train`` options or
from a TOML file with :func:`load_config`) and writes a model file (``NAME.json`` +
``NAME.safetensors``, loadable with :func:`genrekit.load_model`) and a resumable checkpoint
(``NAME.ckpt.json`` + ``NAME.ckpt.safetensors``). Runs are reproducible: every random choice
(initialisation, batch order, dropout, augmentation) is seeded from ``config.seed`` and the epoch
number, so a run resumed from a checkpoint ends with the same weights as an uninterrupted one
(on CPU; GPU kernels are not bit-reproducible).

Features are computed once per track and segmentation and kept in the feature cache
(:class:`genrekit.cache.FeatureCache`), keyed by the feature spec, sample rate and segmentation.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .errors import AudioError, GenrekitError, UsageError
from .utils import info, track, warn

__all__ = [
    "TrainConfig",
    "TrainResult",
    "SegmentFeatures",
    "WaveAugment",
    "SpecAugment",
    "load_config",
    "train_model",
    "extract_features",
    "split_tracks",
    "data_fingerprint",
    "fit_temperature",
    "checkpoint_paths",
]

#: Segments quieter than this (dB re full scale) carry no genre: they are left out of training
#: and of evaluation, as ``genrekit predict`` leaves them out of its decision.
SILENCE_DBFS = -60.0
#: Largest number of segments sent through a feature module at once (bounds memory).
FEATURE_BATCH = 64


@dataclass
class TrainConfig:
    """Everything that defines a training run; JSON- and TOML-able.

    Attributes
    ----------
    dataset : str
        Dataset folder or manifest, opened with :func:`genrekit.datasets.open_dataset`.
    out : str
        Model path ``NAME`` (``NAME.json`` and ``NAME.safetensors`` are written).
    name : str or None
        Model name recorded in the file; default: the stem of ``out``.
    dataset_kind : str
        ``"auto"``, ``"gtzan"``, ``"fma"``, ``"folder"`` or ``"manifest"``.
    sample_rate : int
        Audio is decoded at this rate (Hz).
    segment : dict
        ``{"window": seconds, "hop": seconds or None (= window), "last": "pad" | "drop"}``.
    feature : dict or list of dict
        Feature spec(s) for :func:`genrekit.features.build_feature`; a list feeds a multi-input
        (``parallel``) network.
    architecture : dict
        Network spec for :func:`genrekit.models.build_model`.
    split : dict
        ``method`` (``"auto"``, ``"random"``, ``"group"``, ``"official"``, ``"gtzan-artist"``
        or ``"kfold"``), ``valid_size``, ``test_size``, and for ``kfold`` ``folds`` and ``fold``
        (the test fold; validation is drawn from the other folds).
    epochs, batch_size, learning_rate, weight_decay : training schedule (AdamW).
    patience : int
        Stop after this many epochs without a lower validation loss (0: never stop early).
    class_weights : bool
        Weight the loss by inverse class frequency of the training segments.
    augment : dict
        Waveform augmentation ``gain_db``, ``noise_snr_db``, ``shift`` (fraction of a window)
        and SpecAugment ``freq_masks``, ``freq_width``, ``time_masks``, ``time_width``
        (bins / frames); empty: none. See :class:`WaveAugment`, :class:`SpecAugment`.
    seed : int
        Seeds the split, the initialisation, batch order, dropout and augmentation.
    limit_per_label : int or None
        Use at most this many tracks per label (quick experiments).
    cache_dir : str or None
        Feature cache folder; ``None``: the default cache (``genrekit cache``); ``""``: no cache.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    checkpoint : bool
        Write ``NAME.ckpt.*`` after every epoch, for ``resume``.
    calibrate : bool
        Fit a softmax temperature on the validation segments.
    """

    dataset: str
    out: str
    name: str | None = None
    dataset_kind: str = "auto"
    sample_rate: int = 22050
    segment: dict = field(default_factory=lambda: {"window": 3.0, "hop": 3.0, "last": "pad"})
    feature: dict | list = field(default_factory=lambda: {"name": "mfcc", "n_mfcc": 20})
    architecture: dict = field(default_factory=lambda: {"name": "cnn2d"})
    split: dict = field(default_factory=lambda: {"method": "auto", "valid_size": 0.1, "test_size": 0.2})
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 5
    class_weights: bool = False
    augment: dict = field(default_factory=dict)
    seed: int = 0
    limit_per_label: int | None = None
    cache_dir: str | None = None
    device: str = "auto"
    checkpoint: bool = True
    calibrate: bool = True

    @classmethod
    def from_dict(cls, values: dict, where: str = "config") -> "TrainConfig":
        """Build from a dict, refusing unknown keys (a typo must not silently use a default)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        missing = [name for name in ("dataset", "out") if not values.get(name)]
        if missing:
            raise UsageError(f"{where}: {missing[0]!r} is required")
        config = cls(**copy.deepcopy(values))
        config.validate(where)
        return config

    def to_dict(self) -> dict:
        return copy.deepcopy(dataclasses.asdict(self))

    def validate(self, where: str = "config") -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "sample_rate": self.sample_rate}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{where}: {name} must be a positive integer, not {value!r}")
        if not self.learning_rate > 0:
            raise UsageError(f"{where}: learning_rate must be positive, not {self.learning_rate!r}")
        if not float(self.segment.get("window", 0)) > 0:
            raise UsageError(f"{where}: segment.window must be positive seconds")
        unknown = set(self.augment) - set(WaveAugment.OPTIONS) - set(SpecAugment.OPTIONS)
        if unknown:
            raise UsageError(f"{where}: unknown augmentation {sorted(unknown)[0]!r}")
        if isinstance(self.feature, list) != (self.architecture.get("name") == "parallel"):
            raise UsageError(f"{where}: a list of features needs the 'parallel' architecture and back")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UsageError(f"{where}: device must be auto, cpu or cuda, not {self.device!r}")

    @property
    def feature_specs(self) -> list[dict]:
        return list(self.feature) if isinstance(self.feature, list) else [self.feature]

    @property
    def model_name(self) -> str:
        return self.name or Path(self.out).name


def load_config(path: str | Path, **overrides) -> TrainConfig:
    """Read a TOML training config; ``overrides`` (not None) replace its settings.

    Relative ``dataset``, ``out`` and ``cache_dir`` paths are taken relative to the TOML file.
    A list of features is written as an array of tables (``[[feature]]``).
    """
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    for key in ("dataset", "out", "cache_dir"):
        if values.get(key) and not Path(values[key]).expanduser().is_absolute():
            values[key] = str(path.parent / values[key])
    values.update({key: value for key, value in overrides.items() if value is not None})
    return TrainConfig.from_dict(values, where=str(path))


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    ``metrics`` holds ``"valid"`` and ``"test"`` summaries (see
    :func:`genrekit.evaluate.summarize_predictions`); ``timings`` seconds spent on
    ``"features"``, ``"training"`` and ``"total"``.
    """

    model_path: Path
    spec: dict
    network: nn.Module
    metrics: dict
    history: list[dict]
    best_epoch: int
    timings: dict
    n_parameters: int


# --- features --------------------------------------------------------------------------------


@dataclass
class SegmentFeatures:
    """Features of all segments of a list of tracks, segments of one track consecutive.

    Attributes
    ----------
    inputs : list of np.ndarray
        One float32 array ``(n_segments, *feature_shape)`` per feature spec.
    track_index : np.ndarray, int
        ``(n_segments,)`` index into ``tracks`` of each segment's track.
    weights : np.ndarray, float
        ``(n_segments,)`` share of real (not padded) audio in each segment, in (0, 1].
    silent : np.ndarray, bool
        ``(n_segments,)`` segment quieter than ``SILENCE_DBFS``.
    tracks : list of Track
        The tracks that could be decoded (failures are in ``failed``).
    failed : list of (Track, str)
    waveforms : np.ndarray or None
        ``(n_segments, window_samples)`` float32 audio, kept only for waveform augmentation.
    """

    inputs: list[np.ndarray]
    track_index: np.ndarray
    weights: np.ndarray
    silent: np.ndarray
    tracks: list
    failed: list = field(default_factory=list)
    waveforms: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.track_index)

    def labels(self, label_names: Sequence[str]) -> np.ndarray:
        """Class index of each segment's track."""
        code = {label: i for i, label in enumerate(label_names)}
        per_track = np.array([code[t.label] for t in self.tracks], dtype=np.int64)
        return per_track[self.track_index] if len(self.track_index) else np.zeros(0, np.int64)

    def select(self, mask: np.ndarray) -> "SegmentFeatures":
        """The segments where ``mask`` is true (tracks are kept, indices unchanged)."""
        return dataclasses.replace(
            self,
            inputs=[x[mask] for x in self.inputs],
            track_index=self.track_index[mask],
            weights=self.weights[mask],
            silent=self.silent[mask],
            waveforms=None if self.waveforms is None else self.waveforms[mask],
        )


def extract_features(
    tracks: Sequence,
    feature_specs: Sequence[dict],
    *,
    sample_rate: int,
    segment: dict,
    cache=None,
    keep_waveforms: bool = False,
    device: str | torch.device = "cpu",
    modules: Sequence[nn.Module] | None = None,
    description: str = "features",
) -> SegmentFeatures:
    """Cut each track into segments and compute every feature of every segment.

    Parameters
    ----------
    tracks : sequence of Track
    feature_specs : sequence of dict
        Specs for :func:`genrekit.features.build_feature`; also the cache keys.
    sample_rate : int
        Decoding rate in Hz.
    segment : dict
        ``window``, ``hop`` and ``last`` for :func:`genrekit.segments.segment_samples`.
    cache : FeatureCache or None
        Looked up per track, feature spec, rate and segmentation; misses are computed and stored.
    keep_waveforms : bool
        Also return the segments' audio (needed for waveform augmentation).
    device : str or torch.device
        Where the feature modules run.
    modules : sequence of nn.Module, optional
        Feature modules to use instead of building them from ``feature_specs`` (for a loaded
        model's own front end).

    Tracks that cannot be decoded are skipped with a warning and listed in ``failed``.
    """
    if modules is None:
        from .features import build_feature

        modules = [build_feature(spec) for spec in feature_specs]
    modules = [module.to(device).eval() for module in modules]
    keys = [_cache_key(spec, sample_rate, segment) for spec in feature_specs]
    info_key = _cache_key({"name": "segment-info"}, sample_rate, segment)
    per_track: list[list[np.ndarray]] = []
    waves, kept, failed = [], [], []
    for item in track(tracks, description, total=len(tracks)):
        decoded = _LazySegments(item.path, sample_rate, segment)
        try:
            arrays = [
                _cached(cache, item.path, key, lambda m=module: _apply(m, decoded().samples, device))
                for key, module in zip(keys, modules)
            ]
            arrays.append(_cached(cache, item.path, info_key, lambda: _segment_info(decoded(), segment)))
            if keep_waveforms:
                waves.append(decoded().samples)
        except AudioError as exc:
            failed.append((item, str(exc)))
            warn(f"skipping {exc}")
            continue
        per_track.append(arrays)
        kept.append(item)
    if not kept:
        raise GenrekitError(f"no usable audio among {len(tracks)} tracks ({failed[0][1] if failed else 'none given'})")
    counts = [len(arrays[-1]) for arrays in per_track]
    segment_info = np.concatenate([arrays[-1] for arrays in per_track])
    return SegmentFeatures(
        inputs=[np.concatenate([arrays[i] for arrays in per_track]) for i in range(len(modules))],
        track_index=np.repeat(np.arange(len(kept)), counts),
        weights=segment_info[:, 0].astype(np.float64),
        silent=segment_info[:, 1] < SILENCE_DBFS,
        tracks=kept,
        failed=failed,
        waveforms=np.concatenate(waves) if keep_waveforms else None,
    )


class _LazySegments:
    """Decode and segment a file on first call only (nothing is decoded on a full cache hit)."""

    def __init__(self, path, sample_rate: int, segment: dict):
        self.path, self.sample_rate, self.segment = path, sample_rate, segment
        self._segments = None

    def __call__(self):
        if self._segments is None:
            from .audio import load_audio
            from .segments import segment_samples

            audio = load_audio(self.path, self.sample_rate)
            self._segments = segment_samples(
                audio.samples,
                self.sample_rate,
                window=float(self.segment["window"]),
                hop=self.segment.get("hop"),
                last=self.segment.get("last", "pad"),
            )
        return self._segments


def _cache_key(spec: dict, sample_rate: int, segment: dict) -> dict:
    window = float(segment["window"])
    hop = float(segment.get("hop") or window)
    return {"feature": spec, "sample_rate": sample_rate,
            "segment": {"window": window, "hop": hop, "last": segment.get("last", "pad")}}


def _cached(cache, path, key: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
    if cache is None:
        return compute()
    return cache.get_or_compute(path, key, compute)


@torch.inference_mode()
def _apply(module: nn.Module, samples: np.ndarray, device) -> np.ndarray:
    """Run a feature module over segments in batches of ``FEATURE_BATCH``; float32 numpy out."""
    outputs = []
    for first in range(0, len(samples), FEATURE_BATCH):
        batch = torch.as_tensor(samples[first:first + FEATURE_BATCH], dtype=torch.float32, device=device)
        outputs.append(module(batch).float().cpu().numpy())
    return np.concatenate(outputs)


def _segment_info(segments, segment: dict) -> np.ndarray:
    """``(n_segments, 2)`` float32: share of real audio and RMS level in dBFS."""
    weights = (segments.ends - segments.starts) / float(segment["window"])
    rms = np.sqrt(np.mean(np.square(segments.samples, dtype=np.float64), axis=1))
    level = 20 * np.log10(np.maximum(rms, 1e-10))
    return np.stack([np.clip(weights, 1e-6, 1.0), level], axis=1).astype(np.float32)


def open_cache(cache_dir: str | None):
    """The feature cache for ``cache_dir`` (``None``: default location, ``""``: no cache)."""
    if cache_dir == "":
        return None
    from .cache import FeatureCache

    return FeatureCache(cache_dir or None)


# --- augmentation ----------------------------------------------------------------------------


class WaveAugment(nn.Module):
    """Random gain, additive white noise and circular time shift of waveform segments.

    Parameters
    ----------
    gain_db : float
        Gain drawn uniformly from ``[-gain_db, +gain_db]`` dB per segment (0: off).
    noise_snr_db : float or None
        White noise at a signal-to-noise ratio drawn from ``[noise_snr_db, noise_snr_db + 20]``
        dB per segment (None: off).
    shift : float
        Circular shift by up to this fraction of the segment, either way (0: off).

    Input and output ``(batch, samples)``; identity in eval mode. Draws from torch's global
    generator (seeded per epoch by the training loop).
    """

    OPTIONS = ("gain_db", "noise_snr_db", "shift")

    def __init__(self, gain_db: float = 0.0, noise_snr_db: float | None = None, shift: float = 0.0):
        super().__init__()
        self.gain_db, self.noise_snr_db, self.shift = float(gain_db), noise_snr_db, float(shift)

    @property
    def active(self) -> bool:
        return bool(self.gain_db or self.noise_snr_db is not None or self.shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        batch, n = x.shape
        if self.shift:
            max_shift = int(self.shift * n)
            offsets = torch.randint(-max_shift, max_shift + 1, (batch, 1), device=x.device)
            index = (torch.arange(n, device=x.device) - offsets) % n
            x = torch.gather(x, 1, index)
        if self.gain_db:
            gain_db = (torch.rand(batch, 1, device=x.device) * 2 - 1) * self.gain_db
            x = x * 10 ** (gain_db / 20)
        if self.noise_snr_db is not None:
            snr_db = self.noise_snr_db + 20 * torch.rand(batch, 1, device=x.device)
            rms = x.square().mean(dim=1, keepdim=True).sqrt()
            x = x + torch.randn_like(x) * rms * 10 ** (-snr_db / 20)
        return x


class SpecAugment(nn.Module):
    """SpecAugment masks (Park et al., 2019) on time-frequency features ``(batch, bins, frames)``.

    Parameters
    ----------
    freq_masks, time_masks : int
        Number of masks along each axis (0: none).
    freq_width, time_width : int
        Largest mask width in bins / frames; each mask's width is drawn from ``[0, width]``.

    Masked cells are set to the segment's mean so that masking does not shift its level (the
    features are not normalised yet). Identity in eval mode and for inputs that are not 3-D.
    """

    OPTIONS = ("freq_masks", "freq_width", "time_masks", "time_width")

    def __init__(self, freq_masks: int = 0, freq_width: int = 8, time_masks: int = 0, time_width: int = 20):
        super().__init__()
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)

    @property
    def active(self) -> bool:
        return bool(self.freq_masks or self.time_masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.ndim != 3:
            return x
        masked = torch.zeros_like(x, dtype=torch.bool)
        for axis, count, width in ((1, self.freq_masks, self.freq_width), (2, self.time_masks, self.time_width)):
            size = x.shape[axis]
            for _ in range(count):
                widths = torch.randint(0, min(width, size) + 1, (x.shape[0], 1), device=x.device)
                starts = (torch.rand(x.shape[0], 1, device=x.device) * (size - widths + 1)).long()
                positions = torch.arange(size, device=x.device)
                band = (positions >= starts) & (positions < starts + widths)  # (batch, size)
                masked |= band[:, :, None] if axis == 1 else band[:, None, :]
        fill = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
        return torch.where(masked, fill, x)


def build_augmentations(options: dict) -> tuple[WaveAugment, SpecAugment]:
    wave = WaveAugment(**{k: v for k, v in options.items() if k in WaveAugment.OPTIONS})
    spec = SpecAugment(**{k: v for k, v in options.items() if k in SpecAugment.OPTIONS})
    return wave, spec


# --- split -----------------------------------------------------------------------------------


#: Values of ``split["group_by"]``: what stays on one side of a split.
GROUP_BY = ("artist", "track")


def split_tracks(dataset, split: dict, seed: int) -> tuple[Any, dict]:
    """Train / valid / test tracks by ``split`` settings, and a JSON record of the split.

    ``split["method"] == "kfold"`` takes fold ``split["fold"]`` of ``split["folds"]`` as the test
    side and draws ``valid_size`` of the rest (track level, stratified, group-aware) for
    validation. Other methods go to :func:`genrekit.splits.split_dataset`. ``split["seed"]``,
    when given, seeds the split instead of ``seed`` (same split, another initialisation).
    ``split["group_by"]`` says what must not straddle two sides: ``"artist"`` (default; a track
    whose artist is unknown is a group of its own) or ``"track"`` (artists ignored: only the
    segments of a track stay together).
    """
    from .splits import Split, check_no_leakage, holdout_split, kfold_splits, split_dataset, take

    options = {"method": "auto", "valid_size": 0.1, "test_size": 0.2, **split}
    method = options["method"]
    seed = int(options.pop("seed", seed))
    group_by = options.get("group_by", "artist")
    if group_by not in GROUP_BY:
        raise UsageError(f"split group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    if group_by == "track":
        # deliberately artist-blind (to measure what artist-disjoint splits cost): forget the groups
        dataset = dataclasses.replace(dataset, tracks=[dataclasses.replace(t, group=None) for t in dataset.tracks])
    if method == "kfold":
        folds, fold = int(options.get("folds", 5)), int(options.get("fold", 0))
        if not 0 <= fold < folds:
            raise UsageError(f"split fold must be in 0..{folds - 1}, not {fold}")
        train_index, test_index = kfold_splits(dataset.tracks, folds, seed=seed)[fold]
        rest, test = take(dataset.tracks, train_index), take(dataset.tracks, test_index)
        valid_size = float(options["valid_size"])
        train, valid = holdout_split(rest, test_size=valid_size, seed=seed) if valid_size > 0 else (rest, [])
        parts = Split(train, valid, test)
        check_no_leakage(*parts)
    else:
        parts = split_dataset(
            dataset, method, valid_size=float(options["valid_size"]),
            test_size=float(options["test_size"]), seed=seed,
        )
    if not parts.train:
        raise GenrekitError(f"{dataset.root}: the {method} split leaves no training tracks")
    trained_labels = {t.label for t in parts.train}
    unseen = sorted({t.label for part in parts[1:] for t in part} - trained_labels)
    if unseen:
        warn(f"no training tracks of {', '.join(unseen)}: the model cannot learn what it is tested on "
             "(too few tracks or artists of these labels for this split)")
    record = {
        **options,
        "seed": seed,
        "counts": {side: len(tracks) for side, tracks in zip(("train", "valid", "test"), parts)},
        "groups": _group_coverage([t for part in parts for t in part]),
        **{side: sorted(t.track_id for t in tracks) for side, tracks in zip(("train", "valid", "test"), parts)},
        "train_groups": sorted({t.group for t in parts.train} - {None}),
        "labels_not_in_train": unseen,
        # file keys find the same tracks when the data is opened another way (manifest vs folder)
        "keys": {side: sorted(track_key(t) for t in tracks) for side, tracks in zip(("train", "valid", "test"), parts)},
    }
    return parts, record


def track_key(track) -> str:
    """``"<file name without audio extension>:<size in bytes>"``: the same file under any dataset layout."""
    from .datasets import AUDIO_EXTENSIONS

    path = Path(track.path)
    name = path.stem if path.suffix.lower() in AUDIO_EXTENSIONS else path.name
    return f"{name}:{path.stat().st_size}"


def _group_coverage(tracks: Sequence) -> str:
    """``"all"``, ``"some"`` or ``"none"``: how many tracks name their group (artist)."""
    known = sum(t.group is not None for t in tracks)
    return "all" if known == len(tracks) else "some" if known else "none"


def limit_tracks(tracks: Sequence, per_label: int | None) -> list:
    """At most ``per_label`` tracks of each label, in their order (all when None)."""
    if per_label is None:
        return list(tracks)
    seen: dict[str, int] = {}
    kept = []
    for item in tracks:
        if seen.get(item.label, 0) < per_label:
            seen[item.label] = seen.get(item.label, 0) + 1
            kept.append(item)
    return kept


def data_fingerprint(tracks: Sequence) -> str:
    """``sha256:`` of the sorted ``(track_id, file size)`` list: changes when the data does."""
    digest = hashlib.sha256()
    for track_id, size in sorted((t.track_id, Path(t.path).stat().st_size) for t in tracks):
        digest.update(f"{track_id}\t{size}\n".encode())
    return f"sha256:{digest.hexdigest()}"


# --- training --------------------------------------------------------------------------------


def train_model(config: TrainConfig, *, resume: str | Path | None = None) -> TrainResult:
    """Train, calibrate and save a model as ``config.out`` (``.json`` + ``.safetensors``).

    Parameters
    ----------
    config : TrainConfig
    resume : path, optional
        A checkpoint written by an earlier run with the same recipe (``NAME.ckpt.json``,
        ``NAME.ckpt.safetensors`` or ``NAME.ckpt``): training continues after its last epoch.
        ``epochs`` and ``patience`` may differ, e.g. to train longer.

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError, UsageError, GenrekitError
        Unusable dataset, split or settings; a checkpoint from another recipe.
    """
    from .evaluate import summarize_predictions
    from .models import build_model, model_summary

    config.validate()
    if config.architecture.get("name", "").startswith("sklearn-"):
        if resume:
            raise UsageError("scikit-learn baselines train in one go: there is nothing to resume")
        from .baselines import train_baseline

        return train_baseline(config)
    started = time.perf_counter()
    checkpoint = read_checkpoint(resume) if resume else None
    if checkpoint is not None:
        _check_same_recipe(config, TrainConfig.from_dict(checkpoint["spec"]["config"]), resume)
    device = _pick_device(config.device)
    wave_augment, spec_augment = build_augmentations(config.augment)
    data = prepare_data(config, device, keep_train_waveforms=wave_augment.active)
    labels, train_set, valid_set = data.labels, data.train_set(), data.valid_set()

    torch.manual_seed(config.seed)
    network = build_model(config.architecture, len(labels), data.input_shape(config)).to(device)
    info(f"network: {model_summary(network)} on {device}")
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    y_train = train_set.labels(labels)
    class_weights = _class_weights(y_train, len(labels)) if config.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=None if class_weights is None else class_weights.to(device))

    state = _LoopState()
    if checkpoint is not None:
        state = _restore(checkpoint, network, optimizer, device)
        info(f"resuming after epoch {state.epoch} from {checkpoint_paths(resume)[0]}")
    feature_modules = data.modules if wave_augment.active else None
    training_started = time.perf_counter()
    while state.epoch < config.epochs and not state.stopped(config.patience):
        epoch = state.epoch + 1
        epoch_started = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        train_loss, train_accuracy = _train_epoch(
            network, optimizer, loss_fn, train_set, y_train, config.batch_size, device,
            wave_augment, spec_augment, feature_modules, f"epoch {epoch}/{config.epochs}",
        )
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy}
        if valid_set is not None:
            logits = predict_logits(network, valid_set.inputs, config.batch_size, device)
            y_valid = valid_set.labels(labels)
            row["valid_loss"] = float(nn.functional.cross_entropy(logits, torch.as_tensor(y_valid)))
            summary = summarize_predictions(
                torch.softmax(logits, 1).numpy(), valid_set.track_index,
                _track_labels(valid_set, labels), labels, valid_set.weights,
            )
            row["valid_accuracy"] = summary["segment_accuracy"]
            row["valid_track_accuracy"] = summary["track_accuracy"]
        row["seconds"] = round(time.perf_counter() - epoch_started, 3)
        state.record(row, network, improved_by=row.get("valid_loss", row["train_loss"]))
        info(_epoch_line(row, config.epochs))
        if config.checkpoint:
            write_checkpoint(config, state, network, optimizer)
    training_seconds = time.perf_counter() - training_started

    if state.best_state is not None and valid_set is not None:
        network.load_state_dict(state.best_state)
    training = {
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped(config.patience) and state.epoch < config.epochs,
        "history": state.history,
        "class_weights": None if class_weights is None else class_weights.tolist(),
    }
    return finish_training(config, network, data, training, started, training_seconds, device)


@dataclass
class PreparedData:
    """A run's labels, split and segment features (see :func:`prepare_data`)."""

    labels: list[str]
    parts: Any
    split_record: dict
    features: dict
    seconds: float
    feature: dict | list
    modules: list

    def train_set(self) -> SegmentFeatures:
        """Training segments without the silent ones (they carry no genre)."""
        train = self.features["train"]
        return train.select(~train.silent)

    def valid_set(self) -> SegmentFeatures | None:
        """Validation segments as evaluation sees them, or None without validation tracks."""
        from .evaluate import voiced_mask

        valid = self.features.get("valid")
        return None if valid is None else valid.select(voiced_mask(valid.silent, valid.track_index))

    def input_shape(self, config: TrainConfig):
        shapes = [list(x.shape[1:]) for x in self.features["train"].inputs]
        return shapes if isinstance(config.feature, list) else shapes[0]


def prepare_data(config: TrainConfig, device, *, keep_train_waveforms: bool = False) -> PreparedData:
    """Open the dataset, split it at track level and compute (or read from cache) all features."""
    from .datasets import open_dataset

    started = time.perf_counter()
    resolved = [resolve_feature(spec, config.sample_rate) for spec in config.feature_specs]
    specs, modules = [spec for spec, _ in resolved], [module.to(device) for _, module in resolved]
    dataset = open_dataset(config.dataset, config.dataset_kind)
    dataset.tracks = limit_tracks(dataset.tracks, config.limit_per_label)
    labels = sorted({t.label for t in dataset.tracks})
    parts, split_record = split_tracks(dataset, config.split, config.seed)
    info(
        f"{config.dataset}: {len(labels)} labels; tracks train {len(parts.train)}, "
        f"valid {len(parts.valid)}, test {len(parts.test)} ({split_record['method']} split)"
    )
    cache = open_cache(config.cache_dir)
    features = {}
    for side, tracks in zip(("train", "valid", "test"), parts):
        if tracks:
            features[side] = extract_features(
                tracks, specs, sample_rate=config.sample_rate, segment=config.segment,
                cache=cache, keep_waveforms=side == "train" and keep_train_waveforms, device=device,
                modules=modules, description=f"{side} features",
            )
    feature = specs if isinstance(config.feature, list) else specs[0]
    return PreparedData(labels, parts, split_record, features, time.perf_counter() - started, feature, modules)


def resolve_feature(spec: dict, sample_rate: int) -> tuple[dict, nn.Module]:
    """The complete spec of a feature (every default written out) and its module.

    A front end whose spec gives no ``sr`` gets ``sample_rate``, so that its mel bands are where
    the audio's frequencies are; a front end with a fixed rate (musicnn: 16 kHz) must match it.
    Writing out the defaults keeps the model file valid if a default changes later, and lets
    ``{"name": "mfcc"}`` and ``{"name": "mfcc", "n_mfcc": 20}`` share cache entries.
    """
    from .features import build_feature, feature_spec

    module = build_feature(spec)
    arguments = module.config() if hasattr(module, "config") else {}
    rate = arguments.get("sr", getattr(module, "sr", None))
    if "sr" not in spec and "sr" in arguments and rate != sample_rate:
        spec = {**spec, "sr": sample_rate}
        module, rate = build_feature(spec), sample_rate
    if rate is not None and int(rate) != int(sample_rate):
        raise UsageError(f"feature {spec.get('name')!r} works at {rate} Hz but sample_rate is {sample_rate}: "
                         f"set sample_rate = {rate}")
    try:
        return feature_spec(module), module
    except TypeError:  # a module feature_spec does not know (summary features): keep the spec as given
        return dict(spec), module


class Waveform(nn.Module):
    """The raw waveform as a feature (for ``samplecnn``): ``(batch, samples)`` unchanged.

    Spec ``{"name": "waveform", "sr": 22050}``; ``sr`` only records the rate the network expects.
    """

    name = "waveform"

    def __init__(self, sr: int = 22050):
        super().__init__()
        self.sr = int(sr)

    def config(self) -> dict:
        return {"sr": self.sr}

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        return samples


def finish_training(config: TrainConfig, network: nn.Module, data: PreparedData, training: dict,
                    started: float, training_seconds: float, device) -> TrainResult:
    """Calibrate on validation, score valid and test, write the model file; the common end of every run."""
    from .models import count_parameters

    network.eval()
    labels = data.labels
    valid_set = data.valid_set()
    temperature, calibration = 1.0, {"temperature": 1.0, "method": "none"}
    if config.calibrate and valid_set is not None:
        logits = predict_logits(network, valid_set.inputs, config.batch_size, device)
        temperature, calibration = fit_temperature(logits, torch.as_tensor(valid_set.labels(labels)))
    metrics = {}
    for side in ("valid", "test"):
        if side in data.features:
            metrics[side] = _evaluate_side(network, data.features[side], labels, temperature, config.batch_size, device)
    n_parameters = count_parameters(network)
    timings = {
        "features": round(data.seconds, 3),
        "training": round(training_seconds, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    spec = {
        "name": config.model_name,
        "labels": labels,
        "sample_rate": config.sample_rate,
        "segment": _cache_key({}, config.sample_rate, config.segment)["segment"],
        "feature": data.feature,
        "architecture": network.spec,
        "calibration": calibration,
        "metrics": metrics,
        "split": data.split_record,
        "data_fingerprint": data_fingerprint([t for part in data.parts for t in part]),
        "training": {
            "config": config.to_dict(),
            **training,
            "n_parameters": n_parameters,
            "device": str(device),
            "timings": timings,
            "failed_tracks": [
                {"track_id": t.track_id, "error": error}
                for part in data.features.values() for t, error in part.failed
            ],
            "torch_version": torch.__version__,
        },
    }
    model_path = save_trained_model(config.out, spec, network)
    info(f"saved {model_path}")
    return TrainResult(model_path, spec, network, metrics, training.get("history", []),
                       training.get("best_epoch", 0), timings, n_parameters)


@dataclass
class _LoopState:
    """Progress of the epoch loop; everything a checkpoint must hold besides the tensors."""

    epoch: int = 0
    history: list = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict | None = None

    def record(self, row: dict, network: nn.Module, improved_by: float) -> None:
        self.epoch = row["epoch"]
        self.history.append(row)
        if improved_by < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = improved_by, self.epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        else:
            self.bad_epochs += 1

    def stopped(self, patience: int) -> bool:
        return bool(patience) and self.bad_epochs >= patience


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def _train_epoch(network, optimizer, loss_fn, data, y, batch_size, device, wave_augment, spec_augment,
                 feature_modules, description) -> tuple[float, float]:
    """One pass over ``data`` in a seeded random order; returns (mean loss, accuracy)."""
    network.train()
    wave_augment.train()
    spec_augment.train()
    order = torch.randperm(len(y))
    # a last batch of one would break batch norm; fold it into the previous one
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    targets = torch.as_tensor(y)
    total_loss, correct = 0.0, 0
    for index in track(batches, description, total=len(batches)):
        inputs = _batch_inputs(data, index, device, wave_augment, feature_modules)
        inputs = [spec_augment(x) for x in inputs]
        target = targets[index].to(device)
        logits = network(inputs if network.spec.get("name") == "parallel" else inputs[0])
        loss = loss_fn(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(index)
        correct += int((logits.argmax(1) == target).sum())
    return total_loss / len(y), correct / len(y)


def _batch_inputs(data: SegmentFeatures, index, device, wave_augment, feature_modules) -> list[torch.Tensor]:
    if feature_modules is None:
        return [torch.as_tensor(x[index.numpy()]).to(device) for x in data.inputs]
    waves = wave_augment(torch.as_tensor(data.waveforms[index.numpy()]).to(device))
    with torch.no_grad():
        return [module(waves) for module in feature_modules]


@torch.no_grad()
def predict_logits(network: nn.Module, inputs: Sequence[np.ndarray], batch_size: int = 64,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits ``(n, n_classes)`` (CPU, float32) of ``network`` in eval mode on feature arrays."""
    network.eval()
    multi = getattr(network, "spec", {}).get("name") == "parallel"
    n = len(inputs[0])
    outputs = []
    for first in range(0, n, max(batch_size, 1)):
        batch = [torch.as_tensor(x[first:first + batch_size]).to(device) for x in inputs]
        outputs.append(network(batch if multi else batch[0]).float().cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, 0)


def _evaluate_side(network, data: SegmentFeatures, labels, temperature, batch_size, device) -> dict:
    from .evaluate import summarize_predictions, voiced_mask

    data = data.select(voiced_mask(data.silent, data.track_index))
    logits = predict_logits(network, data.inputs, batch_size, device)
    probabilities = torch.softmax(logits / temperature, 1).numpy()
    return summarize_predictions(probabilities, data.track_index, _track_labels(data, labels), labels, data.weights)


def _track_labels(data: SegmentFeatures, labels: Sequence[str]) -> np.ndarray:
    code = {label: i for i, label in enumerate(labels)}
    return np.array([code[t.label] for t in data.tracks], dtype=np.int64)


def _class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """``n / (n_classes * count)`` per class (1 where a class is absent): balanced loss."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("device cuda requested but torch sees no CUDA device")
        # autotuned cuDNN kernels differ from run to run; fixed ones keep GPU runs close to repeatable
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.device(name)


def _epoch_line(row: dict, epochs: int) -> str:
    line = f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f}"
    if "valid_loss" in row:
        line += (f", valid loss {row['valid_loss']:.3f} acc {row['valid_accuracy']:.3f}"
                 f" (tracks {row['valid_track_accuracy']:.3f})")
    return line + f", {row['seconds']:.1f} s"


# --- calibration -----------------------------------------------------------------------------


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, dict]:
    """Temperature scaling (Guo et al., 2017): the ``T`` minimising the NLL of ``softmax(logits / T)``.

    Parameters
    ----------
    logits : Tensor
        ``(n, n_classes)`` validation logits.
    targets : Tensor, int
        ``(n,)`` true classes.

    Returns
    -------
    temperature : float
        In ``[0.05, 20]``; 1.0 when there is nothing to fit on.
    record : dict
        The model file's ``calibration`` entry: ``temperature``, ``method``, ``nll_before``,
        ``nll_after``, ``n``.
    """
    from scipy.optimize import minimize_scalar

    logits = logits.double()
    if len(logits) == 0:
        return 1.0, {"temperature": 1.0, "method": "none"}

    def nll(log_t: float) -> float:
        return float(nn.functional.cross_entropy(logits / math.exp(log_t), targets))

    # the NLL is smooth and unimodal in log T for all practical purposes: a bounded 1-D search
    result = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded",
                             options={"xatol": 1e-4})
    temperature = float(math.exp(result.x))
    return temperature, {
        "temperature": round(temperature, 6),
        "method": "temperature-scaling",
        "fitted_on": "valid",
        "n": int(len(logits)),
        "nll_before": round(nll(0.0), 6),
        "nll_after": round(nll(result.x), 6),
    }


# --- files -----------------------------------------------------------------------------------


def save_trained_model(path: str | Path, spec: dict, network: nn.Module) -> Path:
    """Write a trained network as a genrekit model file (see ``docs/model-format.md``)."""
    from .classifier import save_model

    tensors = {f"network.{name}": t for name, t in network.state_dict().items()}
    return save_model(path, _json_safe(spec), tensors)


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.ckpt.json, NAME.ckpt.safetensors)`` for a model path ``NAME`` or a checkpoint path."""
    path = Path(path)
    name = path.name
    for suffix in (".json", ".safetensors"):
        name = name.removesuffix(suffix)
    name = name.removesuffix(".ckpt")
    return path.with_name(f"{name}.ckpt.json"), path.with_name(f"{name}.ckpt.safetensors")


def write_checkpoint(config: TrainConfig, state: _LoopState, network: nn.Module, optimizer) -> Path:
    """Save what resuming needs: network, best network and optimizer tensors, loop state, config.

    The optimizer's per-parameter tensors go to safetensors as ``optimizer.<index>.<name>``;
    its hyper-parameters and scalars to the JSON (no pickle).
    """
    from safetensors.torch import save

    from .utils import atomic_write_bytes, atomic_write_text

    tensors = {f"network.{k}": v for k, v in network.state_dict().items()}
    if state.best_state is not None:
        tensors.update({f"best.{k}": v for k, v in state.best_state.items()})
    optimizer_state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    spec = {
        "format": "genrekit-checkpoint",
        "config": config.to_dict(),
        "epoch": state.epoch,
        "history": state.history,
        "best_loss": state.best_loss if math.isfinite(state.best_loss) else None,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
    }
    json_path, tensor_path = checkpoint_paths(config.out)
    contiguous = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(tensor_path, save(contiguous))
    atomic_write_text(json_path, json.dumps(_json_safe(spec), indent=1) + "\n")
    return json_path


def read_checkpoint(path: str | Path) -> dict:
    """``{"spec": checkpoint JSON, "tensors": {...}}``; :class:`UsageError` if missing or malformed."""
    from safetensors.torch import load_file

    json_path, tensor_path = checkpoint_paths(path)
    for file in (json_path, tensor_path):
        if not file.is_file():
            raise UsageError(f"{file}: checkpoint not found")
    try:
        spec = json.loads(json_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensor_path))
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a bad checkpoint
        raise UsageError(f"{json_path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if spec.get("format") != "genrekit-checkpoint":
        raise UsageError(f"{json_path}: not a genrekit checkpoint")
    return {"spec": spec, "tensors": tensors, "path": json_path}


def _restore(checkpoint: dict, network: nn.Module, optimizer, device) -> _LoopState:
    spec, tensors = checkpoint["spec"], checkpoint["tensors"]

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    network.load_state_dict(part("network."))
    state: dict[int, dict] = {}
    for name, value in part("optimizer.").items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in spec["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": spec["optimizer"]["param_groups"]})
    best = part("best.")
    best_loss = spec.get("best_loss")
    return _LoopState(
        epoch=int(spec["epoch"]),
        history=list(spec["history"]),
        best_loss=math.inf if best_loss is None else float(best_loss),
        best_epoch=int(spec["best_epoch"]),
        bad_epochs=int(spec["bad_epochs"]),
        best_state=best or None,
    )


#: Settings that may change when resuming (the rest define the run and must not).
RESUMABLE_CHANGES = ("epochs", "patience", "out", "name", "checkpoint", "device", "cache_dir", "calibrate")


def _check_same_recipe(config: TrainConfig, previous: TrainConfig, where) -> None:
    now, before = config.to_dict(), previous.to_dict()
    for key in now:
        if key not in RESUMABLE_CHANGES and now[key] != before[key]:
            raise UsageError(f"{where}: checkpoint was made with {key}={before[key]!r}, not {now[key]!r}")


def _json_safe(value):
    """Tuples to lists and non-finite floats to None, so the JSON is strict."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


# --- command line ----------------------------------------------------------------------------


def config_from_options(config_path: str | None = None, resume: str | None = None, **options) -> TrainConfig:
    """A :class:`TrainConfig` from ``genrekit train`` options (None = not given).

    Settings come from, in increasing priority: the defaults, the checkpoint being resumed (if
    no config file is given), the TOML file ``config_path``, the options. Options ``window``,
    ``hop`` go into ``segment``; ``split_method``, ``valid_size``, ``test_size``, ``folds``,
    ``fold`` into ``split``; ``feature``, ``architecture`` and ``augment`` may be JSON text.
    """
    options = {key: value for key, value in options.items() if value is not None}
    for key, flag in (("feature", "--feature"), ("architecture", "--arch"), ("augment", "--augment")):
        if isinstance(options.get(key), str):
            options[key] = _parse_json_option(flag, options[key])
    segment_changes = {k: options.pop(k) for k in ("window", "hop") if k in options}
    split_changes = {("method" if k == "split_method" else k): options.pop(k)
                     for k in ("split_method", "valid_size", "test_size", "folds", "fold") if k in options}
    if config_path:
        base = load_config(config_path).to_dict()
    elif resume:
        base = read_checkpoint(resume)["spec"]["config"]
    else:
        base = {}
    values = {**base, **options}
    if segment_changes:
        values["segment"] = {**values.get("segment", TrainConfig.__dataclass_fields__["segment"].default_factory()),
                             **segment_changes}
    if split_changes:
        values["split"] = {**values.get("split", TrainConfig.__dataclass_fields__["split"].default_factory()),
                           **split_changes}
        if values["split"].get("method") != "kfold":
            values["split"].pop("folds", None), values["split"].pop("fold", None)
    return TrainConfig.from_dict(values, where=str(config_path or resume or "options"))


def _parse_json_option(flag: str, text: str):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not valid JSON ({exc.msg}): {text}") from None
    if not isinstance(value, (dict, list)):
        raise UsageError(f"{flag}: expected a JSON object such as '{{\"name\": ...}}', got {text}")
    return value
