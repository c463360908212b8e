import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from hypothesis import given, settings
from hypothesis import strategies as st

from genrekit.data.datasets import (
    GTZAN_GENRES,
    Dataset,
    Track,
    load_gtzan_artists,
    open_dataset,
)
from genrekit.data.splits import (
    check_no_leakage,
    gtzan_artist_split,
    holdout_split,
    kfold_splits,
    load_gtzan_split_lists,
    official_split,
    split_dataset,
    split_from_lists,
    take,
    train_valid_test_split,
)
from genrekit.errors import DatasetError, UsageError

SIDES = ("train", "valid", "test")


def make_tracks(labels, groups=None, splits=None):
    groups = groups or [None] * len(labels)
    splits = splits or [None] * len(labels)
    return [
        Track(Path(f"/data/{label}/t{i:04d}.wav"), label, f"t{i:04d}", group, split)
        for i, (label, group, split) in enumerate(zip(labels, groups, splits))
    ]


def ids(tracks):
    return [track.track_id for track in tracks]


def assert_partition(tracks, parts):
    """Every track on exactly one side."""
    assert sorted(ids([t for part in parts for t in part])) == sorted(ids(tracks))


# tracks with random labels and (optionally) random groups; a group may span labels
track_lists = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(0, 11)), min_size=12, max_size=80
).map(lambda rows: make_tracks([label for label, _ in rows], [f"artist{g}" for _, g in rows]))


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, database=None)
@given(tracks=track_lists, seed=st.integers(0, 2**16), use_groups=st.booleans())
def test_no_track_or_group_on_two_sides(tracks, seed, use_groups):
    try:
        parts = train_valid_test_split(tracks, seed=seed, groups=use_groups)
    except DatasetError as error:  # only acceptable when too few artists are left to separate
        assert use_groups and len({t.group for t in tracks}) < 3 and "group" in str(error)
        return
    assert_partition(tracks, parts)
    if use_groups:
        check_no_leakage(*parts)
    else:
        check_no_leakage(*[[Track(t.path, t.label, t.track_id) for t in part] for part in parts])


@settings(max_examples=40, deadline=None, database=None)
@given(labels=st.lists(st.sampled_from("abcde"), min_size=2, max_size=120), seed=st.integers(0, 2**16),
       test_size=st.floats(0.05, 0.5), valid_size=st.floats(0.0, 0.3))
def test_stratification_keeps_label_proportions(labels, seed, test_size, valid_size):
    tracks = make_tracks(labels)
    train, valid, test = train_valid_test_split(tracks, valid_size=valid_size, test_size=test_size, seed=seed)
    assert_partition(tracks, (train, valid, test))
    per_label, in_test = Counter(labels), Counter(t.label for t in test)
    for label, n in per_label.items():
        assert math.floor(n * test_size) <= in_test[label] <= math.ceil(n * test_size)
    assert math.floor(len(tracks) * test_size) <= len(test) <= math.ceil(len(tracks) * test_size)
    # valid is cut from the rest: per label within one track of its share of what is left
    in_valid, share = Counter(t.label for t in valid), valid_size / (1 - test_size)
    for label, n in per_label.items():
        assert abs(in_valid[label] - (n - in_test[label]) * share) < 1 + 1e-9


@settings(max_examples=25, deadline=None, database=None)
@given(tracks=track_lists, seed=st.integers(0, 2**16), n_splits=st.integers(2, 6), use_groups=st.booleans())
def test_kfold_covers_each_track_once(tracks, seed, n_splits, use_groups):
    if use_groups and len({t.group for t in tracks}) < n_splits:
        return
    folds = kfold_splits(tracks, n_splits, seed=seed, groups=use_groups)
    assert len(folds) == n_splits
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(tracks)))
    for train, test in folds:
        assert set(train.tolist()).isdisjoint(test.tolist())
        assert len(train) + len(test) == len(tracks)
        if use_groups:
            check_no_leakage(take(tracks, train), take(tracks, test))


def test_kfold_is_stratified():
    labels = ["a"] * 23 + ["b"] * 10 + ["c"] * 4
    tracks = make_tracks(labels)
    for _, test in kfold_splits(tracks, 4, seed=3):
        counts = Counter(t.label for t in take(tracks, test))
        for label, n in Counter(labels).items():
            assert n // 4 <= counts[label] <= -(-n // 4)


def test_same_seed_same_split_and_seeds_differ():
    tracks = make_tracks(list("abc" * 20), [f"g{i % 15}" for i in range(60)])
    for groups in (False, True):
        first = train_valid_test_split(tracks, seed=7, groups=groups)
        assert first == train_valid_test_split(list(tracks), seed=7, groups=groups)
        others = {tuple(ids(train_valid_test_split(tracks, seed=s, groups=groups).test)) for s in range(5)}
        assert len(others) > 1
    folds = kfold_splits(tracks, 5, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, kfold_splits(tracks, 5, seed=1)))


# --- groups ----------------------------------------------------------------------------------


def test_group_split_falls_back_when_a_label_has_few_groups():
    # label "b" has one artist: cannot be stratified over folds, must still never leak
    labels = ["a"] * 30 + ["b"] * 10
    groups = [f"a{i % 10}" for i in range(30)] + ["solo"] * 10
    tracks = make_tracks(labels, groups)
    parts = train_valid_test_split(tracks, seed=0)
    check_no_leakage(*parts)
    assert sum(t.group == "solo" for t in parts.train) in (0, 10)


def test_stratified_group_split_keeps_proportions_roughly():
    labels = ["a"] * 60 + ["b"] * 40
    groups = [f"a{i % 20}" for i in range(60)] + [f"b{i % 20}" for i in range(40)]
    train, test = holdout_split(make_tracks(labels, groups), test_size=0.25, seed=2)
    check_no_leakage(train, test)
    counts = Counter(t.label for t in test)
    assert 12 <= counts["a"] <= 18 and 8 <= counts["b"] <= 12


def test_partial_groups():
    labels = list("ab" * 20)
    groups = ["x"] * 10 + [None] * 30  # tracks without a group stand alone
    tracks = make_tracks(labels, groups)
    parts = train_valid_test_split(tracks, seed=1)
    check_no_leakage(*parts)
    assert_partition(tracks, parts)
    with pytest.raises(DatasetError, match="30 of 40 tracks have no group"):
        train_valid_test_split(tracks, groups=True)


def test_few_groups():
    tracks = make_tracks(list("abab"), ["g1", "g1", "g2", "g2"])
    train, test = holdout_split(tracks, test_size=0.2)  # one artist each, more than 20 % of tracks
    check_no_leakage(train, test)
    assert len(train) == len(test) == 2
    with pytest.raises(DatasetError, match="only 2 group"):
        kfold_splits(tracks, 3)
    with pytest.raises(DatasetError, match="only 1 group"):
        holdout_split(make_tracks(list("ab"), ["g1", "g1"]))


# --- leakage check ---------------------------------------------------------------------------


def test_check_no_leakage():
    a, b, c = make_tracks(["x", "y", "z"], ["g1", "g2", "g1"])
    check_no_leakage([a], [b])
    with pytest.raises(DatasetError, match="track 't0000' is in both train and test"):
        check_no_leakage([a], [], [a])
    with pytest.raises(DatasetError, match="group 'g1' is in both part 0 and part 1"):
        check_no_leakage([a], [c])
    ungrouped = make_tracks(["x", "y"])
    check_no_leakage([ungrouped[0]], [ungrouped[1]])  # None is not a shared group


# --- official and GTZAN splits ---------------------------------------------------------------


def test_official_split():
    tracks = make_tracks(list("abcab"), ["1", "2", "3", "4", "5"], ["train", "train", "valid", "test", "train"])
    train, valid, test = official_split(tracks)
    assert (ids(train), ids(valid), ids(test)) == (["t0000", "t0001", "t0004"], ["t0002"], ["t0003"])
    with pytest.raises(DatasetError, match="1 of 2 tracks have no split"):
        official_split(make_tracks(list("ab"), splits=["train", None]))


def test_gtzan_lists_load_and_are_disjoint():
    lists = load_gtzan_split_lists()
    assert {side: len(lists[side]) for side in SIDES} == {"train": 443, "valid": 197, "test": 290}
    all_ids = [track_id for side in SIDES for track_id in lists[side]]
    assert len(set(all_ids)) == len(all_ids) == 930
    assert all(re.fullmatch(r"([a-z]+)\.\d{5}", i) and i.split(".")[0] in GTZAN_GENRES for i in all_ids)


def test_gtzan_lists_are_artist_filtered():
    lists, artists = load_gtzan_split_lists(), load_gtzan_artists()
    parts = [[Track(Path(f"{i}.wav"), i.split(".")[0], i, artists.get(i)) for i in lists[side]] for side in SIDES]
    assert sum(t.group is not None for part in parts for t in part) > 800
    check_no_leakage(*parts)


def test_gtzan_artist_split_ignores_extension():
    lists = load_gtzan_split_lists()
    chosen = {side: lists[side][0] for side in SIDES}
    tracks = [Track(Path(f"/g/{i.split('.')[0]}/{i}.flac"), i.split(".")[0], i) for i in chosen.values()]
    tracks.append(Track(Path("/g/pop/pop.99999.au"), "pop", "pop.99999"))  # not listed: left out
    split = gtzan_artist_split(tracks)
    assert {side: ids(part) for side, part in zip(SIDES, split)} == {side: [i] for side, i in chosen.items()}


def test_split_from_lists_rejects_overlap():
    with pytest.raises(DatasetError, match="both train and test"):
        split_from_lists([], {"train": ["a.00001"], "test": ["x/a.00001.wav"]})
    with pytest.raises(UsageError, match="side"):
        split_from_lists([], {"holdout": []})


# --- split_dataset ---------------------------------------------------------------------------


def dataset_of(tracks, kind="folder"):
    return Dataset("d", Path("/data"), tracks, sorted({t.label for t in tracks}), [], kind=kind)


def test_split_dataset_methods():
    with_split = make_tracks(list("ab" * 6), splits=["train"] * 4 + ["valid"] * 4 + ["test"] * 4)
    assert ids(split_dataset(dataset_of(with_split)).test) == ["t0008", "t0009", "t0010", "t0011"]
    plain = make_tracks(list("ab" * 10))
    parts = split_dataset(dataset_of(plain), seed=4)
    assert [len(p) for p in parts] == [14, 2, 4]
    assert parts == split_dataset(dataset_of(plain), "random", seed=4)
    lists = load_gtzan_split_lists()
    gtzan = [Track(Path(f"/g/{i}.wav"), i.split(".")[0], i) for side in SIDES for i in lists[side]]
    assert [len(p) for p in split_dataset(dataset_of(gtzan, "gtzan"))] == [443, 197, 290]
    with pytest.raises(UsageError, match="method"):
        split_dataset(dataset_of(plain), "stratified")
    with pytest.raises(DatasetError, match="20 of 20 tracks have no group"):
        split_dataset(dataset_of(plain), "group")


@pytest.mark.parametrize("splits, reason", [
    (["train"] + ["valid"] * 7 + ["test"] * 4, "no training track of b"),
    (["train"] * 8 + ["valid"] * 2 + ["test"] * 2, "2 test tracks for 2 labels"),
    (["train"] * 6 + ["valid"] * 2 + ["test"] * 4, "2 valid tracks for 2 labels"),
])
def test_auto_leaves_lists_that_cover_too_little(caplog, splits, reason):
    tracks = make_tracks(list("ab" * 6), [f"artist{i}" for i in range(12)], splits)
    with caplog.at_level("WARNING", logger="genrekit"):
        parts = split_dataset(dataset_of(tracks), seed=1)
    assert parts == split_dataset(dataset_of(tracks), "random", seed=1)
    assert [r.getMessage() for r in caplog.records if reason in r.getMessage()], caplog.text
    assert "--split official keeps the lists" in caplog.text
    assert split_dataset(dataset_of(tracks), "official").train == [t for t in tracks if t.split == "train"]


def test_auto_keeps_lists_without_a_validation_side():
    tracks = make_tracks(list("ab" * 5), splits=["train"] * 6 + ["test"] * 4)
    assert [len(part) for part in split_dataset(dataset_of(tracks))] == [6, 0, 4]


def test_group_split_names_tracks_without_a_group_and_keeps_them_alone(caplog):
    tracks = make_tracks(list("ab" * 10), ["x", "y"] * 9 + [None, None])
    with caplog.at_level("WARNING", logger="genrekit"):
        parts = split_dataset(dataset_of(tracks), "group", seed=0)
    check_no_leakage(*parts)
    assert_partition(tracks, parts)
    assert "2 of 20 tracks have no group (artist): t0018, t0019; each of them is a group of its own" in caplog.text


def test_split_dataset_rejects_leaky_official_split():
    splits = ["train"] * 4 + ["valid"] * 4 + ["test"] * 4
    tracks = make_tracks(list("ab" * 6), ["same artist"] + [f"artist{i}" for i in range(10)] + ["same artist"], splits)
    with pytest.raises(DatasetError, match="same artist"):
        split_dataset(dataset_of(tracks))


@pytest.mark.parametrize("kwargs", [{"test_size": 0}, {"test_size": 1.0}, {"valid_size": 0.5, "test_size": 0.5}])
def test_bad_sizes(kwargs):
    with pytest.raises(UsageError):
        train_valid_test_split(make_tracks(list("abab")), **kwargs)


@pytest.mark.slow
def test_gtzan_mini_artist_split(gtzan_mini):
    lines = {side: (SHARED / "data" / "gtzan-splits" / f"fault-filtered-{side}.txt").read_text().split()
             for side in SIDES}
    expected = {side: sorted(Path(line).stem for line in lines[side]
                             if (gtzan_mini / Path(line).with_suffix(".flac")).exists()) for side in SIDES}
    dataset = open_dataset(gtzan_mini)
    split = split_dataset(dataset, "gtzan-artist")
    assert {side: sorted(ids(part)) for side, part in zip(SIDES, split)} == expected
    # the lists hold 31 / 40 / 4 of these 80 clips, none of blues for training: auto leaves them
    auto = split_dataset(dataset)
    assert auto != split and {t.label for t in auto.train} == set(dataset.labels)
    check_no_leakage(*auto)
    random_split = split_dataset(dataset, "random", seed=0)
    assert_partition(dataset.tracks, random_split)
    check_no_leakage(*random_split)


def test_group_kfold_keeps_groups_whole_and_can_always_stratify():
    """The one fold definition (data.folds.group_kfold) behind kfold_splits and the default model's
    table cross-validation: groups never split; a label with fewer groups than folds drops
    stratification unless always_stratify (what the taggram recipe asks for) is set."""
    from genrekit.data.folds import group_kfold

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    groups = np.concatenate([rng.integers(0, 10, 40), 10 + rng.integers(0, 10, 40), 20 + rng.integers(0, 3, 40)])
    for always in (False, True):
        folds = group_kfold(labels, groups, 5, seed=1, always_stratify=always)
        assert sorted(np.concatenate(folds).tolist()) == list(range(len(labels)))
        for i, a in enumerate(folds):
            for b in folds[i + 1:]:
                assert not set(groups[a]) & set(groups[b])
    # label 2 has 3 groups for 5 folds: the default is plain GroupKFold, always_stratify is not
    plain = group_kfold(labels, groups, 5, seed=1)
    stratified = group_kfold(labels, groups, 5, seed=1, always_stratify=True)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, stratified))
