"""Per-window detector inputs of the not-music fitting and evaluation sets, exactly as
``genrekit predict`` computes them, cached under ``~/.cache/genrekit/not-music/`` (the real
recordings under ``~/.cache/genrekit/real-audio/``; ``GENREKIT_NOT_MUSIC_CACHE`` overrides).

Windows are cut as the bundled default model cuts them (3 s at 16 kHz, last window padded,
-60 dBFS silence flag); one pass of its MSD_musicnn network gives each window's ``taggram`` (50)
and ``penultimate`` layer (200), and ``descriptors`` are
:func:`genrekit.features.speechmusic.speech_music_descriptors` of its samples: the numbers
``GenreModel.segment_outputs`` gives the detector. Each cached ``.npz`` has one row per window
(NaN where silent) with ``silent``, ``starts``, ``ends`` and ``item`` (index into the per-item
arrays ``name``, ``family``, ``variant``, ``split``, ``group``, ``genre`` or ``style``). Cache
names include a hash of the generated corpus' source and the descriptors' ``VERSION``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GENREKIT_NOT_MUSIC_CACHE", Path.home() / ".cache" / "genrekit" / "not-music"))
sys.path.insert(0, str(ROOT / "tests"))  # the corpus generator lives with the tests that use it

import notmusic_corpus  # noqa: E402

from not_music import synthmusic  # noqa: E402  (scripts/ is on sys.path)

_MODEL = None


def default_model():
    global _MODEL
    if _MODEL is None:
        from genrekit.inference.model import load_model

        _MODEL = load_model("default")
    return _MODEL


def _hash(module) -> str:
    return hashlib.sha1(Path(module.__file__).read_bytes()).hexdigest()[:8]


def _cached(name: str, compute, folder: Path = CACHE) -> dict[str, np.ndarray]:
    path = folder / f"{name}.npz"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **compute())
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# --- every detector input of a window (taggram, penultimate layer, speech/music descriptors) ---

def window_inputs(samples: np.ndarray, sr: int = 16000) -> dict[str, np.ndarray]:
    """genrekit's windows of a mono signal with ``taggram`` (50), ``penultimate`` (200) and
    ``descriptors`` (:data:`genrekit.features.speechmusic.DESCRIPTORS`) from one network pass,
    plus ``silent``, ``starts`` and ``ends``. Silent windows get NaN rows."""
    import torch

    from genrekit.audio.levels import SILENCE_DBFS, rms_dbfs
    from genrekit.audio.segments import segment_samples
    from genrekit.features.speechmusic import DESCRIPTORS, speech_music_descriptors

    model = default_model()
    assert sr == model.sample_rate
    seg = segment_samples(np.asarray(samples, np.float32), sr, window=model.window, hop=model.hop, last="pad")
    silent = rms_dbfs(seg.samples) < SILENCE_DBFS
    n = len(seg.samples)
    out = {"taggram": np.full((n, 50), np.nan), "penultimate": np.full((n, 200), np.nan),
           "descriptors": np.full((n, len(DESCRIPTORS)), np.nan)}
    voiced = np.flatnonzero(~silent)
    if len(voiced):
        x = torch.as_tensor(seg.samples[voiced], dtype=torch.float32)
        with torch.inference_mode():
            layers = model.feature.network(model.feature.frontend(x))
        out["taggram"][voiced] = layers["taggram"].numpy()
        out["penultimate"][voiced] = layers["penultimate"].numpy()
        out["descriptors"][voiced] = speech_music_descriptors(seg.samples[voiced], sr)
    out.update(silent=silent, starts=seg.starts, ends=seg.ends)
    return out


def _stack_inputs(per_item: list[dict], meta: dict[str, list]) -> dict[str, np.ndarray]:
    keys = ("taggram", "penultimate", "descriptors", "silent", "starts", "ends")
    out = {k: np.concatenate([f[k] for f in per_item]) for k in keys}
    out["item"] = np.concatenate([np.full(len(f["silent"]), i) for i, f in enumerate(per_item)])
    out.update({k: np.asarray(v) for k, v in meta.items()})
    return out


def _inputs_hash() -> str:
    from genrekit.features import speechmusic

    return f"v{speechmusic.VERSION}"


def corpus_inputs(seed: int = 0, per_variant: int = 4, speech_per_voice: int = 1,
                  splits: tuple[str, ...] = ("fit", "heldout")) -> dict[str, np.ndarray]:
    """:func:`window_inputs` of the generated corpus (same arguments as :func:`corpus`)."""
    def compute():
        items = notmusic_corpus.generate_corpus(seed=seed, per_variant=per_variant, speech_per_voice=speech_per_voice,
                                                splits=tuple(splits), require_speech=True)
        return _stack_inputs([window_inputs(it.samples, it.sr) for it in items],
                             {"name": [it.name for it in items], "family": [it.family for it in items],
                              "variant": [it.variant for it in items], "split": [it.split for it in items]})

    return _cached(f"inputs_corpus_s{seed}_pv{per_variant}_spv{speech_per_voice}_{'-'.join(splits)}_"
                   f"{_hash(notmusic_corpus)}_{_inputs_hash()}", compute)


def synthetic_music_inputs(seeds: tuple[int, ...] = tuple(range(6)), seconds: float = 30.0) -> dict[str, np.ndarray]:
    """:func:`window_inputs` of ``synthmusic.synth_music(style, seed=s)`` for every style and seed."""
    def compute():
        feats, names, styles = [], [], []
        for style in synthmusic.STYLES:
            for s in seeds:
                feats.append(window_inputs(synthmusic.synth_music(style, seed=s, seconds=seconds)))
                names.append(f"{style}-{s}")
                styles.append(style)
        return _stack_inputs(feats, {"name": names, "style": styles})

    return _cached(f"inputs_synthmusic_{min(seeds)}-{max(seeds)}_{int(seconds)}s_{_hash(synthmusic)}_{_inputs_hash()}",
                   compute)


def gtzan_mini_inputs(shared: Path) -> dict[str, np.ndarray]:
    """:func:`window_inputs` of gtzan-mini's 80 clips, as ``genrekit predict`` decodes them."""
    from genrekit.audio.decode import load_audio

    def compute():
        root = shared / "data" / "gtzan-mini"
        rows = [line.split(",") for line in (root / "labels.csv").read_text().splitlines()[1:] if line.strip()]
        feats = [window_inputs(load_audio(root / path, sr=16000).samples) for path, _ in rows]
        return _stack_inputs(feats, {"name": [p for p, _ in rows], "genre": [g.strip() for _, g in rows]})

    return _cached(f"inputs_gtzan_mini_{_inputs_hash()}", compute)


def real_inputs(seed: int = 0, per_group: int = 6, heldout: bool | None = None) -> dict[str, np.ndarray]:
    """:func:`window_inputs` of the real-recording corpus (``tests/real_corpus.py``: ``corpus_clips``)."""
    import real_corpus as real

    def compute():
        clips = real.corpus_clips(seed=seed, per_group=per_group, heldout=heldout)
        return _stack_inputs([window_inputs(c.samples) for c in clips],
                             {"name": [c.name for c in clips], "family": [c.family for c in clips],
                              "group": [c.group for c in clips], "variant": [c.variant for c in clips]})

    tag = {None: "all", True: "heldout", False: "fit"}[heldout]
    return _cached(f"inputs_real_s{seed}_pg{per_group}_{tag}_v{real.VERSION}_{_inputs_hash()}", compute, real.CACHE)


def tag_rows_of(data: dict[str, np.ndarray], block: dict) -> np.ndarray:
    """The model's tag rows (taggram, then the detector's extra inputs) of a cached inputs set."""
    from genrekit.inference.taggram import extra_inputs

    return np.hstack([data["taggram"], *[data[name] for name in extra_inputs(block)]])
