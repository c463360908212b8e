"""Audio files in the less common formats genrekit reads and tags, made by the tests themselves.

========================  ===============================================================
Format                    How the file is made
========================  ===============================================================
WavPack (.wv)             PyAV's ``wavpack`` encoder
TTA (.tta)                PyAV's ``tta`` encoder
WMA (.wma, ASF)           PyAV's ``wmav2`` encoder in the ``asf`` muxer
DSF (.dsf)                written here: a first-order sigma-delta modulation of the samples
                          (1-bit DSD64, LSB first), in the DSF layout FFmpeg decodes
Musepack (.mpc)           Debian's ``mpcenc`` (package musepack-tools) when installed
Monkey's Audio (.ape)     no encoder is at hand: only a valid header, so mutagen can tag it;
                          FFmpeg cannot decode it (tag round trips only)
========================  ===============================================================

FFmpeg writes an APEv2 tag holding only ``Encoder`` into WavPack and TTA files; ``bare=True``
removes it, giving a file without any tag.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

#: DSD64: 64 times the CD sample rate.
DSD_RATE = 2_822_400


def can_make(suffix: str) -> bool:
    """Whether this machine can make a file of ``suffix`` (.mpc needs mpcenc)."""
    return suffix != ".mpc" or shutil.which("mpcenc") is not None


def write_format(path: Path, samples: np.ndarray, sr: int, *, bare: bool = False) -> Path:
    """Write mono float ``samples`` at ``sr`` Hz to ``path`` in the format its suffix names."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".wv":
        encode_with_pyav(path, samples, sr, "wavpack", "wv", sample_format="s16p")
    elif suffix == ".tta":
        encode_with_pyav(path, samples, sr, "tta", "tta", sample_format="s16")
    elif suffix == ".wma":
        encode_with_pyav(path, samples, sr, "wmav2", "asf", sample_format="fltp", bit_rate=64000)
    elif suffix == ".dsf":
        write_dsf(path, samples, sr)
    elif suffix == ".mpc":
        _mpcenc(path, samples, sr)
    elif suffix == ".ape":
        write_ape_header(path, sr, len(samples))
    else:
        raise ValueError(f"no writer for {suffix}")
    if bare and suffix in (".wv", ".tta"):
        from mutagen.apev2 import delete

        delete(path)
    return path


def encode_with_pyav(path: Path, samples: np.ndarray, sr: int, codec: str, container_format: str | None = None, *,
                     sample_format: str = "flt", bit_rate: int | None = None, frame_size: int = 1024) -> Path:
    """Encode mono float ``samples`` (±1) at ``sr`` Hz with FFmpeg's ``codec`` into ``path``.

    ``sample_format`` is the frames' PyAV format (``s16``/``s16p`` scale to int16); the samples go
    in frames of ``frame_size`` (PyAV re-buffers them to the codec's own frame size)."""
    import av

    pcm = samples.astype(np.float32) if sample_format.startswith("flt") else (samples * 32767).astype(np.int16)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sr, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        for start in range(0, len(pcm), frame_size):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + frame_size], format=sample_format, layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Path(path)


def _mpcenc(path: Path, samples, sr: int) -> None:
    import soundfile as sf
    import soxr

    wav = path.with_name(path.stem + ".mpcenc-input.wav")
    sf.write(wav, soxr.resample(samples, sr, 44100), 44100, subtype="PCM_16")  # Musepack: 32-48 kHz
    try:
        subprocess.run(["mpcenc", "--silent", "--overwrite", str(wav), str(path)], check=True,
                       capture_output=True)
    finally:
        wav.unlink()


def write_dsf(path: Path, samples: np.ndarray, sr: int) -> Path:
    """A mono DSD64 DSF file of ``samples`` (float, ±1) at ``sr`` Hz.

    First-order sigma-delta: with ``u`` the signal mapped to [0, 1] and upsampled to 2.8224 MHz,
    bit ``n`` is ``floor(sum(u[:n+1])) - floor(sum(u[:n]))``, whose running mean follows ``u``.
    """
    import soxr

    upsampled = soxr.resample(samples.astype(np.float64), sr, DSD_RATE // 64)  # 44.1 kHz first
    upsampled = np.repeat(upsampled, 64)
    density = np.clip((upsampled * 0.5 + 1.0) / 2.0, 0.0, 1.0)  # 50 % modulation depth at most
    running = np.floor(np.cumsum(density))
    bits = np.diff(running, prepend=0.0).astype(np.uint8)
    block = 4096  # bytes per channel per block, as the DSF specification fixes it
    data = np.packbits(bits, bitorder="little")
    data = np.concatenate([data, np.zeros(-len(data) % block, np.uint8)]).tobytes()
    fmt = struct.pack("<4sQIIIIIIQII", b"fmt ", 52, 1, 0, 1, 1, DSD_RATE, 1, len(bits), block, 0)
    data_chunk = struct.pack("<4sQ", b"data", 12 + len(data)) + data
    total = 28 + len(fmt) + len(data_chunk)
    Path(path).write_bytes(struct.pack("<4sQQQ", b"DSD ", 28, total, 0) + fmt + data_chunk)
    return Path(path)


def write_ape_header(path: Path, sr: int, frames: int) -> Path:
    """A Monkey's Audio (3.99) descriptor and header with no audio frames: tags only."""
    descriptor = struct.pack("<4sHH7I16s", b"MAC ", 3990, 0, 52, 24, 0, 0, 0, 0, 0, b"\0" * 16)
    header = struct.pack("<HHIIIHHI", 2000, 0, 73728, frames % 73728, frames // 73728 + 1, 16, 1, sr)
    Path(path).write_bytes(descriptor + header)
    return Path(path)
