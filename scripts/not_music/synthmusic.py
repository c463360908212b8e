"""Procedurally synthesised music: a stress test for false rejections (never used for fitting).

GTZAN (the detector's only music training data) has almost no electronic, solo-instrument or
synthesiser music, while the not-music corpus is built from tones, noise and clicks. These
crude pieces check that music made of such primitives is not rejected wholesale:

- ``piano``: chord progression + melody, additive piano-like partials with decay
- ``pluck``: Karplus-Strong guitar strumming a progression
- ``solo``: one monophonic wind-like instrument with vibrato playing a melody (cf. librosa 'trumpet')
- ``band``: drum machine (kick, snare, hi-hat) + bass line + chord pad (cf. librosa 'choice')
- ``edm``: four-on-the-floor kick, hats, saw arpeggio, sub bass
- ``strings``: slow sustained chords with vibrato
- ``techno``: four-on-the-floor kick, off-beat hats, filtered square/saw bass riff
- ``dnb``: fast (160-178 bpm) breakbeat, sub bass, pad (cf. librosa 'choice')
- ``synthpop``: drums, saw/square chord stabs, lead melody
- ``hiphop``: slow boom-bap drums, bass, piano chords
- ``organ``: sustained additive organ chords with a walking bass
"""

from __future__ import annotations

import numpy as np

STYLES = ("piano", "pluck", "solo", "band", "edm", "strings", "techno", "dnb", "synthpop", "hiphop", "organ")
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
PROGRESSIONS = ([0, 4, 5, 3], [0, 5, 3, 4], [5, 3, 0, 4], [0, 3, 4, 0])  # scale degrees


def _hz(midi):
    return 440.0 * 2 ** ((np.asarray(midi, float) - 69) / 12)


def _chord(root_midi, degree):
    idx = np.array([degree, degree + 2, degree + 4])
    return root_midi + MAJOR[idx % 7] + 12 * (idx // 7)


def _note(f, dur, sr, kind, rng):
    n = int(dur * sr)
    t = np.arange(n) / sr
    if kind == "piano":
        x = sum(np.sin(2 * np.pi * f * h * t * (1 + 0.0004 * h * h)) / h**1.5 for h in range(1, 9))
        return x * np.exp(-t * 3.0) * (1 - np.exp(-t * 400))
    if kind == "solo":
        vib = 1 + 0.006 * np.sin(2 * np.pi * 5.5 * t) * np.clip(t * 3, 0, 1)
        ph = 2 * np.pi * np.cumsum(f * vib) / sr
        x = sum(np.sin(h * ph) * (0.8 ** h) for h in range(1, 12))
        env = np.clip(t / 0.04, 0, 1) * np.clip((dur - t) / 0.05, 0, 1)
        return x * env
    if kind == "strings":
        vib = 1 + 0.004 * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 6))
        ph = 2 * np.pi * np.cumsum(f * vib) / sr
        x = sum(np.sin(h * ph) / h for h in range(1, 10))
        return x * np.clip(t / 0.4, 0, 1) * np.clip((dur - t) / 0.4, 0, 1)
    if kind == "saw":
        x = 2 * ((f * t) % 1.0) - 1
        return x * np.exp(-t * 6)
    if kind == "square":
        x = np.sign(np.sin(2 * np.pi * f * t)) * 0.7
        return _lowpass(x, rng.uniform(0.05, 0.3)) * np.exp(-t * rng.uniform(2, 10))
    if kind == "organ":
        x = sum(np.sin(2 * np.pi * f * h * t) * a for h, a in ((0.5, 0.5), (1, 1), (2, 0.6), (3, 0.4), (4, 0.3), (6, 0.2), (8, 0.15)))
        return x * np.clip(t / 0.01, 0, 1) * np.clip((dur - t) / 0.02, 0, 1)
    if kind == "bass":
        x = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
        return x * np.exp(-t * 2) * np.clip(t / 0.005, 0, 1)
    if kind == "pad":
        x = sum(np.sin(2 * np.pi * f * (1 + d) * t) for d in (-0.003, 0, 0.003))
        return x * np.clip(t / 0.2, 0, 1) * np.clip((dur - t) / 0.2, 0, 1)
    raise ValueError(kind)


def _lowpass(x, a):
    """One-pole low-pass, coefficient a in (0, 1]."""
    from scipy.signal import lfilter

    return lfilter([a], [1, a - 1], x)


def _pluck(f, dur, sr, rng):
    n, p = int(dur * sr), max(2, int(sr / f))
    buf = rng.uniform(-1, 1, p)
    out = np.empty(n)
    for i in range(n):
        out[i] = buf[i % p]
        buf[i % p] = 0.996 * 0.5 * (buf[i % p] + buf[(i + 1) % p])
    return out


def _add(x, y, pos):
    if pos >= len(x):
        return
    m = min(len(y), len(x) - pos)
    x[pos:pos + m] += y[:m]


def _breakbeat(n, sr, bpm, rng):
    """Amen-like pattern on 16ths: kick/snare placements, hats on 8ths."""
    x = np.zeros(n)
    six = 60 / bpm / 4
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (45 + 90 * np.exp(-t * 40)) * t) * np.exp(-t * 15)
    snare = rng.standard_normal(len(t)) * np.exp(-t * 30) * 0.7 + 0.3 * np.sin(2 * np.pi * 200 * t) * np.exp(-t * 25)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 90) * 0.2
    kicks, snares = {0, 2, 10, 11}, {4, 7, 9, 12, 15}
    for k in range(int(n / sr / six) + 1):
        p, s = int(k * six * sr), k % 16
        if s in kicks:
            _add(x, kick, p)
        if s in snares:
            _add(x, snare * (0.5 if s in (7, 9, 15) else 1.0), p)
        if s % 2 == 0:
            _add(x, hat, p)
    return x


def _drums(n, sr, bpm, rng, four_floor):
    x = np.zeros(n)
    beat = 60 / bpm
    t = np.arange(int(0.3 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    snare = rng.standard_normal(len(t)) * np.exp(-t * 25) * 0.6 + 0.3 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 20)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 80) * 0.25
    for k in range(int(n / sr / beat) + 1):
        p = int(k * beat * sr)
        if four_floor or k % 2 == 0:
            _add(x, kick, p)
        if k % 2 == 1:
            _add(x, snare, p)
        _add(x, hat, p + int(beat / 2 * sr))
        if four_floor:
            _add(x, hat, p)
    return x


def synth_music(style: str, *, seed: int = 0, seconds: float = 30.0, sr: int = 16000) -> np.ndarray:
    """One piece of ``style`` (see `STYLES`), mono float32 at ``sr``, RMS about -18 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n)
    root = 48 + int(rng.integers(0, 12))
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    bpm = {"edm": (118, 132), "techno": (125, 140), "dnb": (160, 178), "hiphop": (80, 96)}.get(style, (70, 140))
    bpm = float(rng.uniform(*bpm))
    beat = 60 / bpm
    bar = 4 * beat
    n_bars = int(seconds / bar) + 1
    for b in range(n_bars):
        deg = prog[b % len(prog)]
        chord = _chord(root, deg)
        p0 = int(b * bar * sr)
        if style == "piano":
            for m in chord:
                _add(x, 0.5 * _note(_hz(m), bar, sr, "piano", rng), p0)
            for k in range(8):
                m = root + 12 + MAJOR[int(rng.integers(7))]
                _add(x, 0.6 * _note(_hz(m), beat, sr, "piano", rng), p0 + int(k * beat / 2 * sr))
        elif style == "pluck":
            for k in range(4):
                for j, m in enumerate(chord):
                    _add(x, 0.5 * _pluck(_hz(m), beat * 1.5, sr, rng), p0 + int((k * beat + j * 0.015) * sr))
        elif style == "solo":
            k = 0.0
            while k < 4:
                d = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
                m = root + 12 + MAJOR[int(rng.integers(7))]
                _add(x, _note(_hz(m), d * beat * 0.95, sr, "solo", rng), p0 + int(k * beat * sr))
                k += d
        elif style == "band":
            for k in range(4):
                _add(x, 0.8 * _note(_hz(chord[0] - 12), beat, sr, "bass", rng), p0 + int(k * beat * sr))
            for m in chord:
                _add(x, 0.15 * _note(_hz(m + 12), bar, sr, "pad", rng), p0)
        elif style == "edm":
            for k in range(16):
                m = chord[k % 3] + 12 * (1 + (k // 3) % 2)
                _add(x, 0.3 * _note(_hz(m), beat / 4, sr, "saw", rng), p0 + int(k * beat / 4 * sr))
            _add(x, 0.8 * _note(_hz(chord[0] - 12), bar, sr, "bass", rng), p0)
        elif style == "techno":
            riff = rng.integers(0, 3, 16)
            for k in range(16):
                if rng.random() < 0.75:
                    m = chord[riff[k]] - 12 + 12 * int(k % 4 == 2)
                    _add(x, 0.5 * _note(_hz(m), beat / 4, sr, "square", rng), p0 + int(k * beat / 4 * sr))
        elif style == "dnb":
            _add(x, 0.9 * _note(_hz(chord[0] - 24), bar, sr, "bass", rng), p0)
            for m in chord:
                _add(x, 0.12 * _note(_hz(m + 12), bar, sr, "pad", rng), p0)
        elif style == "synthpop":
            for k in range(8):
                if k % 2 == 0 or rng.random() < 0.3:
                    for m in chord:
                        _add(x, 0.2 * _note(_hz(m + 12), beat / 2, sr, "saw", rng), p0 + int(k * beat / 2 * sr))
            for k in range(4):
                m = root + 24 + MAJOR[int(rng.integers(7))]
                _add(x, 0.4 * _note(_hz(m), beat * 0.9, sr, "square", rng), p0 + int(k * beat * sr))
            _add(x, 0.6 * _note(_hz(chord[0] - 12), bar, sr, "bass", rng), p0)
        elif style == "hiphop":
            for m in chord:
                _add(x, 0.4 * _note(_hz(m), bar, sr, "piano", rng), p0)
            for k in (0, 1.5, 2.5):
                _add(x, 0.8 * _note(_hz(chord[0] - 12), beat, sr, "bass", rng), p0 + int(k * beat * sr))
        elif style == "organ":
            for m in chord:
                _add(x, 0.3 * _note(_hz(m + 12), bar * 0.98, sr, "organ", rng), p0)
            for k in range(4):
                m = root - 12 + MAJOR[(deg + 2 * k) % 7]
                _add(x, 0.5 * _note(_hz(m), beat * 0.9, sr, "bass", rng), p0 + int(k * beat * sr))
        elif style == "strings":
            for m in list(chord) + [chord[0] - 12]:
                _add(x, 0.4 * _note(_hz(m), bar, sr, "strings", rng), p0)
        else:
            raise ValueError(style)
    if style in ("band", "edm", "techno", "dnb", "synthpop", "hiphop"):
        d = _breakbeat(n, sr, bpm, rng) if style == "dnb" else _drums(n, sr, bpm, rng, style in ("edm", "techno"))
        x = x / (np.sqrt(np.mean(x**2)) + 1e-9) + 0.8 * d / (np.sqrt(np.mean(d**2)) + 1e-9)
    x = x / (np.sqrt(np.mean(x**2)) + 1e-9) * 10 ** (-18 / 20)
    return np.clip(x, -1, 1).astype(np.float32)
