"""Classic speech/music descriptors of short windows of audio (Scheirer & Slaney 1997 style).

Speech alternates syllables (about 4 per second) and pauses, glides in pitch and has no steady
beat; music holds notes, keeps a pulse and rarely falls silent. :func:`speech_music_descriptors`
measures that on each window with a few FFTs, for the not-music
detector of the default model (:mod:`genrekit.inference.taggram`), which reads them beside the
musicnn taggram and penultimate layer. Cost: about 15 ms of CPU per 3 s window (the musicnn pass
itself takes about 60 ms), mostly the per-frame autocorrelation for the pitch.
"""

from __future__ import annotations

import numpy as np

#: Bump when the descriptors change: cached detector inputs are keyed by it.
VERSION = 1
FRAME = 512        # samples per analysis frame at 16 kHz (32 ms)
HOP = 160          # 10 ms: a 100 Hz frame rate
PITCH_RANGE = (70.0, 400.0)  # Hz searched for a voice-like periodicity
#: Names of the columns :func:`speech_music_descriptors` returns, in order.
DESCRIPTORS = (
    "low_energy_share",    # frames quieter than half the window's mean RMS (speech pauses)
    "silence_share",       # frames below -50 dBFS
    "modulation_4hz",      # share of the envelope's 0.5-20 Hz modulation energy at 2.5-7 Hz
    "log_rms_std",         # spread of the frame level in dB / 10
    "flux_mean",           # mean normalised spectral change between frames
    "flux_cv",             # its coefficient of variation
    "beat_strength",       # highest onset autocorrelation at 0.27-1.5 s lags (a steady pulse)
    "voiced_share",        # frames with a strong periodicity in the pitch range
    "pitch_glide",         # mean |change of log2 pitch| between voiced frames, in octaves
    "pitch_steady_share",  # voiced frame pairs within a quarter tone (held notes)
    "zcr_cv",              # coefficient of variation of the zero-crossing rate
    "centroid_cv",         # coefficient of variation of the spectral centroid
)


def _frames(samples: np.ndarray) -> np.ndarray:
    n, length = samples.shape
    count = 1 + max(0, (length - FRAME) // HOP)
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    return samples[:, index]  # (n, frames, FRAME)


def _cv(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.std(axis=axis) / (np.abs(x.mean(axis=axis)) + 1e-9)


def _modulation_4hz(envelope: np.ndarray) -> np.ndarray:
    env = envelope - envelope.mean(axis=1, keepdims=True)
    spectrum = np.abs(np.fft.rfft(env * np.hanning(env.shape[1]), n=512, axis=1)) ** 2
    freqs = np.fft.rfftfreq(512, d=HOP / 16000)
    band = (freqs >= 2.5) & (freqs <= 7.0)
    total = (freqs >= 0.5) & (freqs <= 20.0)
    return spectrum[:, band].sum(axis=1) / (spectrum[:, total].sum(axis=1) + 1e-12)


def _beat_strength(onset: np.ndarray) -> np.ndarray:
    onset = onset - onset.mean(axis=1, keepdims=True)
    n = onset.shape[1]
    spectrum = np.fft.rfft(onset, n=2 * n, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :n]
    acf = acf / (acf[:, :1] + 1e-12)
    # unbiased: each lag has n - lag products
    acf = acf * n / np.maximum(n - np.arange(n), 1)
    lags = slice(27, min(150, n - 1))
    return np.clip(acf[:, lags].max(axis=1), -1, 1)


def _pitch(frames: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (voicing strength, log2 pitch) from the normalised autocorrelation."""
    windowed = frames * np.hanning(FRAME)
    spectrum = np.fft.rfft(windowed, n=2 * FRAME, axis=-1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=-1)[..., :FRAME]
    acf = acf / (acf[..., :1] + 1e-12)
    lo, hi = int(sr / PITCH_RANGE[1]), int(sr / PITCH_RANGE[0])
    region = acf[..., lo:hi]
    lag = lo + region.argmax(axis=-1)
    return region.max(axis=-1), np.log2(sr / lag)


def speech_music_descriptors(samples: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Speech/music descriptors of windows of mono audio.

    Parameters
    ----------
    samples : np.ndarray, shape (n, window_samples)
        Windows of audio at ``sr`` Hz (genrekit's 3 s windows: 48 000 samples), float.
    sr : int
        Sample rate; 16 000 Hz (the musicnn rate) is what the descriptors were fitted at.

    Returns
    -------
    np.ndarray, shape (n, len(DESCRIPTORS))
        One row per window, columns in :data:`DESCRIPTORS` order, all finite.
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if samples.shape[1] < FRAME * 4:
        samples = np.pad(samples, ((0, 0), (0, FRAME * 4 - samples.shape[1])))
    frames = _frames(samples)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=-1) + 1e-12)
    db = 20 * np.log10(rms + 1e-9)
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(FRAME, d=1 / sr)
    norm = power / (power.sum(axis=-1, keepdims=True) + 1e-12)
    flux = np.sqrt((np.diff(np.sqrt(norm), axis=1) ** 2).sum(axis=-1))
    bands = np.log1p(1e4 * np.add.reduceat(power, np.geomspace(2, len(freqs) - 1, 17).astype(int)[:-1], axis=-1))
    onset = np.maximum(np.diff(bands, axis=1), 0).sum(axis=-1)
    strength, log_pitch = _pitch(frames, sr)
    voiced = (strength > 0.5) & (db > -50)
    pairs = voiced[:, 1:] & voiced[:, :-1]
    step = np.abs(np.diff(log_pitch, axis=1))
    n_pairs = pairs.sum(axis=1)
    glide = np.where(n_pairs > 0, (step * pairs).sum(axis=1) / np.maximum(n_pairs, 1), 0.5)
    steady = np.where(n_pairs > 0, ((step < 1 / 24) & pairs).sum(axis=1) / np.maximum(n_pairs, 1), 0.0)
    zcr = (np.abs(np.diff(np.signbit(frames), axis=-1)).sum(axis=-1)) / FRAME
    centroid = (norm * freqs).sum(axis=-1)
    out = np.column_stack([
        (rms < 0.5 * rms.mean(axis=1, keepdims=True)).mean(axis=1),
        (db < -50).mean(axis=1),
        _modulation_4hz(rms),
        db.std(axis=1) / 10,
        flux.mean(axis=1),
        _cv(flux),
        _beat_strength(onset),
        voiced.mean(axis=1),
        np.minimum(glide, 1.0),
        steady,
        _cv(zcr),
        _cv(centroid),
    ])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
