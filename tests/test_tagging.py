"""Genre tagging: plans from predictions, safe writes (other tags and audio untouched), undo.

The test library is made here: short tones in every taggable format, some with artist/title
and an existing genre, names with spaces and non-ASCII letters. Audio identity is checked on
the DECODED samples (soundfile, or PyAV for M4A), so a tag write that disturbed a single audio
frame would fail.
"""

import hashlib
import os
import shutil
import stat

import av
import mutagen
import numpy as np
import pytest
import soundfile as sf
import torch
from mutagen.id3 import ID3, TCON, TIT2, TPE1
from torch import nn

from genrekit.apps.cli.main import main
from genrekit.apps.library.db import LibraryDB, default_db_path
from genrekit.apps.library.genre_tags import (
    TagConflictError,
    TagError,
    TaggingNotSupportedError,
    apply_tag_change,
    apply_tag_changes,
    plan_tag_changes,
    read_genres,
    undo_tag_batch,
    write_genres,
)
from genrekit.inference.model import GenreModel

SR = 16000
LOW, HIGH = 200.0, 3000.0  # the test model says "low" / "high" for these tones

# name -> (tone, tags made by the test, genre already in the file)
LIBRARY = {
    "rock song.mp3": (LOW, {"artist": "Ärzte", "title": "Schrei"}, ["Rock"]),
    "Café — ñandú.flac": (HIGH, {"artist": "Zoé", "title": "Ñandú"}, None),
    "sub dir/jazz.ogg": (LOW, {"artist": "Miles", "title": "So What"}, ["Jazz", "Modal"]),
    "voix.opus": (HIGH, {}, None),
    "aac track.m4a": (LOW, {"artist": "Moby", "title": "Porcelain"}, None),
    "plain.wav": (HIGH, {}, None),
    "plain.aiff": (LOW, {"artist": "AIFF artist"}, None),
}


def tone(freq, seconds=1.5):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_m4a(path, samples):
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = SR
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def write_audio(path, samples):
    suffix = path.suffix
    if suffix == ".m4a":
        write_m4a(path, samples)
    elif suffix == ".mp3":
        sf.write(path, samples, SR, format="MP3", subtype="MPEG_LAYER_III")
    elif suffix == ".ogg":
        sf.write(path, samples, SR, format="OGG", subtype="VORBIS")
    elif suffix == ".opus":
        sf.write(path, samples, SR, format="OGG", subtype="OPUS")
    else:
        sf.write(path, samples, SR)


def add_tags(path, tags, genre):
    audio = mutagen.File(path)
    if path.suffix in (".mp3", ".wav", ".aiff"):
        if not tags and genre is None:
            return
        if audio.tags is None:
            audio.add_tags()
        frames = {"artist": TPE1, "title": TIT2}
        for key, value in tags.items():
            audio.tags.add(frames[key](encoding=3, text=[value]))
        if genre:
            audio.tags.add(TCON(encoding=3, text=genre))
        audio.save(v2_version=3)  # an ID3v2.3 file, as most taggers write them
        return
    keys = {"artist": "\xa9ART", "title": "\xa9nam", "genre": "\xa9gen"} if path.suffix == ".m4a" else {}
    for key, value in [*tags.items(), *([("genre", genre)] if genre else [])]:
        audio[keys.get(key, key)] = value if isinstance(value, list) else [value]
    audio.save()


@pytest.fixture(scope="module")
def master_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("master")
    for name, (freq, tags, genre) in LIBRARY.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, tone(freq))
        add_tags(path, tags, genre)
    sf.write(root / "legacy.au", tone(LOW), SR)  # audio genrekit reads but cannot tag
    return root


@pytest.fixture
def library(master_library, tmp_path):
    root = tmp_path / "My Music"
    shutil.copytree(master_library, root)
    return root


def decoded_sha256(path):
    """Hash of the decoded samples (not the file bytes, which tagging changes)."""
    if path.suffix == ".m4a":
        with av.open(str(path)) as container:
            samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    else:
        samples, _ = sf.read(path, dtype="float32")
    return hashlib.sha256(np.ascontiguousarray(samples).tobytes()).hexdigest()


def other_tags(path):
    """Every tag except the genre, as comparable text."""
    tags = mutagen.File(path).tags
    if tags is None:
        return {}
    if isinstance(tags, ID3):
        return {key: str(frame) for key, frame in tags.items() if key != "TCON"}
    return {key.lower(): [str(v) for v in values] for key, values in tags.items()
            if key.lower() not in ("genre", "\xa9gen")}


def snapshot(root):
    """Bytes of every file under ``root`` (the database excluded)."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".genrekit.sqlite")}


def prediction(path, genre="rock", confidence=0.9):
    return {"path": str(path), "genre": genre, "confidence": confidence,
            "top": [{"genre": genre, "probability": confidence}], "duration": 1.5}


# -- reading and writing one file -------------------------------------------------------------


def test_read_genres_of_every_format(library):
    for name, (_, _, genre) in LIBRARY.items():
        assert read_genres(library / name) == (genre or []), name


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_write_sets_genre_and_keeps_other_tags_and_audio(library, name):
    path = library / name
    os.chmod(path, 0o640)
    tags_before, audio_before = other_tags(path), decoded_sha256(path)
    write_genres(path, ["Hip-Hop", "Ünïcode"])
    assert read_genres(path) == ["Hip-Hop", "Ünïcode"]
    assert other_tags(path) == tags_before
    assert decoded_sha256(path) == audio_before
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in path.parent.iterdir() if "genrekit-tmp" in p.name]
    write_genres(path, None)
    assert read_genres(path) == []
    assert other_tags(path) == tags_before
    assert decoded_sha256(path) == audio_before


def test_id3v23_files_stay_id3v23(library):
    path = library / "rock song.mp3"
    write_genres(path, ["Blues"])
    assert ID3(path).version[:2] == (2, 3)


def test_unsupported_format_is_reported(library):
    with pytest.raises(TaggingNotSupportedError, match=r"legacy\.au: tagging not supported for \.au"):
        read_genres(library / "legacy.au")
    [change] = plan_tag_changes([prediction(library / "legacy.au")])
    assert change.action == "unsupported"


def test_write_goes_through_a_symlink_to_its_target(library):
    link = library / "link.flac"
    link.symlink_to(library / "Café — ñandú.flac")
    write_genres(link, ["Pop"])
    assert link.is_symlink()
    assert read_genres(library / "Café — ñandú.flac") == ["Pop"]


def test_hard_linked_file_is_not_split(library):
    path = library / "voix.opus"
    os.link(path, library / "second name.opus")
    with pytest.raises(TagError, match="2 hard links"):
        write_genres(path, ["Pop"])
    assert read_genres(library / "second name.opus") == []


def test_conflict_when_the_file_changed_after_planning(library):
    path = library / "rock song.mp3"
    [change] = plan_tag_changes([prediction(path, "pop")], keep_existing=False)
    write_genres(path, ["Metal"])  # someone else edits the tag in between
    before = path.read_bytes()
    with pytest.raises(TagConflictError):
        apply_tag_change(change)
    assert path.read_bytes() == before


@pytest.mark.parametrize("crash", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_crash_before_the_replace_leaves_the_original_intact(library, monkeypatch, crash):
    path = library / "Café — ñandú.flac"
    before = path.read_bytes()

    def crash_now(*args, **kwargs):
        raise crash

    monkeypatch.setattr(os, "replace", crash_now)
    with pytest.raises(TagError if isinstance(crash, OSError) else KeyboardInterrupt):
        write_genres(path, ["Jazz"])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


def test_read_only_file_is_not_forced(library):
    path = library / "plain.wav"
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(TagError, match="read-only"):
        write_genres(path, ["Rock"])
    assert path.read_bytes() == before


# -- plans ------------------------------------------------------------------------------------


def test_plan_respects_min_confidence_and_existing_genres(library):
    predictions = [
        prediction(library / "Café — ñandú.flac", "hiphop", 0.8),   # no genre: write
        prediction(library / "voix.opus", "jazz", 0.3),              # low confidence
        prediction(library / "rock song.mp3", "pop", 0.99),          # has a genre: keep
        prediction(library / "sub dir/jazz.ogg", "blues", 0.6),      # has a genre: keep
        {"path": str(library / "broken.mp3"), "error": "broken.mp3: corrupt"},
    ]
    changes = plan_tag_changes(predictions, min_confidence=0.5)
    assert [c.action for c in changes] == ["write", "low-confidence", "keep-existing", "keep-existing", "failed"]
    assert changes[0].new == ["Hip-Hop"] and changes[0].old == []
    assert changes[2].old == ["Rock"]
    assert changes[4].reason == "broken.mp3: corrupt"

    replacing = plan_tag_changes(predictions, min_confidence=0.2, keep_existing=False)
    assert [c.action for c in replacing] == ["write", "write", "write", "write", "failed"]
    assert replacing[3].old == ["Jazz", "Modal"] and replacing[3].new == ["Blues"]
    # the threshold is inclusive and a genre already there is not rewritten
    assert plan_tag_changes([prediction(library / "voix.opus", "pop", 0.5)])[0].action == "write"
    assert plan_tag_changes([prediction(library / "rock song.mp3", "rock", 0.9)],
                            keep_existing=False)[0].action == "unchanged"


# -- batches with history and undo ------------------------------------------------------------


def test_batch_continues_past_a_read_only_file_and_undo_restores_exactly(library):
    names = sorted(LIBRARY)
    before = {name: (read_genres(library / name), other_tags(library / name)) for name in names}
    os.chmod(library / "plain.wav", 0o444)
    changes = plan_tag_changes([prediction(library / n, "metal") for n in names], keep_existing=False)
    with LibraryDB(default_db_path(library)) as db:
        batch_id, outcomes = apply_tag_changes(changes, db)
        assert {o.path.relative_to(library).as_posix(): o.action for o in outcomes} == {
            n: ("failed" if n == "plain.wav" else "written") for n in names}
        failed = next(o for o in outcomes if o.action == "failed")
        assert "read-only" in failed.reason
        for name in names:
            expected = before[name][0] if name == "plain.wav" else ["Metal"]
            assert read_genres(library / name) == expected

        assert db.last_tag_batch() == batch_id
        undone_id, restored = undo_tag_batch(db)
        assert undone_id == batch_id
        assert {r.action for r in restored} == {"restored"}
        for name in names:
            assert (read_genres(library / name), other_tags(library / name)) == before[name], name
        assert db.last_tag_batch() is None
    with pytest.raises(Exception, match="no tag batch to undo"):
        with LibraryDB(default_db_path(library)) as db:
            undo_tag_batch(db)


def test_undo_leaves_files_edited_since_alone(library):
    paths = [library / "voix.opus", library / "plain.aiff"]
    with LibraryDB(default_db_path(library)) as db:
        apply_tag_changes(plan_tag_changes([prediction(p, "disco") for p in paths]), db)
        write_genres(paths[0], ["Edited By Hand"])
        _, outcomes = undo_tag_batch(db)
    actions = {o.path.name: o.action for o in outcomes}
    assert actions == {"voix.opus": "changed-since", "plain.aiff": "restored"}
    assert read_genres(paths[0]) == ["Edited By Hand"]
    assert read_genres(paths[1]) == []


def test_undo_after_a_crash_between_write_and_record(library, monkeypatch):
    """The intent is recorded before the write, so a kill right after the write is undoable."""
    import genrekit.apps.library.genre_tags as tagging

    path = library / "aac track.m4a"
    real_apply = tagging.apply_tag_change

    def write_then_die(change):
        real_apply(change)
        raise KeyboardInterrupt

    monkeypatch.setattr(tagging, "apply_tag_change", write_then_die)
    with LibraryDB(default_db_path(library)) as db:
        with pytest.raises(KeyboardInterrupt):
            apply_tag_changes(plan_tag_changes([prediction(path, "country")]), db)
        assert read_genres(path) == ["Country"]
        _, [outcome] = undo_tag_batch(db)
    assert outcome.action == "restored"
    assert read_genres(path) == []


def test_unknown_batch_is_a_usage_error(library):
    with LibraryDB(default_db_path(library)) as db, pytest.raises(Exception, match="no tag batch 7"):
        undo_tag_batch(db, 7)


# -- the genrekit tag command -----------------------------------------------------------------


class BandEnergy(nn.Module):
    """(batch, samples) -> (batch, 2) log energy below / above 1 kHz."""

    def forward(self, x):
        power = torch.fft.rfft(x, dim=-1).abs() ** 2
        cut = int(1000 * x.shape[-1] / SR)
        return torch.log(torch.stack([power[:, :cut].sum(-1), power[:, cut:].sum(-1)], -1) + 1e-9)


class Compare(nn.Module):
    def forward(self, bands):
        return torch.stack([bands[:, 0] - bands[:, 1], bands[:, 1] - bands[:, 0]], -1)


@pytest.fixture
def band_model(monkeypatch):
    """A model that hears "low" or "high" tones, installed as the model the CLI loads."""
    import genrekit.apps.library.results
    import genrekit.inference.model

    spec = {"name": "band-test", "model_id": "band-test-1", "labels": ["low", "high"], "sample_rate": SR,
            "segment": {"window": 1.0, "hop": 1.0, "last": "pad"}, "calibration": {"temperature": 1.0},
            "feature": {"name": "band-energy"}, "architecture": {"name": "compare"}}
    model = GenreModel(spec=spec, feature=BandEnergy(), network=Compare())
    monkeypatch.setattr(genrekit.inference.model, "load_model", lambda path=None: model)
    calls = []
    real_predict_files = genrekit.apps.library.results.predict_files

    def counting_predict_files(paths, model, **options):
        calls.append(len(paths))
        return real_predict_files(paths, model, **options)

    monkeypatch.setattr(genrekit.apps.library.results, "predict_files", counting_predict_files)
    return calls


def run_tag(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["tag", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cli_dry_run_changes_nothing(library, band_model, capsys):
    before = snapshot(library)
    code, out, err = run_tag(capsys, library)
    assert code == 0, out + err
    assert snapshot(library) == before
    assert "Café — ñandú.flac" in out and "High" in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "keep-existing" in lines["rock song.mp3"]
    assert "unsupported" in lines["legacy.au"]
    assert "write" in lines["voix.opus"]
    assert "nothing changed" in err
    assert band_model == [len(LIBRARY) + 1]  # every file predicted once, the results stored


def test_cli_write_then_undo(library, band_model, capsys):
    before = {name: (read_genres(library / name), other_tags(library / name), decoded_sha256(library / name))
              for name in LIBRARY}
    code, out, _ = run_tag(capsys, library, "--write")
    assert code == 0
    for name, (freq, _, genre) in LIBRARY.items():
        expected = genre or (["Low"] if freq == LOW else ["High"])
        assert read_genres(library / name) == expected, name
        assert other_tags(library / name) == before[name][1]
        assert decoded_sha256(library / name) == before[name][2]

    # tagging re-keyed the stored results: a second run predicts nothing, plans nothing new
    code, out, _ = run_tag(capsys, library, "--write", "--replace-existing")
    assert band_model == [len(LIBRARY) + 1]
    assert "unchanged" in out
    assert read_genres(library / "rock song.mp3") == ["Low"]  # replaced in this second batch

    code, out, _ = run_tag(capsys, library, "--undo")
    assert code == 0 and "restored" in out
    assert read_genres(library / "rock song.mp3") == ["Rock"]
    code, out, _ = run_tag(capsys, library, "--undo")
    assert code == 0
    for name in LIBRARY:
        assert (read_genres(library / name), other_tags(library / name)) == before[name][:2], name
    code, _, err = run_tag(capsys, library, "--undo")
    assert code == 2 and "no tag batch to undo" in err


def test_cli_reports_read_only_file_and_exits_1(library, band_model, capsys):
    os.chmod(library / "voix.opus", 0o444)
    code, out, _ = run_tag(capsys, library, "--write", "--min-confidence", "0.0")
    assert code == 1
    assert "read-only" in out
    assert read_genres(library / "voix.opus") == []
    assert read_genres(library / "plain.wav") == ["High"]


def test_cli_db_option_and_batch_needs_undo(library, band_model, capsys, tmp_path):
    db_path = tmp_path / "elsewhere" / "state.sqlite"
    db_path.parent.mkdir()  # output paths go into existing folders
    code, _, _ = run_tag(capsys, library / "voix.opus", "--db", db_path, "--write")
    assert code == 0 and db_path.is_file()
    assert not default_db_path(library).exists()
    assert read_genres(library / "voix.opus") == ["High"]
    code, _, err = run_tag(capsys, library, "--batch", "1")
    assert code == 2 and "--undo" in err
    code, _, _ = run_tag(capsys, library, "--db", db_path, "--undo", "--batch", "1")
    assert code == 0 and read_genres(library / "voix.opus") == []
