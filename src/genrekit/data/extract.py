"""Features of many tracks for training and evaluation: decode, segment, compute each feature
(through the feature cache) and keep each segment's share of real audio and level.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from genrekit.audio.levels import SILENCE_DBFS, rms_dbfs
from genrekit.audio.segments import SegmentSettings
from genrekit.errors import AudioError, GenrekitError
from genrekit.utils import track

logger = logging.getLogger(__name__)

#: Largest number of segments sent through a feature module at once (bounds memory).
FEATURE_BATCH = 64


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
        """Class index of each segment's track.

        Parameters
        ----------
        label_names : sequence of str
            The model's labels; every track's label must be among them.

        Returns
        -------
        np.ndarray
            int64, shape ``(n_segments,)``.
        """
        code = {label: i for i, label in enumerate(label_names)}
        per_track = np.array([code[t.label] for t in self.tracks], dtype=np.int64)
        return per_track[self.track_index] if len(self.track_index) else np.zeros(0, np.int64)

    def select(self, mask: np.ndarray) -> "SegmentFeatures":
        """The segments where ``mask`` is true (tracks are kept, indices unchanged).

        Parameters
        ----------
        mask : np.ndarray
            bool, shape ``(n_segments,)``.

        Returns
        -------
        SegmentFeatures
        """
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
        Specs for :func:`genrekit.features.registry.build_feature`; also the cache keys.
    sample_rate : int
        Decoding rate in Hz.
    segment : dict
        ``window``, ``hop`` and ``last`` for :func:`genrekit.audio.windows.read_windows`.
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

    Returns
    -------
    SegmentFeatures

    Raises
    ------
    GenrekitError
        No track could be decoded.
    """
    if modules is None:
        from genrekit.features.registry import build_feature

        modules = [build_feature(spec) for spec in feature_specs]
    modules = [module.to(device).eval() for module in modules]
    keys = [feature_cache_key(spec, sample_rate, segment) for spec in feature_specs]
    info_key = feature_cache_key({"name": "segment-info"}, sample_rate, segment)
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
            logger.warning(f"skipping {exc}")
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
        self.path, self.sample_rate, self.segment = path, sample_rate, SegmentSettings.from_spec(segment)
        self._segments = None

    def __call__(self):
        if self._segments is None:
            from genrekit.audio.windows import read_windows

            self._segments = read_windows(self.path, self.sample_rate, window=self.segment.window,
                                          hop=self.segment.hop, last=self.segment.last).collect()
        return self._segments


def feature_cache_key(spec: dict, sample_rate: int, segment: dict) -> dict:
    """What a cached feature array depends on besides the file: the cache key's second half.

    Parameters
    ----------
    spec : dict
        The resolved feature spec.
    sample_rate : int
        Decoding rate in Hz.
    segment : dict
        Window settings; written out completely, so equal settings give equal keys.

    Returns
    -------
    dict
        ``{"feature", "sample_rate", "segment"}``.
    """
    return {"feature": spec, "sample_rate": sample_rate, "segment": SegmentSettings.from_spec(segment).to_spec()}


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
    weights = (segments.ends - segments.starts) / SegmentSettings.from_spec(segment).window
    level = rms_dbfs(segments.samples)
    return np.stack([np.clip(weights, 1e-6, 1.0), level], axis=1).astype(np.float32)


def open_cache(cache_dir: str | None):
    """The feature cache for ``cache_dir``.

    Parameters
    ----------
    cache_dir : str or None
        A folder; ``None``: the default location; ``""``: no cache.

    Returns
    -------
    FeatureCache or None
    """
    if cache_dir == "":
        return None
    from genrekit.data.cache import FeatureCache

    return FeatureCache(cache_dir or None)
