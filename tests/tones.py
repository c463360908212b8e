"""Tiny synthetic "genre" collections for training tests: each genre is a tone colour.

A track of genre ``g`` is a harmonic tone around the genre's base frequency (jittered per track),
with a random level, a slow tremolo and background noise, so segments of one genre resemble each
other but no two tracks are equal.
"""

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 8000
GENRES = {"low": 220.0, "mid": 700.0, "high": 2000.0}


def tone_track(base: float, seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    freq = base * rng.uniform(0.93, 1.07)
    signal = sum(np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    tremolo = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 4) * t)
    level = rng.uniform(0.05, 0.3)
    noise = rng.normal(0, 0.01, t.size)
    return (level * tremolo * signal / 2 + noise).astype(np.float32)


def make_tone_dataset(root: Path, tracks_per_genre: int = 6, seconds: float = 2.0, seed: int = 0) -> Path:
    """Write ``root/<genre>/<genre>-<i>.wav`` (a folder-per-label dataset); returns ``root``."""
    rng = np.random.default_rng(seed)
    for genre, base in GENRES.items():
        folder = Path(root) / genre
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(tracks_per_genre):
            sf.write(folder / f"{genre}-{i}.wav", tone_track(base, seconds, rng), SR)
    return Path(root)


#: Settings that make training on a tone collection take about a second.
TINY_FEATURE = {"name": "mfcc", "sr": SR, "n_mfcc": 13, "n_fft": 256, "hop_length": 128, "n_mels": 32}
TINY_CNN = {"name": "cnn2d", "channels": [8, 8], "hidden": 16, "dropout": 0.1}
TINY_SEGMENT = {"window": 0.5, "hop": 0.5, "last": "pad"}
