"""Files a decoder stops short on (issue 17, item 2): the other backend is tried, what decodes is
classified, a real shortfall is a warning on the record, too little audio an error; and every
format the folder scan accepts decodes to its full length with each backend that reads it."""

import struct

import av
import numpy as np
import pytest
import soundfile as sf

from audio_formats import can_make, encode_with_pyav, write_dsf, write_format
from genrekit.audio import decode
from genrekit.audio.decode import AUDIO_EXTENSIONS, load_audio
from genrekit.errors import CorruptAudioError


def sine(seconds, sr=44100, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.2 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _crc_table():
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


_CRC = _crc_table()


def ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) & 0xFF) ^ byte]
    return crc


def early_start_vorbis(path, seconds=6.0, sr=44100, shift=2000):
    """A valid Ogg Vorbis file whose first audio page ends ``shift`` samples before the samples it
    completes (the Vorbis spec's start trimming, as in streams cut from a broadcast): libsndfile
    1.2 declares the full length but stops about 1024 samples short; FFmpeg decodes every sample."""
    sf.write(path, sine(seconds, sr), sr, format="OGG", subtype="VORBIS")
    data, offset, page = bytearray(path.read_bytes()), 0, 0
    while offset < len(data):
        n_segments = data[offset + 26]
        length = 27 + n_segments + sum(data[offset + 27: offset + 27 + n_segments])
        if page == 2:  # the first page after the two header pages
            granule = struct.unpack_from("<q", data, offset + 6)[0]
            struct.pack_into("<q", data, offset + 6, granule - shift)
            struct.pack_into("<I", data, offset + 22, 0)
            struct.pack_into("<I", data, offset + 22, ogg_crc(bytes(data[offset: offset + length])))
        offset, page = offset + length, page + 1
    path.write_bytes(bytes(data))
    return path


def test_an_ogg_file_libsndfile_stops_short_on_decodes_in_full(tmp_path):
    path = early_start_vorbis(tmp_path / "soundtrack.ogg")
    with sf.SoundFile(path) as handle:  # the premise: libsndfile stops short of what it declares
        assert len(handle.read(dtype="float32")) < handle.frames
    audio = load_audio(path, sr=None)
    assert audio.duration == pytest.approx(6.0, abs=1e-3)
    assert not audio.repairs.truncated


@pytest.mark.parametrize("fmt,suffix", [("WAV", ".wav"), ("FLAC", ".flac"), ("AIFF", ".aiff")])
def test_a_cut_file_is_classified_with_a_warning(tmp_path, tiny_model_file, fmt, suffix):
    from genrekit.inference.model import load_model

    whole = tmp_path / f"whole{suffix}"
    sf.write(whole, sine(8.0, 22050), 22050, format=fmt)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    audio = load_audio(cut, sr=22050)
    assert 3.0 < audio.duration < 4.5
    assert audio.repairs.truncated
    prediction = load_model(tiny_model_file).predict(str(cut)).to_dict()
    assert prediction["genre"] is not None
    assert any(w.startswith("truncated:") for w in prediction["warnings"]), prediction["warnings"]


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_too_little_audio_is_still_an_error(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    sf.write(whole, sine(8.0, 22050), 22050)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 20])
    with pytest.raises(CorruptAudioError, match="truncated"):
        load_audio(cut)


def _pyav_writer(codec, container=None, sr=44100, sample_format="flt", bit_rate=None):
    def write(path, samples):
        encode_with_pyav(path, samples, sr, codec, container, sample_format=sample_format, bit_rate=bit_rate)
    return write


def _soundfile_writer(fmt, subtype=None, sr=44100):
    def write(path, samples):
        sf.write(path, samples, sr, format=fmt, subtype=subtype)
    return write


#: How to write a file of each extension the folder scan accepts (libsndfile where it can, else FFmpeg).
WRITERS = {
    ".wav": _soundfile_writer("WAV"), ".wave": _soundfile_writer("WAV"), ".au": _soundfile_writer("AU"),
    ".snd": _soundfile_writer("AU"), ".aif": _soundfile_writer("AIFF"), ".aiff": _soundfile_writer("AIFF"),
    ".aifc": _soundfile_writer("AIFF"), ".flac": _soundfile_writer("FLAC"), ".ogg": _soundfile_writer("OGG", "VORBIS"),
    ".oga": _soundfile_writer("OGG", "VORBIS"), ".opus": _soundfile_writer("OGG", "OPUS", 48000),
    ".mp3": _soundfile_writer("MP3"), ".caf": _soundfile_writer("CAF"), ".w64": _soundfile_writer("W64"),
    ".rf64": _soundfile_writer("RF64"), ".m4a": _pyav_writer("aac", "ipod"), ".aac": _pyav_writer("aac", "adts"),
    ".mp4": _pyav_writer("aac", "mp4"), ".alac": _pyav_writer("alac", "ipod"), ".wma": _pyav_writer("wmav2", "asf", sample_format="fltp", bit_rate=128000),
    ".webm": _pyav_writer("libopus", "webm", 48000), ".mka": _pyav_writer("aac", "matroska", sample_format="fltp"),
    ".wv": _pyav_writer("wavpack", "wv"), ".tta": _pyav_writer("tta", "tta"),
    ".dsf": lambda path, samples: write_dsf(path, samples, 44100),  # FFmpeg decodes DSD64 at 352.8 kHz
}
if can_make(".mpc"):
    WRITERS[".mpc"] = lambda path, samples: write_format(path, samples, 44100)


def _backend_lengths(path):
    """Seconds each backend that opens ``path`` decodes: ``{"soundfile": s, "pyav": s}``."""
    lengths = {}
    try:
        info = decode._soundfile_info(path)
    except (sf.SoundFileError, CorruptAudioError):
        info = None
    if info is not None and 0 < info.frames < 2**62:
        lengths["soundfile"] = sum(len(b) for b in decode._read_soundfile(path, info, 0, None, 1 << 16)) / info.sr
    info = decode._pyav_info(path)
    lengths["pyav"] = sum(len(b) for b in decode._read_pyav(path, info, 0, None, 1 << 16)) / info.sr
    return lengths


@pytest.mark.parametrize("suffix", sorted(AUDIO_EXTENSIONS))
def test_every_scanned_format_decodes_in_full_with_each_backend(tmp_path, suffix):
    if suffix not in WRITERS:
        pytest.skip(f"no encoder here writes {suffix}")
    path = tmp_path / f"tone{suffix}"
    try:
        WRITERS[suffix](path, sine(4.0, 48000 if suffix in (".opus", ".webm") else 44100))
    except (av.FFmpegError, sf.SoundFileError, ValueError) as error:
        pytest.skip(f"cannot encode {suffix} here ({error})")
    lengths = _backend_lengths(path)
    for backend, seconds in lengths.items():
        assert seconds == pytest.approx(4.0, abs=0.06), (backend, lengths)
    audio = load_audio(path, sr=16000)
    assert audio.duration == pytest.approx(4.0, abs=0.06) and not audio.repairs.truncated
