"""Every common format: folder scans find them, genres are written the format's own way and undone.

Which test covers which format (files made by tests/audio_formats.py, which says how):

=====================  ================================================================
Format                 Tests
=====================  ================================================================
WavPack, TTA, DSF,     all: folder scan (``test_folder_scan_*``), decoding to the right tone
WMA, Musepack          and length (``test_every_decodable_format_*``), the genre written the
                       format's way with several values, other tags and decoded audio kept
                       (``test_native_genre_*``), undo (``test_undo_*``), ``genrekit tag --write``
                       then ``--undo`` (``test_cli_*``). Musepack only where Debian's mpcenc is
                       installed (else skipped). Undo of an untagged file is byte-exact for all
                       but WMA: mutagen rewrites an ASF header with a padding object, so a WMA
                       file gets back its exact genre values and other tags, and its audio.
Monkey's Audio         no encoder is at hand, so a header-only file: folder scan, genre written
                       as APEv2 and undone byte-exactly; FFmpeg cannot decode it, which the CLI
                       test checks is one failed row while the rest is tagged.
=====================  ================================================================

The formats tagged before (MP3, WAV, AIFF, FLAC, Ogg Vorbis, Opus, M4A) are covered by
tests/test_tagging.py and tests/test_tag_leftovers.py.
"""

import hashlib

import av
import mutagen
import numpy as np
import pytest
from audio_formats import can_make, write_format
from mutagen.apev2 import APEv2
from mutagen.id3 import ID3, TPE1
from test_tagging import HIGH, LOW, SR, band_model, run_tag, tone  # noqa: F401 (band_model: fixture)

from genrekit.apps.library.genre_tags import read_genres, write_genres
from genrekit.inference.batch import collect_audio_files

FORMATS = [".wv", ".tta", ".dsf", ".mpc", ".wma", ".ape"]
DECODABLE = [".wv", ".tta", ".dsf", ".mpc", ".wma"]


def needs(suffix):
    if not can_make(suffix):
        pytest.skip(f"cannot make {suffix} files here (Debian's musepack-tools has mpcenc)")


def make(tmp_path, suffix, freq=LOW, bare=True, name="track"):
    needs(suffix)
    return write_format(tmp_path / f"{name}{suffix}", tone(freq), SR, bare=bare)


def native_genres(path):
    """The genre as a player reads it, straight from the format's own tag."""
    suffix = path.suffix
    if suffix in (".wv", ".tta", ".ape", ".mpc"):
        try:
            return list(APEv2(path)["Genre"])
        except (KeyError, mutagen.MutagenError):
            return []
    if suffix == ".wma":
        return [str(v) for v in mutagen.File(path).tags.get("WM/Genre", [])]
    tags = mutagen.File(path).tags
    assert tags is None or isinstance(tags, ID3)
    return [] if tags is None or "TCON" not in tags else list(tags["TCON"].text)


def add_artist(path):
    audio = mutagen.File(path)
    if path.suffix == ".tta":
        tags = APEv2()
        tags["Artist"] = "Ärzte"
        tags.save(path)
        return
    if audio.tags is None:
        audio.add_tags()
    if path.suffix == ".dsf":
        audio.tags.add(TPE1(encoding=3, text=["Ärzte"]))
    elif path.suffix == ".wma":
        audio.tags["Author"] = ["Ärzte"]
    else:
        audio.tags["Artist"] = "Ärzte"
    audio.save()


def artist(path):
    if path.suffix == ".dsf":
        return str(mutagen.File(path).tags["TPE1"])
    tags = APEv2(path) if path.suffix in (".wv", ".tta", ".ape", ".mpc") else mutagen.File(path).tags
    key = "Author" if path.suffix == ".wma" else "Artist"
    return [str(v) for v in tags[key]] if path.suffix == ".wma" else str(tags[key])


def decoded_sha256(path):
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    return hashlib.sha256(samples.tobytes()).hexdigest()


def test_folder_scan_finds_every_format(tmp_path):
    made = sorted(str(make(tmp_path, s)) for s in FORMATS if can_make(s))
    found = [path for path, problem in collect_audio_files([tmp_path]) if not problem]
    assert sorted(found) == made


@pytest.mark.parametrize("suffix", FORMATS)
def test_native_genre_with_several_values_keeps_other_tags_and_audio(tmp_path, suffix):
    path = make(tmp_path, suffix, bare=False)
    add_artist(path)
    audio_before = None if suffix == ".ape" else decoded_sha256(path)
    write_genres(path, ["Jazz", "Modal Jazz"])
    assert read_genres(path) == native_genres(path) == ["Jazz", "Modal Jazz"]
    assert artist(path) in ("Ärzte", ["Ärzte"])
    if audio_before is not None:
        assert decoded_sha256(path) == audio_before


@pytest.mark.parametrize("suffix", FORMATS)
def test_undo_of_an_untagged_file(tmp_path, suffix):
    path = make(tmp_path, suffix, bare=True)
    original = path.read_bytes()
    write_genres(path, ["Rock"])
    assert native_genres(path) == ["Rock"] and path.read_bytes() != original
    write_genres(path, None, expected=["Rock"])  # what undo does for a file that had no genre
    assert read_genres(path) == []
    if suffix == ".wma":
        assert mutagen.File(path).tags.get("WM/Genre") is None
        assert decoded_sha256(path) == decoded_sha256(make(tmp_path, suffix, name="fresh"))
    else:
        assert path.read_bytes() == original


@pytest.mark.parametrize("suffix", FORMATS)
def test_undo_puts_back_a_previous_genre_exactly(tmp_path, suffix):
    path = make(tmp_path, suffix, bare=False)
    add_artist(path)
    write_genres(path, ["Blues", "Delta Blues"])
    tagged = path.read_bytes()
    write_genres(path, ["Rock"], expected=["Blues", "Delta Blues"])
    write_genres(path, ["Blues", "Delta Blues"], expected=["Rock"])
    assert native_genres(path) == ["Blues", "Delta Blues"] and artist(path) in ("Ärzte", ["Ärzte"])
    if suffix != ".wma":
        assert path.read_bytes() == tagged


def test_cli_tags_every_decodable_format_and_undoes(tmp_path, band_model, capsys):
    library = tmp_path / "lib"
    library.mkdir()
    expected = {}
    for i, suffix in enumerate(s for s in FORMATS if can_make(s)):
        freq = LOW if i % 2 else HIGH
        expected[make(library, suffix, freq).name] = "Low" if freq == LOW else "High"
    before = {name: (library / name).read_bytes() for name in expected}
    code, out, _ = run_tag(capsys, library, "--write", "--min-confidence", "0")
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert code == 1  # the header-only .ape file cannot be decoded: one failed row, the rest tagged
    assert "failed" in rows["track.ape"] and read_genres(library / "track.ape") == []
    for name, genre in expected.items():
        if not name.endswith(".ape"):
            assert read_genres(library / name) == native_genres(library / name) == [genre], name
    code, out, _ = run_tag(capsys, library, "--undo")
    assert code == 0
    for name in expected:
        assert read_genres(library / name) == []
        if not name.endswith(".wma"):
            assert (library / name).read_bytes() == before[name], name


@pytest.mark.parametrize("suffix", DECODABLE)
def test_every_decodable_format_decodes_to_its_tone_and_length(tmp_path, suffix):
    """Length from the header (or, where a demuxer says 0 as FFmpeg's Musepack SV8 one does, by
    counting) and the tone itself, at the model's rate."""
    from genrekit.audio.decode import audio_info, load_audio

    path = make(tmp_path, suffix, freq=440.0)
    assert audio_info(path).duration == pytest.approx(1.5, abs=0.05)
    audio = load_audio(path, sr=SR)
    assert audio.duration == pytest.approx(1.5, abs=0.05)
    spectrum = np.abs(np.fft.rfft(audio.samples[:SR]))
    assert np.argmax(spectrum) == 440  # 1 Hz bins over one second
