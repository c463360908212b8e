import csv
import json

import numpy as np
import pytest
import soundfile as sf

from genrekit.apps.cli.main import main
from genrekit.data.datasets import (
    GTZAN_GENRES,
    detect_kind,
    fma_audio_path,
    format_summary,
    load_gtzan_artists,
    open_dataset,
    read_fma_tracks,
    summarize,
)
from genrekit.errors import DatasetError, UsageError

SR = 8000


def write_wav(path, seconds=0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), SR)
    return path


def kinds(dataset):
    return sorted(problem.kind for problem in dataset.problems)


# --- GTZAN -----------------------------------------------------------------------------------


@pytest.fixture
def gtzan(tmp_path):
    root = tmp_path / "gtzan"
    for genre in ("blues", "jazz", "rock"):
        for number in range(3):
            write_wav(root / genre / f"{genre}.{number:05d}.wav")
    write_wav(root / "blues" / "blues.00001.flac")  # same id as blues.00001.wav
    write_wav(root / "rock" / "notes.wav")  # not <genre>.NNNNN
    (root / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x00\x00garbage, not a wave file")
    sf.write(root / "rock" / "rock.00002.wav", np.zeros(0), SR)  # a header and no samples
    (root / "labels.csv").write_text("path,genre\n")
    return root


def test_gtzan_tracks_ids_and_labels(gtzan):
    dataset = open_dataset(gtzan)
    assert dataset.kind == "gtzan"
    assert dataset.labels == ["blues", "jazz", "rock"]
    assert dataset.label_counts() == {"blues": 3, "jazz": 4, "rock": 3}
    ids = [track.track_id for track in dataset.tracks]
    assert len(ids) == len(set(ids))
    assert "blues.00001" in ids and "jazz.00054" in ids
    assert all(track.path.stem == track.track_id for track in dataset.tracks)


def test_gtzan_reports_duplicates_strays_and_counts(gtzan):
    dataset = open_dataset(gtzan, "gtzan")
    assert kinds(dataset) == ["duplicate", "incomplete", "no-group", "unexpected-file"]
    duplicate = next(p for p in dataset.problems if p.kind == "duplicate")
    assert duplicate.is_error and duplicate.path.endswith("blues.00001.wav")
    incomplete = next(p for p in dataset.problems if p.kind == "incomplete")
    # genres with no clip at all make a partial GTZAN suspicious: warning, not error
    assert incomplete.severity == "warning" and "blues 3" in incomplete.message and "pop 0" in incomplete.message
    assert [p.severity for p in dataset.problems if p.kind == "unexpected-file"] == ["warning"]


def test_gtzan_subset_with_every_genre_is_info_only(tmp_path):
    for genre in GTZAN_GENRES:
        write_wav(tmp_path / genre / f"{genre}.00000.au")  # the original GTZAN extension
    dataset = open_dataset(tmp_path)
    assert dataset.kind == "gtzan" and len(dataset) == 10
    assert dataset.errors == []
    assert {p.severity for p in dataset.problems} == {"info"}


def test_gtzan_check_audio_drops_unreadable_file(gtzan):
    dataset = open_dataset(gtzan, check_audio=True)
    unreadable = [p for p in dataset.problems if p.kind == "unreadable"]
    assert [p.path.rsplit("/", 1)[-1] for p in unreadable] == ["jazz.00054.wav"]
    assert "Kaggle" in unreadable[0].message
    empty = [p for p in dataset.problems if p.kind == "empty"]
    assert [p.path.rsplit("/", 1)[-1] for p in empty] == ["rock.00002.wav"] and empty[0].is_error
    assert {"jazz.00054", "rock.00002"}.isdisjoint(track.track_id for track in dataset.tracks)
    assert set(dataset.durations) == {track.track_id for track in dataset.tracks}
    assert all(abs(seconds - 0.1) < 1e-3 for seconds in dataset.durations.values())


def test_gtzan_found_below_original_layout(tmp_path):
    write_wav(tmp_path / "genres" / "pop" / "pop.00007.wav")
    assert detect_kind(tmp_path) == "gtzan"
    dataset = open_dataset(tmp_path)
    assert dataset.root == tmp_path / "genres"
    assert [track.track_id for track in dataset.tracks] == ["pop.00007"]


def test_gtzan_groups_are_sturm_artists(tmp_path):
    artists = load_gtzan_artists()
    assert len(artists) > 900
    write_wav(tmp_path / "reggae" / "reggae.00000.wav")
    write_wav(tmp_path / "reggae" / "reggae.00001.wav")
    groups = {track.track_id: track.group for track in open_dataset(tmp_path).tracks}
    assert groups == {"reggae.00000": artists["reggae.00000"], "reggae.00001": artists["reggae.00001"]}


# --- FMA -------------------------------------------------------------------------------------

# The real fma_metadata/tracks.csv column layout (pandas MultiIndex written with to_csv).
FMA_COLUMNS = {
    "album": "comments date_created date_released engineer favorites id information listens producer tags "
    "title tracks type",
    "artist": "active_year_begin active_year_end associated_labels bio comments date_created favorites id "
    "latitude location longitude members name related_projects tags website wikipedia_page",
    "set": "split subset",
    "track": "bit_rate comments composer date_created date_recorded duration favorites genre_top genres "
    "genres_all information interest language_code license listens lyricist number publisher tags title",
}
FMA_HEADER = [(top, sub) for top, subs in FMA_COLUMNS.items() for sub in subs.split()]

# track_id, subset, split, genre_top, artist id
FMA_ROWS = [
    (2, "small", "training", "Hip-Hop", "1"),
    (5, "small", "validation", "Hip-Hop", "1"),
    (140, "small", "test", "Folk", "54"),
    (1482, "medium", "training", "Rock", "302"),
    (3000, "large", "training", "", "400"),  # no genre_top: only in large
    (3001, "large", "training", "Pop", "401"),
    (99134, "small", "training", "Folk", "55"),  # a known empty clip
    (12345, "small", "training", "Rock", "56"),  # audio file missing
    (12346, "small", "test", "Rock", "57"),  # audio file of 0 bytes
]


def write_fma(root, rows=FMA_ROWS, subsets=("small", "medium", "large")):
    metadata = root / "fma_metadata"
    metadata.mkdir(parents=True)
    with open(metadata / "tracks.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([""] + [top for top, _ in FMA_HEADER])
        writer.writerow([""] + [sub for _, sub in FMA_HEADER])
        writer.writerow(["track_id"] + [""] * len(FMA_HEADER))
        for track_id, subset, split, genre, artist in rows:
            values = {("set", "subset"): subset, ("set", "split"): split, ("track", "genre_top"): genre,
                      ("artist", "id"): artist, ("artist", "bio"): "<p>Long, \"quoted\"\nbio</p>"}
            writer.writerow([track_id] + [values.get(column, "") for column in FMA_HEADER])
    for subset in subsets:
        allowed = ("small", "medium", "large")[: ("small", "medium", "large").index(subset) + 1]
        for track_id, row_subset, *_ in rows:
            if row_subset in allowed and track_id != 12345:
                path = fma_audio_path(root / f"fma_{subset}", track_id)
                if track_id == 12346:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                else:
                    write_wav(path)  # WAV bytes under .mp3: the readers never decode here
    return root


def test_fma_header_parsing(tmp_path):
    write_fma(tmp_path)
    rows = list(read_fma_tracks(tmp_path / "fma_metadata" / "tracks.csv"))
    assert [row["track_id"] for row in rows] == [str(row[0]) for row in FMA_ROWS]
    assert rows[0]["set.subset"] == "small" and rows[0]["track.genre_top"] == "Hip-Hop"
    assert rows[0]["artist.bio"].startswith("<p>Long") and len(rows[0]) == len(FMA_HEADER) + 1
    few = next(read_fma_tracks(tmp_path / "fma_metadata" / "tracks.csv", ["set.split"]))
    assert few == {"set.split": "training", "track_id": "2"}
    with pytest.raises(DatasetError, match="album.colour"):
        next(read_fma_tracks(tmp_path / "fma_metadata" / "tracks.csv", ["album.colour"]))


def test_fma_audio_path():
    assert fma_audio_path("fma_small", 2).as_posix() == "fma_small/000/000002.mp3"
    assert fma_audio_path("fma_large", "155066").as_posix() == "fma_large/155/155066.mp3"


def test_fma_small(tmp_path):
    write_fma(tmp_path)
    dataset = open_dataset(tmp_path, subset="small")
    assert dataset.kind == "fma" and dataset.name == "fma_small"
    by_id = {track.track_id: track for track in dataset.tracks}
    assert sorted(by_id) == ["000002", "000005", "000140"]
    assert by_id["000005"].split == "valid" and by_id["000140"].split == "test"
    assert by_id["000002"].group == "1" and by_id["000140"].label == "Folk"
    assert by_id["000140"].path == tmp_path / "fma_small" / "000" / "000140.mp3"
    problems = {p.kind: p for p in dataset.problems}
    assert set(problems) == {"known-empty", "missing-file", "empty"}
    assert problems["known-empty"].severity == "warning" and "099134" in problems["known-empty"].path
    assert problems["missing-file"].is_error and problems["empty"].is_error


@pytest.mark.parametrize("subset, expected", [("medium", 4), ("large", 5)])
def test_fma_subsets_nest(tmp_path, subset, expected):
    write_fma(tmp_path)
    dataset = open_dataset(tmp_path, "fma", subset=subset)
    assert len(dataset) == expected
    assert {"000002", "000005", "000140", "001482"} <= {t.track_id for t in dataset.tracks}
    no_label = [p for p in dataset.problems if p.kind == "no-label"]
    assert [p.message.split()[0] for p in no_label] == (["1"] if subset == "large" else [])


def test_fma_default_subset_is_smallest_present(tmp_path):
    write_fma(tmp_path, subsets=("medium",))
    assert open_dataset(tmp_path).name == "fma_medium"


def test_fma_errors(tmp_path):
    write_fma(tmp_path, subsets=("small",))
    with pytest.raises(DatasetError, match="fma_large"):
        open_dataset(tmp_path, subset="large")
    with pytest.raises(UsageError, match="tiny"):
        open_dataset(tmp_path, subset="tiny")
    (tmp_path / "fma_metadata" / "tracks.csv").write_text("track_id,genre\n2,Rock\n")
    with pytest.raises(DatasetError, match="tracks.csv"):
        open_dataset(tmp_path)


# --- folder per label and manifest -----------------------------------------------------------


def test_folder_per_label(tmp_path):
    write_wav(tmp_path / "Calm" / "album 1" / "a.wav")
    write_wav(tmp_path / "Calm" / "b.flac")
    write_wav(tmp_path / "Loud" / "c.wav")
    write_wav(tmp_path / "Loud" / "c.ogg")
    write_wav(tmp_path / "stray.wav")
    (tmp_path / "Loud" / "readme.txt").write_text("not audio")
    dataset = open_dataset(tmp_path)
    assert dataset.kind == "folder"
    ids = sorted(track.track_id for track in dataset.tracks)
    assert ids == ["Calm/album 1/a", "Calm/b", "Loud/c"]
    assert dataset.label_counts() == {"Calm": 2, "Loud": 1}
    assert kinds(dataset) == ["duplicate", "unexpected-file"]


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty-label").mkdir()
    with pytest.raises(DatasetError, match="no labelled audio"):
        open_dataset(tmp_path)


def test_manifest(tmp_path):
    write_wav(tmp_path / "audio" / "one.wav")
    write_wav(tmp_path / "audio" / "two.wav")
    write_wav(tmp_path / "audio" / "three.wav")
    absolute = write_wav(tmp_path / "elsewhere" / "four.wav")
    manifest = tmp_path / "meta" / "set.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "path,genre,split,artist\n"
        "../audio/one.wav,rock,training,A\n"
        "../audio/two.wav,jazz,validation,B\n"
        f"{absolute},jazz,test,\n"
        "../audio/missing.wav,rock,train,C\n"
        "../audio/three.wav,rock,later,C\n"
        "../audio/three.wav,,train,C\n"
    )
    assert detect_kind(manifest) == "manifest"
    dataset = open_dataset(manifest)
    assert dataset.kind == "manifest"
    tracks = {track.path.name: track for track in dataset.tracks}
    assert sorted(tracks) == ["four.wav", "one.wav", "two.wav"]
    assert (tracks["one.wav"].label, tracks["one.wav"].split, tracks["one.wav"].group) == ("rock", "train", "A")
    assert tracks["two.wav"].split == "valid" and tracks["four.wav"].group is None
    assert tracks["one.wav"].track_id == "../audio/one"
    assert kinds(dataset) == ["bad-row", "bad-row", "missing-file"]
    assert all(problem.is_error for problem in dataset.problems)


def test_manifest_needs_path_and_label(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\nx.wav,rock\n")
    with pytest.raises(DatasetError, match="'path' and 'label'"):
        open_dataset(manifest)


def test_open_dataset_usage_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such"):
        open_dataset(tmp_path / "nothing")
    write_wav(tmp_path / "a" / "x.wav")
    with pytest.raises(UsageError, match="kind"):
        open_dataset(tmp_path, "mp3s")
    with pytest.raises(UsageError, match="subset"):
        open_dataset(tmp_path, "folder", subset="small")


# --- report and CLI --------------------------------------------------------------------------


def test_summary_counts_and_durations(gtzan):
    dataset = open_dataset(gtzan, check_audio=True)
    summary = summarize(dataset)
    assert summary["tracks"] == len(dataset) == sum(row["tracks"] for row in summary["labels"])
    assert summary["duration_s"] == pytest.approx(0.1 * len(dataset), abs=1e-3)
    assert summary["errors"] == 3  # duplicate, unreadable, empty
    text = format_summary(summary)
    assert "jazz.00054.wav" in text and "3 errors" in text
    json.dumps(summary)


def test_cli_data_check(gtzan, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", str(gtzan), "--json"])
    assert exit_info.value.code == 1  # the duplicate, the corrupt and the empty file are errors
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "gtzan" and report["errors"] == 3

    clean = tmp_path / "clean"
    write_wav(clean / "x" / "one.wav", seconds=0.5)
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", str(clean)])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "0:00.5" in out and "0 errors" in out


@pytest.mark.slow
def test_gtzan_mini(gtzan_mini):
    dataset = open_dataset(gtzan_mini, check_audio=True)
    assert dataset.kind == "gtzan"
    assert dataset.label_counts() == {genre: 8 for genre in GTZAN_GENRES}
    assert dataset.errors == []
    assert {p.kind for p in dataset.problems} <= {"incomplete", "no-group"}
    assert all(29 < seconds < 31 for seconds in dataset.durations.values())
    manifest = open_dataset(gtzan_mini / "labels.csv")
    assert sorted(t.path for t in manifest.tracks) == sorted(t.path for t in dataset.tracks)
