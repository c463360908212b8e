"""Tag probabilities (taggrams) of audio with a pretrained musicnn model: per 3 s patch and the
file's top tags (``genrekit tags``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from genrekit.errors import UsageError
from genrekit.features.musicnn.embedding import (
    HOP_LENGTH,
    N_FFT,
    SAMPLE_RATE,
    MusicnnFrontEnd,
    file_logmel,
    logmel_patches,
)
from genrekit.features.musicnn.network import (
    HOP_1S_FRAMES,
    MODELS,
    N_MELS,
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

    The file is read at 16 kHz mono block by block through genrekit's one audio path
    (:meth:`genrekit.audio.windows.read_windows`, whose cleaned, resampled blocks musicnn frames
    as one signal, as its reference implementation does) and cut into 187-frame patches every 3 s (every 1 s with ``overlap``); the whole-file ranking
    is the mean taggram over patches, as musicnn's ``top_tags``. Memory stays bounded whatever
    the file's length: a minute of audio, its log-mel frames and one batch of patches at a time.

    Parameters
    ----------
    path : str or Path
        An audio file.
    name : str, default "MSD_musicnn"
        The musicnn model.
    top : int, default 5
        Tags listed overall and per patch.
    overlap : bool, default False
        Patches every 1 s instead of every 3 s.

    Returns
    -------
    dict
        ``{"file", "model", "duration", "tags": [{"tag", "probability"}, ...],
        "segments": [{"start", "end", "tags": [...]}, ...]}``, times in seconds.
    """
    from genrekit.audio.windows import read_windows

    if name not in MODELS:
        load_musicnn(name)  # raises the UsageError
    audio = read_windows(path, SAMPLE_RATE)
    model = _cached_model(name)
    taggram, starts = tag_stream(audio.blocks(), model, hop_frames=HOP_1S_FRAMES if overlap else PATCH_FRAMES)
    duration = audio.duration
    patch_seconds = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE
    segments = [
        {"start": round(float(start), 3), "end": round(float(min(start + patch_seconds, duration)), 3),
         "tags": _top_tags(row, model.tags, top)}
        for start, row in zip(starts, taggram)
    ]
    return {
        "file": str(path),
        "model": name,
        "duration": round(float(duration), 3),
        "tags": _top_tags(taggram.mean(axis=0), model.tags, top),
        "segments": segments,
    }


def tag_stream(
    blocks: Iterable[np.ndarray],
    model: Musicnn,
    *,
    hop_frames: int = PATCH_FRAMES,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tag_samples` of a signal given as consecutive 16 kHz mono blocks, in bounded memory.

    Gives the patches :func:`tag_samples` gives for the concatenated blocks (the same frames and
    patch starts); only a block, its frames and one batch of patches are held at a time.

    Parameters
    ----------
    blocks : iterable of np.ndarray
        Mono float32 audio at 16 kHz, shape ``(n_i,)``.
    model : Musicnn
    hop_frames : int, default 187
        Frames between patch starts (187: 3 s, 61: musicnn's 1 s overlap).
    batch_size : int, default 32
        Patches per forward pass.

    Returns
    -------
    taggram : np.ndarray
        float32, shape ``(n_patches, n_tags)``.
    starts : np.ndarray
        Patch start times in seconds, shape ``(n_patches,)``.

    Raises
    ------
    UsageError
        ``hop_frames`` below 1.
    """
    if hop_frames < 1:
        raise UsageError(f"patch hop must be at least one frame, not {hop_frames}")
    rows, starts, batch = [], [], []

    def run(patches):
        with torch.inference_mode():
            rows.append(model(torch.stack(patches))["taggram"].numpy())

    frames = torch.zeros((0, N_MELS))
    first_frame = 0  # index of frames[0] in the file
    n_frames = 0
    for chunk in stream_logmel(blocks):
        frames = torch.cat([frames, chunk])
        n_frames += len(chunk)
        while (start := len(starts) * hop_frames) + PATCH_FRAMES <= n_frames:
            batch.append(frames[start - first_frame : start - first_frame + PATCH_FRAMES])
            starts.append(start)
            if len(batch) == batch_size:
                run(batch)
                batch = []
        keep_from = len(starts) * hop_frames  # the next patch's first frame
        frames, first_frame = frames[keep_from - first_frame:].clone(), keep_from
    if not starts:  # shorter than one patch: padded with silence, as logmel_patches does
        batch.append(F.pad(frames, (0, 0, 0, PATCH_FRAMES - len(frames))))
        starts.append(0)
    if batch:
        run(batch)
    taggram = np.concatenate(rows) if rows else np.zeros((0, len(model.tags)), np.float32)
    return taggram, np.asarray(starts) * HOP_LENGTH / SAMPLE_RATE


def stream_logmel(blocks: Iterable[np.ndarray]) -> Iterator[torch.Tensor]:
    """``file_logmel`` of the concatenated blocks, as consecutive ``(frames, 96)`` chunks.

    The frames are those of one pass over the whole signal (centred, zero-padded at both ends);
    each block adds the frames whose 512 samples it completes, the end adds the last ones.

    Parameters
    ----------
    blocks : iterable of np.ndarray
        Mono float32 audio at 16 kHz.

    Yields
    ------
    torch.Tensor
        float32 log-mel frames, shape ``(frames_i, 96)``.
    """
    frontend = MusicnnFrontEnd(center=False)
    pending = torch.zeros(N_FFT // 2)  # the centring's zeros before the first sample
    n_samples = 0
    for block in blocks:
        block = torch.as_tensor(np.asarray(block, dtype=np.float32))
        n_samples += len(block)
        pending = torch.cat([pending, block])
        ready = 0 if len(pending) < N_FFT else 1 + (len(pending) - N_FFT) // HOP_LENGTH
        if ready:
            yield frontend.logmel(pending[: (ready - 1) * HOP_LENGTH + N_FFT])
            pending = pending[ready * HOP_LENGTH:].clone()
    # the last frames: 1 + n // hop in all, the signal padded with zeros after its end
    done = (n_samples + N_FFT // 2 - len(pending)) // HOP_LENGTH
    remaining = 1 + n_samples // HOP_LENGTH - done
    if remaining > 0:
        pending = F.pad(pending, (0, N_FFT // 2))
        pending = F.pad(pending, (0, max(0, (remaining - 1) * HOP_LENGTH + N_FFT - len(pending))))
        yield frontend.logmel(pending[: (remaining - 1) * HOP_LENGTH + N_FFT])
