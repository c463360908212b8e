"""Tag probabilities (taggrams) of audio with a pretrained musicnn model: per 3 s patch and the
file's top tags (``genrekit tags``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from genrekit.features.musicnn.embedding import (
    HOP_LENGTH,
    SAMPLE_RATE,
    file_logmel,
    logmel_patches,
)
from genrekit.features.musicnn.network import (
    HOP_1S_FRAMES,
    MODELS,
    PATCH_FRAMES,
    Musicnn,
)
from genrekit.features.musicnn.weights import _cached_model, load_musicnn


def tag_samples(
    samples: np.ndarray | torch.Tensor,
    model: Musicnn,
    *,
    hop_frames: int = PATCH_FRAMES,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Tag probabilities of a whole 16 kHz mono signal, patch by patch (musicnn's taggram).

    Parameters
    ----------
    samples : array, shape (n,)
        Mono audio at 16 kHz.
    model : Musicnn
        From `load_musicnn`.
    hop_frames : int
        Frames between patch starts: 187 (no overlap) or 61 (musicnn's 1 s overlap).
    batch_size : int
        Patches per forward pass.

    Returns
    -------
    taggram : ndarray, float32, shape (n_patches, n_tags)
    starts : ndarray, shape (n_patches,)
        Patch start times in seconds; each patch spans 187 hops of 16 ms (2.992 s).
    """
    with torch.inference_mode():
        patches, starts = logmel_patches(file_logmel(samples), hop_frames)
        taggram = torch.cat([model(batch)["taggram"] for batch in patches.split(batch_size)])
    return taggram.numpy(), starts


def _top_tags(probabilities: np.ndarray, tags: Sequence[str], top: int) -> list[dict]:
    order = np.argsort(-probabilities, kind="stable")[:top]
    return [{"tag": tags[i], "probability": round(float(probabilities[i]), 4)} for i in order]


def tag_file(path: str | Path, name: str = "MSD_musicnn", *, top: int = 5, overlap: bool = False) -> dict:
    """Top musicnn tags of an audio file, overall and per 3 s patch, as JSON-able data.

    The file is decoded at 16 kHz mono (``genrekit.audio.load_audio``) and cut into
    187-frame patches every 3 s (every 1 s with ``overlap``); the whole-file ranking is the
    mean taggram over patches, as musicnn's ``top_tags``.

    Returns
    -------
    dict
        ``{"file", "model", "duration", "tags": [{"tag", "probability"}, ...],
        "segments": [{"start", "end", "tags": [...]}, ...]}``, times in seconds.
    """
    from genrekit.audio.decode import load_audio

    if name not in MODELS:
        load_musicnn(name)  # raises the UsageError
    audio = load_audio(path, sr=SAMPLE_RATE)
    model = _cached_model(name)
    taggram, starts = tag_samples(audio.samples, model, hop_frames=HOP_1S_FRAMES if overlap else PATCH_FRAMES)
    patch_seconds = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE
    segments = [
        {"start": round(float(start), 3), "end": round(float(min(start + patch_seconds, audio.duration)), 3),
         "tags": _top_tags(row, model.tags, top)}
        for start, row in zip(starts, taggram)
    ]
    return {
        "file": str(path),
        "model": name,
        "duration": round(float(audio.duration), 3),
        "tags": _top_tags(taggram.mean(axis=0), model.tags, top),
        "segments": segments,
    }
