"""Synthetic not-music corpus for fitting and testing genrekit's not-music detector.

``generate_corpus()`` returns a list of `Item` (mono float32 at 16 kHz by default), one per
clip, from these families:

==========  ==================================================================================
speech      espeak-ng text-to-speech, many languages, voice variants (+m1.., +f1.., klatt,
            whisper, croak ...), speeds and pitches, several sentences per clip
babble      3-5 simultaneous espeak-ng talkers (crowd / cocktail-party field recording)
noisy       speech in coloured noise or hum (SNR 0-20 dB)
noise       coloured noise: white, pink, brown, blue, violet, band-limited
tone        steady sine tones, dual tones, square/saw buzz, DTMF / beep patterns
sweep       linear and logarithmic sine sweeps, up, down, repeated
click       regular click trains (1-50 Hz), Poisson (Geiger-counter) clicks, ticking
hum         near-silence with 50/60 Hz mains hum and harmonics, optional hiss (-55..-30 dBFS)
mix         tone + noise mixtures, sweep + noise
field       synthetic environments: wind, rain, surf, traffic rumble, machine drone
animal      synthetic bird chirps (FM), frog/insect pulse trains, bark-like bursts
==========  ==================================================================================

Every family has ``fit`` variants and disjoint ``heldout`` variants (other languages and
voices, other noise colours, other signal sub-types), so a detector fitted on the ``fit``
part can be scored on unseen kinds of signal: ``Item.split``.

``generate_corpus`` is deterministic for a given ``seed``. Speech needs the ``espeak-ng``
binary (Debian: ``apt-get install espeak-ng``); without it the speech families are skipped
with a warning (``require_speech=True`` raises instead).

Run ``python corpus.py OUTDIR`` to write the clips as WAV files plus ``manifest.csv``.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Item", "FAMILIES", "generate_corpus", "write_corpus", "espeak_available"]

FAMILIES = ("speech", "babble", "noisy", "noise", "tone", "sweep", "click", "hum", "mix", "field", "animal")


@dataclass
class Item:
    name: str  # unique, e.g. "speech/es+m2-s150-0"
    family: str  # one of FAMILIES
    variant: str  # sub-type within the family (language+voice, colour, ...)
    split: str  # "fit" or "heldout"
    samples: np.ndarray  # float32, mono
    sr: int


# ------------------------------------------------------------------------------------------
# speech

SENTENCES = {
    "en": ["The weather report says it will rain in the north tomorrow afternoon.",
           "Please remember to bring your passport and two forms of identification.",
           "Chapter three. The detective walked slowly into the empty room and looked around.",
           "Our quarterly revenue increased by twelve percent compared with last year."],
    "de": ["Der Zug nach Berlin fährt heute mit zwanzig Minuten Verspätung ab.",
           "Bitte schließen Sie alle Fenster, bevor Sie das Haus verlassen.",
           "Im nächsten Kapitel erklären wir die Grundlagen der Thermodynamik."],
    "fr": ["Le train pour Lyon partira du quai numéro trois dans dix minutes.",
           "Nous avons visité le musée hier après-midi avec toute la famille.",
           "La réunion de demain est reportée à la semaine prochaine."],
    "nl": ["De vergadering begint morgen om negen uur in de grote zaal.",
           "Vergeet niet om de planten water te geven tijdens de vakantie."],
    "sv": ["Tåget till Göteborg är försenat på grund av ett signalfel.",
           "Vi ses på biblioteket efter lunch för att diskutera projektet."],
    "cs": ["Zítra bude ve většině kraje slunečno a teplo.",
           "Prosím, zavřete za sebou dveře, když odcházíte."],
    "tr": ["Yarın sabah erkenden yola çıkmamız gerekiyor.",
           "Toplantı saat üçte büyük salonda yapılacak."],
    "ru": ["Завтра утром ожидается сильный дождь и ветер.",
           "Пожалуйста, выключите свет, когда выходите из комнаты."],
    "es": ["El tren con destino a Madrid saldrá del andén cuatro en cinco minutos.",
           "Mañana por la mañana tenemos una reunión muy importante con los clientes.",
           "En el capítulo siguiente hablaremos de la historia de la ciudad."],
    "it": ["Il treno per Roma partirà dal binario due con dieci minuti di ritardo.",
           "Domani pomeriggio andremo al mercato a comprare la frutta fresca.",
           "La conferenza stampa si terrà nella sala principale del municipio."],
    "pt": ["O voo para Lisboa foi cancelado por causa do mau tempo.",
           "Precisamos de terminar o relatório antes de sexta-feira."],
    "pl": ["Pociąg do Krakowa odjedzie z peronu drugiego za kwadrans.",
           "Jutro rano będzie padać deszcz w całym kraju."],
    "fi": ["Huomenna sataa lunta koko maan pohjoisosissa.",
           "Kokous alkaa kello kymmenen neuvotteluhuoneessa."],
    "hu": ["A vonat tíz perc késéssel érkezik a második vágányra.",
           "Holnap reggel korán kell indulnunk a repülőtérre."],
    "el": ["Το τρένο για την Αθήνα θα αναχωρήσει σε δέκα λεπτά.",
           "Αύριο το πρωί θα βρέξει σε όλη τη χώρα."],
}
# disjoint languages and voice variants for the two splits
SPEECH_FIT = {"langs": ("en", "de", "fr", "nl", "sv", "cs", "tr", "ru"),
              "voices": ("", "m1", "m3", "m5", "m7", "f1", "f3", "f5", "klatt", "klatt3", "croak", "whisper")}
SPEECH_HELDOUT = {"langs": ("es", "it", "pt", "pl", "fi", "hu", "el"),
                  "voices": ("m2", "m4", "m6", "f2", "f4", "klatt2", "klatt4", "whisperf", "Andy", "Alicia", "max")}


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str, *, speed: int = 160, pitch: int = 50, sr: int = 16000,
           gap: int = 10) -> np.ndarray:
    """Speak ``text`` with espeak-ng; mono float32 at ``sr``."""
    import soundfile as sf

    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", str(gap), "--stdout", text]
    wav = subprocess.run(cmd, check=True, capture_output=True).stdout
    # espeak-ng --stdout writes a WAV header with unknown length: patch sizes before parsing
    data = bytearray(wav)
    if data[:4] == b"RIFF":
        data[4:8] = (len(data) - 8).to_bytes(4, "little")
        pos = data.find(b"data", 12)
        if pos > 0:
            data[pos + 4:pos + 8] = (len(data) - pos - 8).to_bytes(4, "little")
    x, native = sf.read(io.BytesIO(bytes(data)), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    return _resample(x, native, sr)


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x.astype(np.float32)
    import soxr

    return soxr.resample(x, sr_in, sr_out, "HQ").astype(np.float32)


def _voice(lang: str, variant: str) -> str:
    return lang if not variant else f"{lang}+{variant}"


def _speech_clip(rng, lang, variant, sr, n) -> np.ndarray:
    """Several sentences with pauses, exactly ``n`` samples."""
    parts, total = [], 0
    sentences = SENTENCES[lang]
    order = rng.permutation(len(sentences))
    i = 0
    while total < n:
        text = sentences[order[i % len(order)]]
        x = espeak(text, _voice(lang, variant), speed=int(rng.integers(110, 230)),
                   pitch=int(rng.integers(20, 80)), sr=sr)
        pause = np.zeros(int(rng.uniform(0.1, 0.8) * sr), np.float32)
        parts += [x, pause]
        total += len(x) + len(pause)
        i += 1
    return np.concatenate(parts)[:n]


# ------------------------------------------------------------------------------------------
# signal helpers

COLOURS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}


def coloured_noise(rng, n: int, exponent: float, sr: int = 16000, band=None) -> np.ndarray:
    """Gaussian noise with power spectrum ~ f**exponent (optionally band-limited), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    spec *= f ** (exponent / 2)
    if band is not None:
        spec[(f < band[0]) | (f > band[1])] = 0
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _norm(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale to an RMS of ``dbfs`` (dB full scale), clip to [-1, 1]."""
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12
    return np.clip(x * (10 ** (dbfs / 20) / rms), -1, 1).astype(np.float32)


def _fade(x: np.ndarray, sr: int, seconds: float = 0.01) -> np.ndarray:
    n = min(len(x) // 2, int(seconds * sr))
    if n:
        ramp = np.linspace(0, 1, n, dtype=np.float32)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _smooth_env(rng, n, sr, rate_hz, depth) -> np.ndarray:
    """Slow random amplitude envelope in [1 - depth, 1]."""
    k = max(2, int(n / sr * rate_hz) + 2)
    pts = rng.uniform(0, 1, k)
    env = np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)
    return (1 - depth + depth * env).astype(np.float32)


def _sine(f, t, phase=0.0):
    return np.sin(2 * np.pi * f * t + phase)


def _tone(rng, variant, n, sr):
    t = np.arange(n) / sr
    if variant == "sine-low":
        return _sine(rng.uniform(40, 400), t)
    if variant == "sine-mid":
        return _sine(rng.uniform(400, 2000), t)
    if variant == "sine-high":
        return _sine(rng.uniform(2000, 7000), t)
    if variant == "dual":
        return _sine(rng.uniform(100, 3000), t) + _sine(rng.uniform(100, 3000), t)
    if variant == "square":
        return np.sign(_sine(rng.uniform(50, 1000), t))
    if variant == "saw":
        f = rng.uniform(50, 1000)
        return 2 * ((f * t) % 1.0) - 1
    if variant in ("dtmf", "beeps"):
        x = np.zeros(n)
        on, off = rng.uniform(0.08, 0.5), rng.uniform(0.05, 0.6)
        rows, cols = (697, 770, 852, 941), (1209, 1336, 1477)
        freq = rng.uniform(400, 3000)
        pos = int(rng.uniform(0, 0.3) * sr)
        while pos < n:
            m = min(n - pos, int(on * sr))
            tt = np.arange(m) / sr
            if variant == "dtmf":
                seg = _sine(rng.choice(rows), tt) + _sine(rng.choice(cols), tt)
            else:
                seg = _sine(freq, tt)
            x[pos:pos + m] = _fade(seg.astype(np.float32), sr, 0.005)
            pos += m + int(off * sr * rng.uniform(0.7, 1.3) if variant == "dtmf" else off * sr)
        return x
    if variant == "sine-am":  # tone with slow tremolo-free drift (test tone with level wobble)
        return _sine(rng.uniform(100, 4000), t) * _smooth_env(rng, n, sr, 0.5, 0.5)
    raise ValueError(variant)


def _sweep(rng, variant, n, sr):
    t = np.arange(n) / sr
    f0, f1 = sorted(rng.uniform([20, 2000], [300, 8000]))
    if variant.startswith("down"):
        f0, f1 = f1, f0
    period = n / sr if not variant.endswith("repeat") else rng.uniform(0.5, 3.0)
    tt = t % period
    if variant.startswith(("lin", "down-lin")):
        phase = 2 * np.pi * (f0 * tt + (f1 - f0) * tt**2 / (2 * period))
    else:
        k = np.log(f1 / f0) / period
        phase = 2 * np.pi * f0 * (np.exp(k * tt) - 1) / k
    return np.sin(phase)


def _click(rng, variant, n, sr):
    x = np.zeros(n)
    width = int(rng.integers(1, 40))
    pulse = np.hanning(2 * width + 1)[width:] * (rng.choice([-1, 1]))
    if variant == "regular-slow":
        rate = rng.uniform(0.5, 4)
        times = np.arange(rng.uniform(0, 1 / rate), n / sr, 1 / rate)
    elif variant == "regular-fast":
        rate = rng.uniform(4, 50)
        times = np.arange(0, n / sr, 1 / rate)
    elif variant == "poisson":
        rate = rng.uniform(1, 80)
        times = np.cumsum(rng.exponential(1 / rate, int(rate * n / sr * 2) + 10))
    elif variant == "tick-tock":  # clock: alternating two click shapes at 1-2 Hz
        rate = rng.uniform(1, 2.5)
        times = np.arange(0, n / sr, 1 / rate)
    elif variant == "jittered":
        rate = rng.uniform(2, 20)
        times = np.arange(0, n / sr, 1 / rate) + rng.normal(0, 0.15 / rate, int(np.ceil(n / sr * rate)))[: len(np.arange(0, n / sr, 1 / rate))]
    else:
        raise ValueError(variant)
    for i, tm in enumerate(times):
        p = int(tm * sr)
        if 0 <= p < n:
            m = min(len(pulse), n - p)
            amp = (1 if variant != "tick-tock" or i % 2 == 0 else 0.6) * rng.uniform(0.6, 1.0)
            x[p:p + m] += amp * pulse[:m]
    if variant == "poisson":
        x += 0.01 * rng.standard_normal(n)
    return x


def _hum(rng, variant, n, sr):
    t = np.arange(n) / sr
    base = 50.0 if variant.startswith("50") else 60.0
    x = np.zeros(n)
    for h in range(1, int(rng.integers(2, 8))):
        x += rng.uniform(0.05, 1.0) / h * _sine(base * h, t, rng.uniform(0, 2 * np.pi))
    if variant.endswith("hiss"):
        x = x / np.sqrt(np.mean(x**2)) + rng.uniform(0.05, 0.5) * coloured_noise(rng, n, rng.choice([0.0, -1.0]), sr)
    if variant.endswith("buzz"):  # rectified mains buzz: rich harmonics
        x = np.abs(_sine(base, t)) - 0.63 + 0.05 * rng.standard_normal(n)
    return x


def _field(rng, variant, n, sr):
    if variant == "wind":
        x = coloured_noise(rng, n, -2.0, sr, band=(20, 2500))
        return x * _smooth_env(rng, n, sr, 0.7, 0.8)
    if variant == "rain":
        x = 0.3 * coloured_noise(rng, n, -0.5, sr)
        drops = rng.random(n) < rng.uniform(0.0005, 0.005)
        kernel = np.exp(-np.arange(64) / 8.0)
        x += np.convolve(drops * rng.standard_normal(n), kernel, mode="same")
        return x
    if variant == "surf":
        x = coloured_noise(rng, n, -1.0, sr, band=(50, 6000))
        t = np.arange(n) / sr
        return x * (0.3 + 0.7 * np.clip(_sine(1 / rng.uniform(4, 9), t), 0, 1) ** 2)
    if variant == "traffic":
        x = coloured_noise(rng, n, -2.0, sr, band=(20, 1500))
        t = np.arange(n) / sr
        f = rng.uniform(80, 200) * (1 + 0.2 * _sine(0.1, t))
        engine = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr)
        return (x + engine) * _smooth_env(rng, n, sr, 0.3, 0.6)
    if variant == "machine":
        t = np.arange(n) / sr
        f = rng.uniform(30, 150)
        x = sum(rng.uniform(0.1, 1) * _sine(f * h, t) for h in range(1, 10))
        return x + 0.5 * coloured_noise(rng, n, -1.0, sr)
    if variant == "room":  # quiet room tone with occasional thuds and HVAC
        x = 0.2 * coloured_noise(rng, n, -1.5, sr)
        for _ in range(int(rng.integers(2, 8))):
            p = int(rng.integers(0, n - 2000))
            x[p:p + 2000] += rng.uniform(1, 4) * np.exp(-np.arange(2000) / 300) * rng.standard_normal(2000)
        return x
    raise ValueError(variant)


def _animal(rng, variant, n, sr):
    x = np.zeros(n)
    t_all = n / sr
    if variant in ("chirps", "tweets"):
        pos = rng.uniform(0, 0.5)
        while pos < t_all:
            d = rng.uniform(0.03, 0.25) if variant == "chirps" else rng.uniform(0.01, 0.06)
            m = int(d * sr)
            tt = np.arange(m) / sr
            f0 = rng.uniform(2000, 6000)
            df = rng.uniform(-3000, 3000)
            f = np.clip(f0 + df * tt / d + 300 * _sine(rng.uniform(20, 80), tt), 500, 7800)
            seg = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)
            p = int(pos * sr)
            x[p:p + m] += seg[: n - p]
            pos += d + (rng.uniform(0.05, 1.2) if variant == "chirps" else rng.uniform(0.02, 0.3))
        return x + 0.02 * coloured_noise(rng, n, -1.0, sr)
    if variant in ("frog", "insect"):
        carrier = rng.uniform(300, 900) if variant == "frog" else rng.uniform(3000, 7000)
        prate = rng.uniform(10, 40) if variant == "frog" else rng.uniform(30, 120)
        t = np.arange(n) / sr
        pulses = (np.sin(2 * np.pi * prate * t) > 0.3).astype(float)
        env = np.zeros(n)
        pos = 0.0
        while pos < t_all:  # calls separated by gaps
            d = rng.uniform(0.2, 1.5)
            a, b = int(pos * sr), int(min(t_all, pos + d) * sr)
            env[a:b] = 1
            pos += d + rng.uniform(0.2, 1.5)
        return _sine(carrier, t) * pulses * env + 0.02 * rng.standard_normal(n)
    if variant == "bark":
        pos = rng.uniform(0, 0.5)
        while pos < t_all:
            d = rng.uniform(0.1, 0.3)
            m = int(d * sr)
            tt = np.arange(m) / sr
            f0 = rng.uniform(300, 700) * (1 - 0.4 * tt / d)
            src = sum(_sine(f0 * h, tt) / h for h in range(1, 12)) + 0.5 * rng.standard_normal(m)
            seg = src * np.exp(-tt / (d / 3))
            p = int(pos * sr)
            x[p:p + m] += seg[: n - p]
            pos += d + rng.uniform(0.15, 1.5)
        return x
    raise ValueError(variant)


def _mix(rng, variant, n, sr):
    colour = rng.choice(list(COLOURS))
    noise = coloured_noise(rng, n, COLOURS[colour], sr)
    snr = rng.uniform(-5, 20)
    if variant == "tone+noise":
        sig = _tone(rng, rng.choice(["sine-low", "sine-mid", "sine-high"]), n, sr)
    elif variant == "sweep+noise":
        sig = _sweep(rng, rng.choice(["lin-up", "log-up"]), n, sr)
    elif variant == "clicks+hum":
        sig = _click(rng, "regular-fast", n, sr)
        noise = _hum(rng, "50", n, sr)
    elif variant == "beeps+noise":
        sig = _tone(rng, "beeps", n, sr)
    else:
        raise ValueError(variant)
    sig = sig / (np.sqrt(np.mean(sig**2)) + 1e-12)
    noise = noise / (np.sqrt(np.mean(noise**2)) + 1e-12)
    return sig * 10 ** (snr / 20) + noise


# family -> (fit variants, held-out variants)
VARIANTS = {
    "noise": (("white", "brown", "violet", "band-low"), ("pink", "blue", "band-high")),
    "tone": (("sine-low", "sine-mid", "square", "dtmf"), ("sine-high", "dual", "saw", "beeps", "sine-am")),
    "sweep": (("lin-up", "log-up", "down-log"), ("down-lin", "log-up-repeat", "lin-up-repeat")),
    "click": (("regular-slow", "poisson"), ("regular-fast", "tick-tock", "jittered")),
    "hum": (("50", "60-hiss"), ("60", "50-hiss", "50-buzz")),
    "mix": (("tone+noise", "clicks+hum"), ("sweep+noise", "beeps+noise")),
    "field": (("wind", "rain", "machine"), ("surf", "traffic", "room")),
    "animal": (("chirps", "frog"), ("tweets", "insect", "bark")),
}


def _synth(rng, family, variant, n, sr):
    if family == "noise":
        if variant.startswith("band"):
            lo = rng.uniform(50, 500) if variant == "band-low" else rng.uniform(1500, 4000)
            return coloured_noise(rng, n, 0.0, sr, band=(lo, lo * rng.uniform(1.5, 4)))
        return coloured_noise(rng, n, COLOURS[variant], sr)
    return {"tone": _tone, "sweep": _sweep, "click": _click, "hum": _hum, "mix": _mix,
            "field": _field, "animal": _animal}[family](rng, variant, n, sr)


# ------------------------------------------------------------------------------------------
# the corpus


def generate_corpus(
    *,
    seed: int = 0,
    sr: int = 16000,
    per_variant: int = 4,
    seconds: tuple[float, float] = (6.0, 15.0),
    families: tuple[str, ...] | None = None,
    splits: tuple[str, ...] = ("fit", "heldout"),
    speech_per_voice: int = 1,
    require_speech: bool = False,
) -> list[Item]:
    """Generate the not-music corpus.

    Parameters
    ----------
    seed : int
        Random seed; the corpus is a deterministic function of all the arguments.
    sr : int
        Output sample rate (genrekit's musicnn path uses 16000).
    per_variant : int
        Clips per synthetic variant (noise colour, tone type, ...).
    seconds : (min, max)
        Clip lengths are drawn uniformly from this range.
    families : tuple of str, optional
        Subset of `FAMILIES` (default all).
    splits : tuple of str
        Which splits to generate ("fit", "heldout").
    speech_per_voice : int
        Clips per (language, voice) pair for ``speech``; ``babble``/``noisy`` get one clip
        per language and split per ``per_variant // 2`` (at least 1).
    require_speech : bool
        Raise instead of warning when espeak-ng is missing.

    Returns
    -------
    list of Item
        Levels: RMS drawn uniformly from -50..-6 dBFS (hum: -55..-30 dBFS, above genrekit's
        -60 dBFS silence threshold), clipped to [-1, 1].
    """
    families = tuple(families or FAMILIES)
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    items: list[Item] = []

    def length():
        return int(rng.uniform(*seconds) * sr)

    def level(family):
        return rng.uniform(-55, -30) if family == "hum" else rng.uniform(-50, -6)

    speech_families = [f for f in ("speech", "babble", "noisy") if f in families]
    if speech_families and not espeak_available():
        if require_speech:
            raise RuntimeError("espeak-ng not found (apt-get install espeak-ng)")
        warnings.warn("espeak-ng not found: skipping speech, babble and noisy families")
        speech_families = []

    for split in splits:
        spec = SPEECH_FIT if split == "fit" else SPEECH_HELDOUT
        if "speech" in speech_families:
            for li, lang in enumerate(spec["langs"]):
                # each language gets a rotating subset of the split's voices
                voices = [spec["voices"][(li * 3 + k) % len(spec["voices"])] for k in range(4)]
                for voice in voices:
                    for k in range(speech_per_voice):
                        n = length()
                        x = _speech_clip(rng, lang, voice, sr, n)
                        items.append(Item(f"speech/{_voice(lang, voice)}-{k}", "speech", _voice(lang, voice),
                                          split, _norm(x, level("speech")), sr))
        for fam in ("babble", "noisy"):
            if fam not in speech_families:
                continue
            for li, lang in enumerate(spec["langs"]):
                for k in range(max(1, per_variant // 2)):
                    n = length()
                    if fam == "babble":
                        talkers = int(rng.integers(3, 6))
                        x = np.zeros(n, np.float32)
                        for _ in range(talkers):
                            tl = spec["langs"][int(rng.integers(len(spec["langs"])))]
                            v = spec["voices"][int(rng.integers(len(spec["voices"])))]
                            s = _speech_clip(rng, tl, v, sr, n + sr)
                            off = int(rng.integers(0, sr))
                            s = s[off:off + n]
                            x[: len(s)] += s / (np.sqrt(np.mean(s**2)) + 1e-9) * rng.uniform(0.5, 1.0)
                        variant = f"{lang}-x{talkers}"
                    else:
                        v = spec["voices"][int(rng.integers(len(spec["voices"])))]
                        s = _speech_clip(rng, lang, v, sr, n)
                        bg_kind = rng.choice(["white", "pink", "brown", "hum"])
                        bg = _hum(rng, "50-hiss", n, sr) if bg_kind == "hum" else coloured_noise(rng, n, COLOURS[bg_kind], sr)
                        snr = rng.uniform(0, 20)
                        s = s / (np.sqrt(np.mean(s**2)) + 1e-9)
                        bg = bg / (np.sqrt(np.mean(bg**2)) + 1e-9)
                        x = s * 10 ** (snr / 20) + bg
                        variant = f"{_voice(lang, v)}+{bg_kind}"
                    items.append(Item(f"{fam}/{variant}-{k}", fam, variant, split, _norm(x, level(fam)), sr))

        for fam in families:
            if fam not in VARIANTS:
                continue
            fit, held = VARIANTS[fam]
            for variant in (fit if split == "fit" else held):
                for k in range(per_variant):
                    x = _synth(rng, fam, variant, length(), sr).astype(np.float32)
                    items.append(Item(f"{fam}/{variant}-{k}", fam, variant, split,
                                      _fade(_norm(x, level(fam)), sr), sr))
    return items


def write_corpus(items: list[Item], outdir: str | Path) -> Path:
    """Write each item as ``outdir/<name>.wav`` (16-bit PCM) plus ``manifest.csv``."""
    import soundfile as sf

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    with open(outdir / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "family", "variant", "split", "seconds"])
        for it in items:
            path = outdir / f"{it.name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, it.samples, it.sr, subtype="PCM_16")
            w.writerow([f"{it.name}.wav", it.family, it.variant, it.split, round(len(it.samples) / it.sr, 3)])
    return outdir / "manifest.csv"


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus_out"
    items = generate_corpus()
    print(write_corpus(items, out), len(items), "items")
