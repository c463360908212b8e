"""GTZAN-style summary statistics of a clip (the 57 columns of ``features_30_sec.csv``: chroma,
RMS, spectral shape, zero crossings, harmonic/percussive, tempo, 20 MFCC means and variances),
and :class:`SummaryFeatures`, the same as a feature module.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

SUMMARY_FEATURE_NAMES: list[str] = [
    f"{feature}_{stat}"
    for feature in (
        "chroma_stft", "rms", "spectral_centroid", "spectral_bandwidth", "rolloff",
        "zero_crossing_rate", "harmony", "perceptr",
    )
    for stat in ("mean", "var")
] + ["tempo"] + [f"mfcc{k}_{stat}" for k in range(1, 21) for stat in ("mean", "var")]
"""Column names of GTZAN's ``features_30_sec.csv`` (without filename, length and label), in
that file's order: the order of `summary_vector`."""


def summary_features(samples: np.ndarray, sr: int = 22050) -> dict[str, float]:
    """The GTZAN ``features_30_sec.csv`` summary of one mono clip.

    Means and variances over frames of librosa's default-setting features (``n_fft=2048``,
    ``hop_length=512``): chroma, RMS, spectral centroid, bandwidth and roll-off, zero-crossing
    rate and 20 MFCCs; mean and variance of the harmonic ("harmony") and percussive
    ("perceptr") waveforms from HPSS; and the tempo in BPM that ``librosa.beat.beat_track``
    estimates (0.0 when there are no onsets). One STFT is shared by all
    spectral features, with the same numbers as calling each librosa function on ``samples``.

    Parameters
    ----------
    samples : np.ndarray
        Mono audio, shape ``(n,)``, at least one sample.
    sr : int, default 22050
        Sample rate in Hz.

    Returns
    -------
    dict of str to float
        Keyed by `SUMMARY_FEATURE_NAMES`, in that order (57 entries).

    Raises
    ------
    ValueError
        ``samples`` is not one-dimensional or is empty.
    """
    import librosa  # heavy import, only needed here

    y = np.ascontiguousarray(samples, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"expected mono samples of shape (n,) with n > 0, got {y.shape}")
    stft = librosa.stft(y)
    magnitude = np.abs(stft)
    power = magnitude**2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr))
    harmonic_stft, percussive_stft = librosa.decompose.hpss(stft)
    # The median-aggregated envelope is what librosa.beat.beat_track estimates tempo from.
    onset_envelope = librosa.onset.onset_strength(S=mel_db, sr=sr, aggregate=np.median)
    per_frame = {
        "chroma_stft": _chroma(power, sr),
        "rms": librosa.feature.rms(y=y),
        "spectral_centroid": librosa.feature.spectral_centroid(S=magnitude, sr=sr),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=magnitude, sr=sr),
        "rolloff": librosa.feature.spectral_rolloff(S=magnitude, sr=sr),
        "zero_crossing_rate": librosa.feature.zero_crossing_rate(y),
        "harmony": librosa.istft(harmonic_stft, length=y.size),
        "perceptr": librosa.istft(percussive_stft, length=y.size),
    }
    summary = {}
    for name, values in per_frame.items():
        summary[f"{name}_mean"] = float(np.mean(values))
        summary[f"{name}_var"] = float(np.var(values))
    summary["tempo"] = (
        float(librosa.feature.tempo(onset_envelope=onset_envelope, sr=sr)[0])
        if onset_envelope.any() else 0.0
    )
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)
    for k, coefficient in enumerate(mfcc, start=1):
        summary[f"mfcc{k}_mean"] = float(np.mean(coefficient))
        summary[f"mfcc{k}_var"] = float(np.var(coefficient))
    return summary


def _chroma(power: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    with warnings.catch_warnings():
        # Silence has no peaks to estimate tuning from; librosa then assumes A440, as we want.
        warnings.filterwarnings("ignore", message="Trying to estimate tuning")
        return librosa.feature.chroma_stft(S=power, sr=sr)


def summary_vector(samples: np.ndarray, sr: int = 22050) -> np.ndarray:
    """`summary_features` as a vector in the order of `SUMMARY_FEATURE_NAMES`.

    Parameters
    ----------
    samples : np.ndarray
        Mono audio, shape ``(n,)``.
    sr : int, default 22050
        Sample rate in Hz.

    Returns
    -------
    np.ndarray
        float64, shape ``(57,)``.
    """
    summary = summary_features(samples, sr)
    return np.array([summary[name] for name in SUMMARY_FEATURE_NAMES], dtype=np.float64)


class SummaryFeatures(nn.Module):
    """GTZAN summary features of each segment (:func:`genrekit.features.summary.summary_vector`).

    Computed with librosa, one segment at a time (tens of milliseconds each): cache them
    (training does).

    Parameters
    ----------
    sr : int, default 22050
        Sample rate of the input in Hz.

    Notes
    -----
    Input ``(batch, samples)`` at ``sr`` Hz; output ``(batch, 57)`` float32 in the order of
    :data:`genrekit.features.summary.SUMMARY_FEATURE_NAMES`.
    """

    name = "summary"

    def __init__(self, sr: int = 22050):
        super().__init__()
        self.sr = int(sr)

    def config(self) -> dict:
        """The constructor's arguments.

        Returns
        -------
        dict
            ``{"sr": int}``.
        """
        return {"sr": self.sr}

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """Summarise each segment.

        Parameters
        ----------
        samples : torch.Tensor
            Audio at ``sr`` Hz, shape ``(batch, samples)``.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, 57)``.
        """
        from genrekit.features.summary import summary_vector

        rows = [summary_vector(row, self.sr) for row in samples.detach().cpu().numpy()]
        return torch.from_numpy(np.stack(rows).astype(np.float32))
