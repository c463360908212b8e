"""Real recordings from Debian's data packages, cut into clips, augmented toward real listening
conditions, and their per-window detector inputs, cached under ``~/.cache/genrekit/``.

``.ci/real-audio-setup`` downloads the packages (``apt-get download``) and unpacks them with
``dpkg -x`` into ``~/.cache/genrekit/debian-audio/<package>/`` (``GENREKIT_DEBIAN_AUDIO``
overrides the folder); nothing is installed system-wide.

Families and groups (a *group* is never on both sides of a fold: one speaker, or one language
where one package may share speakers with another, or one package of effects or music):

- ``speech``: recorded human voices. Asterisk's telephone prompts (8 kHz: ``asterisk-core-
  sounds-{en,fr,it,ru}-wav``, one speaker per language), KLettres' spoken letters and syllables
  (``klettres-data``, 25 languages) and KTuberling's spoken words (``ktuberling-data``) grouped
  by language across packages, and the character voices of Fish Fillets (``fillets-ng-data``).
  Clips string 1-3 s recordings of one group together with short pauses, 8-14 s.
- ``effects``: game sound effects, grouped by package (Alien Blaster, Battle Tanks, Bucklespring
  keyboard sounds, Chromium B.S.U., Colobot, LBreakout2, Fish Fillets' shared sounds), 6-12 s.
- ``music``: game soundtracks, grouped by package (Colobot, Drascula, Fish Fillets, ASC, the
  Asterisk music-on-hold pieces): two 15 s excerpts per track, 3 x ``per_group`` per package. Battle Tanks' tunes are only used as the music
  bed under speech, never as music-side data.

Each clip is kept clean and also gets one augmentation drawn at random (:data:`AUGMENTATIONS`):
room reverb, telephone band, AM-radio band, MP3 at 32 kbit/s, Opus at 16 kbit/s (both through
PyAV), background noise, and for speech a music bed 8-16 dB under the voice. Music gets the same
treatments (never a bed), so that a treatment alone never says "not music".

Groups in :data:`HELDOUT` are never fitted on: ``tests/test_not_music.py`` and
``benchmarks/bench_not_music.py`` measure the shipped detector on them.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16000
#: Bump when the clips change: cached detector inputs are keyed by it.
VERSION = 1
CACHE = Path(os.environ.get("GENREKIT_REAL_CACHE", Path.home() / ".cache" / "genrekit" / "real-audio"))

#: The Debian packages the real corpus comes from (none of the project's reserved packages).
PACKAGES = (
    "asterisk-core-sounds-en-wav", "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-it-wav",
    "asterisk-core-sounds-ru-wav", "asterisk-moh-opsound-wav", "klettres-data", "ktuberling-data",
    "fillets-ng-data", "colobot-common-sounds", "drascula-music", "asc-music", "btanks-data",
    "alienblaster-data", "chromium-bsu-data", "lbreakout2-data", "bucklespring-data",
)
AUDIO_EXT = (".wav", ".ogg", ".mp3", ".opus", ".flac")
#: Languages (speech) and packages (effects, music) never fitted on: the held-out real set.
HELDOUT = {"speech": ("ru", "uk", "lt", "nl", "he", "el"),
           "effects": ("chromium-bsu", "bucklespring"),
           "music": ("asc-music", "asterisk-moh")}
AUGMENTATIONS = ("reverb", "phone", "radio", "mp3", "opus", "noise", "musicbed")


def debian_audio_root() -> Path:
    return Path(os.environ.get("GENREKIT_DEBIAN_AUDIO", Path.home() / ".cache" / "genrekit" / "debian-audio"))


def available() -> bool:
    """Whether every package of :data:`PACKAGES` is unpacked (``.ci/real-audio-setup`` ran)."""
    root = debian_audio_root()
    return all((root / p).is_dir() for p in PACKAGES)


@dataclass
class Source:
    family: str
    group: str
    paths: list[str]


def _files(pattern: str, min_seconds: float = 0.3, exclude: tuple[str, ...] = ()) -> list[str]:
    root = str(debian_audio_root())
    found = sorted(p for p in glob.glob(f"{root}/{pattern}", recursive=True)
                   if p.lower().endswith(AUDIO_EXT) and not any(e in p for e in exclude) and not os.path.islink(p))
    return [p for p in found if _duration(p) >= min_seconds]


def _duration(path: str) -> float:
    import soundfile as sf

    try:
        return sf.info(path).duration
    except Exception:  # mp3: decode to know
        return len(load(path)) / SR


def sources() -> list[Source]:
    """Every group of real recordings, in a fixed order."""
    out: dict[tuple[str, str], list[str]] = {}

    def add(family, group, paths):
        if paths:
            out.setdefault((family, group), []).extend(paths)

    for lang, voice in (("en", "en_US_f_Allison"), ("fr", "fr_CA_f_June"), ("it", "it_IT_m_Carlo"),
                        ("ru", "ru_RU_f_IvrvoiceRU")):
        add("speech", lang, _files(f"asterisk-core-sounds-{lang}-wav/usr/share/asterisk/sounds/{voice}/**/*",
                                   exclude=("/silence/",)))
    for d in sorted(glob.glob(f"{debian_audio_root()}/klettres-data/usr/share/klettres/*/")):
        add("speech", Path(d).name.split("_")[0], _files(f"klettres-data/usr/share/klettres/{Path(d).name}/**/*"))
    for d in sorted(glob.glob(f"{debian_audio_root()}/ktuberling-data/usr/share/ktuberling/sounds/*/")):
        lang = Path(d).name.split("@")[0].split("_")[0]
        if "@" not in Path(d).name:  # the sr@... variants repeat the sr recordings
            add("speech", lang, _files(f"ktuberling-data/usr/share/ktuberling/sounds/{Path(d).name}/*"))
    add("speech", "fillets", _files("fillets-ng-data/usr/share/games/fillets-ng/sound/*/en/*", min_seconds=0.6,
                                    exclude=("/music/", "/cancan/", "/linux/")))
    add("effects", "alienblaster", _files("alienblaster-data/**/sound/*"))
    add("effects", "btanks", _files("btanks-data/**/sounds/**/*"))
    add("effects", "bucklespring", _files("bucklespring-data/**/*", min_seconds=0.05))
    add("effects", "chromium-bsu", _files("chromium-bsu-data/**/*"))
    add("effects", "colobot", _files("colobot-common-sounds/**/sounds/*"))
    add("effects", "lbreakout2", _files("lbreakout2-data/**/sounds/*", min_seconds=0.05))
    add("effects", "fillets-share", _files("fillets-ng-data/usr/share/games/fillets-ng/sound/share/*"))
    add("music", "colobot", _files("colobot-common-sounds/**/music/*", min_seconds=20))
    add("music", "drascula", _files("drascula-music/**/drascula/audio/*", min_seconds=20))
    add("music", "fillets-music", _files("fillets-ng-data/usr/share/games/fillets-ng/music/*", min_seconds=20))
    add("music", "asc-music", _files("asc-music/**/*", min_seconds=20))
    add("music", "asterisk-moh", _files("asterisk-moh-opsound-wav/**/*", min_seconds=20))
    return [Source(f, g, p) for (f, g), p in out.items()]


def music_beds() -> list[str]:
    """Battle Tanks' tunes: the music bed under speech (never music-side data)."""
    return _files("btanks-data/**/tunes/*", min_seconds=20)


def load(path: str) -> np.ndarray:
    """Mono float32 samples at 16 kHz (soundfile, PyAV for what it cannot read)."""
    import soundfile as sf
    import soxr

    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception:
        import av

        with av.open(path) as container:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
            chunks = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
        return np.concatenate(chunks).astype(np.float32)
    mono = data.mean(axis=1)
    return (soxr.resample(mono, sr, SR) if sr != SR else mono).astype(np.float32)


def is_heldout(family: str, group: str) -> bool:
    return group in HELDOUT[family]


# --- clips --------------------------------------------------------------------------------------

def _normalise(x: np.ndarray, rng, lo=-30.0, hi=-14.0) -> np.ndarray:
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9
    return (x * (10 ** (rng.uniform(lo, hi) / 20) / rms)).astype(np.float32)


def _string_together(paths, rng, seconds, gap=(0.15, 0.7)) -> np.ndarray:
    parts, total = [], 0.0
    for _ in range(200):
        if total >= seconds:
            break
        x = load(paths[rng.integers(len(paths))])
        x = x[: int(6 * SR)] if len(x) > 6 * SR else x
        x = x / (np.abs(x).max() + 1e-9)
        pause = np.zeros(int(rng.uniform(*gap) * SR), np.float32)
        parts += [x, pause]
        total += (len(x) + len(pause)) / SR
    return np.concatenate(parts)[: int(seconds * SR)]


def _excerpts(path, rng, seconds=15.0, count=2) -> list[np.ndarray]:
    x = load(path)
    room = len(x) - int(seconds * SR)
    if room < 0:
        return [x]
    starts = sorted(rng.choice(np.linspace(0.1, 0.8, 8), size=min(count, 8), replace=False))
    return [x[int(s * room): int(s * room) + int(seconds * SR)] for s in starts]


def base_clips(source: Source, rng, per_group: int) -> list[np.ndarray]:
    """Up to ``per_group`` clips of one group (music: two excerpts per track, tracks drawn at random)."""
    if source.family == "music":
        count = 3 * per_group  # music clips are few per track and the tracks few per package
        order = rng.permutation(len(source.paths))[: max(1, count // 2)]
        return [c for i in order for c in _excerpts(source.paths[i], rng)][:count]
    total = sum(_duration(p) for p in source.paths[:400])
    count = int(min(per_group, max(1, total // 10)))
    if source.family == "speech":
        return [_string_together(source.paths, rng, rng.uniform(8, 14)) for _ in range(count)]
    return [_string_together(source.paths, rng, rng.uniform(6, 12), gap=(0.1, 1.0)) for _ in range(count)]


# --- augmentations ------------------------------------------------------------------------------

def _bandpass(x, lo, hi, sr=SR, order=4):
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(order, [lo, hi], btype="band", fs=sr, output="sos"), x).astype(np.float32)


def _codec(x, codec, bitrate, rate):
    import av
    import soxr

    y = soxr.resample(x, SR, rate) if rate != SR else x
    buf = io.BytesIO()
    fmt = {"libmp3lame": "mp3", "libopus": "ogg"}[codec]
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(np.clip(y, -1, 1).astype(np.float32)[None, :], format="flt", layout="mono")
        frame.rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        chunks = [f.to_ndarray().reshape(-1) for fr in container.decode(audio=0) for f in resampler.resample(fr)]
    y = np.concatenate(chunks)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


def augment(x: np.ndarray, kind: str, rng, beds: list[str] | None = None) -> np.ndarray:
    """``x`` (16 kHz mono) under one real-world condition of :data:`AUGMENTATIONS`."""
    if kind == "reverb":
        rt60 = rng.uniform(0.3, 1.2)
        t = np.arange(int(rt60 * SR)) / SR
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0
        wet = np.convolve(x, ir / np.sqrt((ir ** 2).sum()))[: len(x)]
        y = 0.6 * x + rng.uniform(0.4, 0.9) * wet
    elif kind == "phone":
        y = _bandpass(x, 300, 3400)
        y = _codec(y, "libopus", 12000, 16000) if rng.random() < 0.5 else y
    elif kind == "radio":
        y = np.tanh(3 * _bandpass(x, 120, 4500) / (np.abs(x).max() + 1e-9)) * 0.3
    elif kind == "mp3":
        y = _codec(x, "libmp3lame", 32000, 16000)
    elif kind == "opus":
        y = _codec(x, "libopus", 16000, 48000)
    elif kind == "noise":
        white = rng.standard_normal(len(x) + 1)
        noise = np.cumsum(white)[1:] * 0.02 + white[1:] * rng.uniform(0, 1)  # reddish to white
        noise = _bandpass(noise, 40, 7000)
        snr = rng.uniform(5, 20)
        y = x + noise * (np.sqrt(np.mean(x ** 2)) / (np.sqrt(np.mean(noise ** 2)) + 1e-9)) * 10 ** (-snr / 20)
    elif kind == "musicbed":
        bed = load(beds[rng.integers(len(beds))])
        start = rng.integers(0, max(1, len(bed) - len(x)))
        bed = np.resize(bed[start: start + len(x)], len(x))
        under = rng.uniform(8, 16)
        y = x + bed * (np.sqrt(np.mean(x ** 2)) / (np.sqrt(np.mean(bed ** 2)) + 1e-9)) * 10 ** (-under / 20)
    else:
        raise ValueError(kind)
    return np.asarray(y, np.float32)


@dataclass
class Clip:
    name: str
    family: str
    group: str
    variant: str
    samples: np.ndarray


def corpus_clips(seed: int = 0, per_group: int = 6, heldout: bool | None = None,
                 families=("speech", "effects", "music")) -> list[Clip]:
    """Clean and augmented clips of every group (``heldout``: True only held-out groups, False
    only fitting groups, None all). Deterministic for a seed and the installed packages."""
    beds = music_beds()
    clips = []
    for source in sources():
        if source.family not in families or (heldout is not None and is_heldout(source.family, source.group) != heldout):
            continue
        rng = np.random.default_rng([seed, int(hashlib.sha1(f"{source.family}/{source.group}".encode()).hexdigest()[:8], 16)])
        for i, base in enumerate(base_clips(source, rng, per_group)):
            base = _normalise(base, rng)
            kinds = [k for k in AUGMENTATIONS if source.family == "speech" or k != "musicbed"]
            kind = kinds[rng.integers(len(kinds))]
            stem = f"{source.family}/{source.group}/{i}"
            clips.append(Clip(stem + "/clean", source.family, source.group, "clean", base))
            y = augment(base, kind, rng, beds)
            clips.append(Clip(f"{stem}/{kind}", source.family, source.group, kind, np.clip(y, -1, 1)))
    return clips
