"""Train / validation / test splits at track level, never at segment level.

Segments of one track always share its side, and when tracks carry a ``group`` (the artist) whole
groups stay on one side: genre models otherwise learn to recognise the artist or the recording and
look far better than they are. :func:`check_no_leakage` verifies both properties.

Methods, by name (:func:`split_dataset`):

- ``"random"``: stratified by label, seeded; group-aware when tracks have groups.
- ``"group"``: the same, but groups are required.
- ``"official"``: the split the dataset defines (FMA ``set.split``, a manifest ``split`` column).
- ``"gtzan-artist"``: GTZAN's fault-filtered, artist-filtered lists shipped with genrekit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from genrekit.audio.decode import AUDIO_EXTENSIONS
from genrekit.data.datasets import SPLIT_NAMES, Dataset, Track
from genrekit.data.folds import group_kfold, stratified_folds, stratified_sides
from genrekit.errors import DatasetError, GenrekitError, UsageError

logger = logging.getLogger(__name__)

METHODS = ("auto", "random", "group", "official", "gtzan-artist")

#: ``"auto"`` takes a dataset's own lists only if they give every label a training track and the
#: test side (and a listed validation side) at least this many tracks per label on average.
MIN_TRACKS_PER_LABEL = 2


GTZAN_SPLIT_FILES = {name: f"fault-filtered-{name}.txt" for name in SPLIT_NAMES}


class Split(NamedTuple):
    """Tracks on each side; unpacks as ``train, valid, test = split``.

    Attributes
    ----------
    train, valid, test : list of Track
    """

    train: list[Track]
    valid: list[Track]
    test: list[Track]


def split_dataset(
    dataset: Dataset,
    method: str = "auto",
    *,
    valid_size: float = 0.1,
    test_size: float = 0.2,
    seed: int = 0,
) -> Split:
    """Split ``dataset`` by ``method`` and check that no track or group lands on two sides.

    ``"auto"`` uses the dataset's own split when every track has one, the GTZAN artist-filtered
    lists for a GTZAN dataset, and a seeded stratified (group-aware if possible) split otherwise;
    it also falls back to that split, saying so in one logged warning, when the lists cover too
    little of the dataset (a label without training tracks, or fewer than
    :data:`MIN_TRACKS_PER_LABEL` test or validation tracks per label: a subset such as
    gtzan-mini). ``"group"`` treats a track without a group as a group of its own and names such
    tracks in a warning. ``valid_size``, ``test_size`` and ``seed`` apply to ``"random"`` and
    ``"group"`` only.

    Parameters
    ----------
    dataset : Dataset
    method : {"auto", "random", "group", "official", "gtzan-artist"}, default "auto"
    valid_size, test_size : float, default 0.1, 0.2
        Shares of the tracks.
    seed : int, default 0

    Returns
    -------
    Split

    Raises
    ------
    UsageError
        Unknown ``method`` or bad sizes.
    DatasetError
        The split leaks, or the dataset lacks what the method needs (splits, groups, tracks).
    """
    if method == "auto":
        if dataset.tracks and all(track.split for track in dataset.tracks):
            method = "official"
        elif dataset.kind == "gtzan":
            method = "gtzan-artist"
        else:
            method = "random"
        if method != "random":
            split = official_split(dataset.tracks) if method == "official" else gtzan_artist_split(dataset.tracks)
            reason = _covers_too_little(split, dataset.tracks)
            if reason is None:
                check_no_leakage(*split)
                return split
            counts = ", ".join(f"{side} {len(part)}" for side, part in zip(SPLIT_NAMES, split))
            lists = "dataset's own split" if method == "official" else "GTZAN artist-filtered lists"
            logger.warning(f"{dataset.name}: the {lists} cover too little of it ({reason}; {counts} of "
                           f"{len(dataset.tracks)} tracks): using a stratified split that keeps each artist on "
                           f"one side instead (--split {method} keeps the lists)")
            method = "random"
    if method == "group":
        _warn_ungrouped(dataset.tracks)
    if method == "official":
        split = official_split(dataset.tracks)
    elif method == "gtzan-artist":
        split = gtzan_artist_split(dataset.tracks)
    elif method in ("random", "group"):
        split = train_valid_test_split(
            dataset.tracks, valid_size=valid_size, test_size=test_size, seed=seed, groups="auto"
        )
    else:
        raise UsageError(f"unknown split method {method!r} (choose from {', '.join(METHODS)})")
    check_no_leakage(*split)
    return split


def _covers_too_little(split: Split, tracks: Sequence[Track]) -> str | None:
    """Why ``split`` (a dataset's own lists) is too thin to train and test on, or None."""
    labels = sorted({track.label for track in tracks})
    trained = {track.label for track in split.train}
    untrained = [label for label in labels if label not in trained]
    if untrained:
        return f"no training track of {_first_few(untrained)}"
    for side, part in (("test", split.test), ("valid", split.valid)):
        if (part or side == "test") and len(part) < MIN_TRACKS_PER_LABEL * len(labels):
            return f"{len(part)} {side} tracks for {len(labels)} labels"
    return None


def _warn_ungrouped(tracks: Sequence[Track]) -> None:
    """``--split group``: refuse a dataset without groups; name the tracks that lack one."""
    ungrouped = [track.track_id for track in tracks if track.group is None]
    if ungrouped and len(ungrouped) == len(tracks):
        raise DatasetError(f"{len(ungrouped)} of {len(tracks)} tracks have no group (artist): nothing to "
                           "split by group; use --split random")
    if ungrouped:
        logger.warning(f"{len(ungrouped)} of {len(tracks)} tracks have no group (artist): "
                       f"{_first_few(ungrouped)}; each of them is a group of its own")


def _first_few(names: Sequence[str], shown: int = 5) -> str:
    """``"a, b, c, d, e and 7 more"``: names for a one-line message."""
    rest = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {rest} more" if rest > 0 else "")


def holdout_split(
    tracks: Sequence[Track],
    *,
    test_size: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
    groups: bool | str = "auto",
) -> tuple[list[Track], list[Track]]:
    """Split tracks into ``(train, test)``.

    Parameters
    ----------
    tracks : sequence of Track
    test_size : float
        Fraction of tracks for the test side, in (0, 1). Without groups each label gets
        ``floor`` or ``ceil`` of its share; with groups the test side is one of
        ``round(1 / test_size)`` group-disjoint folds (one group if there are fewer groups), so
        its size is approximate.
    seed : int
        Same seed, same tracks: same split.
    stratify : bool
        Keep label proportions on both sides.
    groups : bool or "auto"
        Keep each ``Track.group`` on one side. ``"auto"``: when any track has a group (tracks
        without one count as groups of their own); ``True``: every track must have one.

    Returns
    -------
    train, test : list of Track
    """
    _check_fraction("test_size", test_size)
    parts = _assign(tracks, (1 - test_size, 0.0, test_size), seed, stratify, groups)
    return _take_part(tracks, parts, 0), _take_part(tracks, parts, 2)


def train_valid_test_split(
    tracks: Sequence[Track],
    *,
    valid_size: float = 0.1,
    test_size: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
    groups: bool | str = "auto",
) -> Split:
    """Split tracks into train / valid / test (fractions of all tracks); see :func:`holdout_split`.

    Parameters
    ----------
    tracks, test_size, seed, stratify, groups
        As :func:`holdout_split`.
    valid_size : float, default 0.1
        May be 0 (empty validation side).

    Returns
    -------
    Split

    Raises
    ------
    UsageError
        Sizes outside [0, 1) or summing to 1 or more.
    """
    _check_fraction("test_size", test_size)
    if not 0 <= valid_size < 1 or valid_size + test_size >= 1:
        raise UsageError(f"valid_size must be in [0, 1) with valid_size + test_size < 1, not {valid_size}")
    parts = _assign(tracks, (1 - valid_size - test_size, valid_size, test_size), seed, stratify, groups)
    return Split(*(_take_part(tracks, parts, side) for side in range(3)))


def kfold_splits(
    tracks: Sequence[Track],
    n_splits: int = 5,
    *,
    seed: int = 0,
    stratify: bool = True,
    groups: bool | str = "auto",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold cross-validation at track level.

    Parameters
    ----------
    tracks, seed, stratify, groups
        As :func:`holdout_split`.
    n_splits : int, default 5

    Returns
    -------
    list of (train_indices, test_indices)
        ``n_splits`` pairs of sorted int arrays indexing ``tracks``; every track is in exactly one
        test fold. With groups: sklearn's ``StratifiedGroupKFold``, or ``GroupKFold`` when some
        label has fewer than ``n_splits`` groups.

    Raises
    ------
    UsageError
        ``n_splits`` below 2 or above the number of tracks.
    """
    if n_splits < 2 or n_splits > len(tracks):
        raise UsageError(f"n_splits must be between 2 and the number of tracks ({len(tracks)}), not {n_splits}")
    labels = _codes([track.label for track in tracks]) if stratify else np.zeros(len(tracks), int)
    group_codes = _group_codes(tracks, groups)
    if group_codes is None:
        folds = stratified_folds(labels, n_splits, np.random.default_rng(seed))
    else:
        folds = group_kfold(labels, group_codes, n_splits, seed)
    everything = np.arange(len(tracks))
    return [(np.setdiff1d(everything, test), np.sort(test)) for test in folds]


def official_split(tracks: Sequence[Track]) -> Split:
    """The split the dataset defines in ``Track.split`` (FMA, manifests with a ``split`` column).

    Parameters
    ----------
    tracks : sequence of Track

    Returns
    -------
    Split

    Raises
    ------
    DatasetError
        A track has no split.
    """
    missing = sum(track.split is None for track in tracks)
    if missing:
        raise DatasetError(f"{missing} of {len(tracks)} tracks have no split: the dataset defines none")
    return Split(*([track for track in tracks if track.split == side] for side in SPLIT_NAMES))


def gtzan_artist_split(tracks: Sequence[Track]) -> Split:
    """GTZAN's fault-filtered, artist-filtered split (443 / 197 / 290 clips).

    Tracks are matched by id (``blues.00012``) whatever their file extension; tracks not in the
    lists (faulty clips) are left out of every side.

    Parameters
    ----------
    tracks : sequence of Track

    Returns
    -------
    Split
    """
    return split_from_lists(tracks, load_gtzan_split_lists())


def load_gtzan_split_lists() -> dict[str, list[str]]:
    """The shipped GTZAN lists as track ids.

    Returns
    -------
    dict of str to list of str
        ``{"train": ["blues.00029", ...], "valid": ..., "test": ...}``.
    """
    folder = resources.files("genrekit") / "assets" / "splits" / "gtzan"
    lists = {}
    for side, filename in GTZAN_SPLIT_FILES.items():
        lines = (folder / filename).read_text(encoding="utf-8").splitlines()
        lists[side] = [_bare_id(line.strip()) for line in lines if line.strip()]
    return lists


def split_from_lists(tracks: Sequence[Track], lists: Mapping[str, Iterable[str]]) -> Split:
    """Put each track on the side whose list names its file.

    ``lists`` maps ``"train"``/``"valid"``/``"test"`` to track ids or relative paths
    (``blues.00012``, ``blues/blues.00012.wav``); folders and audio extensions are ignored when
    matching, so ``blues.00012.flac`` matches. Unlisted tracks are left out.

    Parameters
    ----------
    tracks : sequence of Track
    lists : mapping of str to iterable of str

    Returns
    -------
    Split

    Raises
    ------
    UsageError
        An unknown side.
    DatasetError
        A track listed on two sides.
    """
    side_of: dict[str, str] = {}
    for side, ids in lists.items():
        if side not in SPLIT_NAMES:
            raise UsageError(f"unknown split side {side!r} (use {', '.join(SPLIT_NAMES)})")
        for track_id in ids:
            track_id = _bare_id(track_id)
            if side_of.setdefault(track_id, side) != side:
                raise DatasetError(f"track {track_id} is listed in both {side_of[track_id]} and {side}")
    sides = {side: [] for side in SPLIT_NAMES}
    for track in tracks:
        side = side_of.get(_bare_id(track.path.name))
        if side:
            sides[side].append(track)
    return Split(**sides)


def check_no_leakage(*parts: Sequence[Track], names: Sequence[str] | None = None) -> None:
    """Refuse parts that share a track id or a group.

    Typical use: ``check_no_leakage(train, test)`` or ``check_no_leakage(*split)``.

    Parameters
    ----------
    *parts : sequence of Track
    names : sequence of str, optional
        Names of the parts in the message; default train / valid / test for three parts.

    Raises
    ------
    DatasetError
        A track id or a group appears in two parts.
    """
    names = list(names or (SPLIT_NAMES if len(parts) == 3 else [f"part {i}" for i in range(len(parts))]))
    for attribute, what in (("track_id", "track"), ("group", "group")):
        owner: dict[str, str] = {}
        for name, part in zip(names, parts):
            for value in {getattr(track, attribute) for track in part} - {None}:
                first = owner.setdefault(value, name)
                if first != name:
                    raise DatasetError(f"{what} {value!r} is in both {first} and {name}: the split leaks")


def take(tracks: Sequence[Track], indices: Iterable[int]) -> list[Track]:
    """``[tracks[i] for i in indices]``, for the index arrays of :func:`kfold_splits`."""
    return [tracks[int(i)] for i in indices]


def _assign(tracks, fractions, seed, stratify, groups) -> np.ndarray:
    """Side (0 train, 1 valid, 2 test) of each track."""
    if len(tracks) < 2:
        raise DatasetError(f"need at least 2 tracks to split, got {len(tracks)}")
    labels = _codes([track.label for track in tracks]) if stratify else np.zeros(len(tracks), int)
    group_codes = _group_codes(tracks, groups)
    if group_codes is None:
        return stratified_sides(labels, fractions, np.random.default_rng(seed))
    parts = np.zeros(len(tracks), int)
    for side, share_of_rest in ((2, fractions[2]), (1, fractions[1] / (1 - fractions[2]))):
        rest = np.flatnonzero(parts == 0)
        if share_of_rest <= 0:
            continue
        # with fewer groups than folds, hold out one group: more than asked, but group-disjoint
        n_splits = min(max(2, round(1 / share_of_rest)), len(np.unique(group_codes[rest])))
        held_out = group_kfold(labels[rest], group_codes[rest], n_splits, seed)[0]
        parts[rest[held_out]] = side
    return parts


def _group_codes(tracks: Sequence[Track], groups: bool | str) -> np.ndarray | None:
    """Group code per track, or None for a group-blind split.

    ``"auto"`` uses groups when any track has one; a track without one is then a group of its
    own (nothing links it to another track). ``True`` requires a group on every track.
    """
    if groups not in (True, False, "auto"):
        raise UsageError(f"groups must be True, False or 'auto', not {groups!r}")
    unknown = sum(track.group is None for track in tracks)
    if groups is False or (groups == "auto" and unknown == len(tracks)):
        return None
    if groups is True and unknown:
        missing = [track.track_id for track in tracks if track.group is None]
        raise DatasetError(f"{unknown} of {len(tracks)} tracks have no group (artist): {_first_few(missing)} "
                           "(groups='auto' makes each of them a group of its own)")
    keys = [("group", track.group) if track.group is not None else ("track", track.track_id) for track in tracks]
    return _codes(keys)


def _codes(values: list) -> np.ndarray:
    index: dict = defaultdict(lambda: len(index))
    return np.array([index[value] for value in values], dtype=int)


def _take_part(tracks: Sequence[Track], parts: np.ndarray, side: int) -> list[Track]:
    return [track for track, part in zip(tracks, parts) if part == side]


def _bare_id(name: str) -> str:
    """``blues/blues.00012.wav`` -> ``blues.00012`` (only an audio extension is dropped)."""
    path = Path(name)
    return path.stem if path.suffix.lower() in AUDIO_EXTENSIONS else path.name


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise UsageError(f"{name} must be between 0 and 1, not {value}")


#: Values of ``split["group_by"]``: what stays on one side of a split.
GROUP_BY = ("artist", "track")


@dataclass(frozen=True)
class SplitSettings:
    """How tracks are split: the typed form of a ``split`` spec (training configs, model files).

    Attributes
    ----------
    method : {"auto", "random", "group", "official", "gtzan-artist", "kfold"}
    valid_size, test_size : float
        Shares of tracks in [0, 1) (``test_size`` unused by k-fold).
    folds, fold : int
        k-fold only: number of folds and the test fold.
    group_by : {"artist", "track"}
        What may not straddle two sides.
    seed : int or None
        Seeds the split instead of the run's seed when given.
    """

    method: str = "auto"
    valid_size: float = 0.1
    test_size: float = 0.2
    folds: int = 5
    fold: int = 0
    group_by: str = "artist"
    seed: int | None = None

    def __post_init__(self):
        if self.method not in (*METHODS, "kfold"):
            raise UsageError(f"split method must be one of {', '.join((*METHODS, 'kfold'))}, not {self.method!r}")
        if self.group_by not in GROUP_BY:
            raise UsageError(f"split group_by must be one of {', '.join(GROUP_BY)}, not {self.group_by!r}")
        for name in ("valid_size", "test_size"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise UsageError(f"split {name} must be a share in [0, 1), not {value!r}")
        if self.method == "kfold" and not (isinstance(self.folds, int) and self.folds >= 2
                                           and isinstance(self.fold, int) and 0 <= self.fold < self.folds):
            raise UsageError(f"split fold must be in 0..folds-1 with folds >= 2, not fold={self.fold!r} of {self.folds!r}")

    @classmethod
    def from_spec(cls, spec: dict) -> "SplitSettings":
        """From a ``split`` spec; unknown keys are refused.

        Parameters
        ----------
        spec : dict

        Returns
        -------
        SplitSettings

        Raises
        ------
        UsageError
            An unknown key or a bad value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise UsageError(f"unknown split setting {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**spec)

    def to_spec(self) -> dict:
        """The complete spec; ``from_spec(s.to_spec()) == s``."""
        return dataclasses.asdict(self)


def split_tracks(dataset, split: dict, seed: int) -> tuple[Any, dict]:
    """Train / valid / test tracks by ``split`` settings, and a JSON record of the split.

    ``split["method"] == "kfold"`` takes fold ``split["fold"]`` of ``split["folds"]`` as the test
    side and draws ``valid_size`` of the rest (track level, stratified, group-aware) for
    validation. Other methods go to :func:`genrekit.data.splits.split_dataset`. ``split["seed"]``,
    when given, seeds the split instead of ``seed`` (same split, another initialisation).
    ``split["group_by"]`` says what must not straddle two sides: ``"artist"`` (default; a track
    whose artist is unknown is a group of its own) or ``"track"`` (artists ignored: only the
    segments of a track stay together).

    Parameters
    ----------
    dataset : Dataset
    split : dict
        A ``split`` spec (:class:`SplitSettings`).
    seed : int
        The run's seed.

    Returns
    -------
    parts : Split
    record : dict
        The model file's ``split`` entry: settings, counts, track ids and file keys per side.

    Raises
    ------
    UsageError
        Bad settings.
    GenrekitError
        No training tracks, or a leaking split (:class:`DatasetError`).
    """
    from genrekit.data.splits import (
        Split,
        check_no_leakage,
        holdout_split,
        kfold_splits,
        split_dataset,
        take,
    )

    settings = SplitSettings.from_spec(split)
    options = {"method": "auto", "valid_size": 0.1, "test_size": 0.2, **split}
    options.pop("seed", None)
    method, group_by = settings.method, settings.group_by
    seed = int(seed if settings.seed is None else settings.seed)
    if group_by == "track":
        # deliberately artist-blind (to measure what artist-disjoint splits cost): forget the groups
        dataset = dataclasses.replace(dataset, tracks=[dataclasses.replace(t, group=None) for t in dataset.tracks])
    if method == "kfold":
        folds, fold = int(options.get("folds", 5)), int(options.get("fold", 0))
        if not 0 <= fold < folds:
            raise UsageError(f"split fold must be in 0..{folds - 1}, not {fold}")
        train_index, test_index = kfold_splits(dataset.tracks, folds, seed=seed)[fold]
        rest, test = take(dataset.tracks, train_index), take(dataset.tracks, test_index)
        valid_size = float(options["valid_size"])
        train, valid = holdout_split(rest, test_size=valid_size, seed=seed) if valid_size > 0 else (rest, [])
        parts = Split(train, valid, test)
        check_no_leakage(*parts)
    else:
        parts = split_dataset(
            dataset, method, valid_size=float(options["valid_size"]),
            test_size=float(options["test_size"]), seed=seed,
        )
    if not parts.train:
        raise GenrekitError(f"{dataset.root}: the {method} split leaves no training tracks")
    trained_labels = {t.label for t in parts.train}
    unseen = sorted({t.label for part in parts[1:] for t in part} - trained_labels)
    if unseen:
        logger.warning(f"no training tracks of {', '.join(unseen)}: the model cannot learn what it is tested on "
                       "(too few tracks or artists of these labels for this split)")
    record = {
        **options,
        "seed": seed,
        "counts": {side: len(tracks) for side, tracks in zip(("train", "valid", "test"), parts)},
        "groups": _group_coverage([t for part in parts for t in part]),
        **{side: sorted(t.track_id for t in tracks) for side, tracks in zip(("train", "valid", "test"), parts)},
        "train_groups": sorted({t.group for t in parts.train} - {None}),
        "labels_not_in_train": unseen,
        # file keys find the same tracks when the data is opened another way (manifest vs folder);
        # a feature table's tracks are rows, not files: their ids are all there is
        "keys": {} if dataset.kind == "table" else
        {side: sorted(track_key(t) for t in tracks) for side, tracks in zip(("train", "valid", "test"), parts)},
    }
    return parts, record


def track_key(track) -> str:
    """``"<file name without audio extension>:<size in bytes>"``: the same file under any dataset layout.
    """
    from genrekit.audio.decode import AUDIO_EXTENSIONS

    path = Path(track.path)
    name = path.stem if path.suffix.lower() in AUDIO_EXTENSIONS else path.name
    return f"{name}:{path.stat().st_size}"


def _group_coverage(tracks: Sequence) -> str:
    """``"all"``, ``"some"`` or ``"none"``: how many tracks name their group (artist)."""
    known = sum(t.group is not None for t in tracks)
    return "all" if known == len(tracks) else "some" if known else "none"


def limit_tracks(tracks: Sequence, per_label: int | None) -> list:
    """At most ``per_label`` tracks of each label, in their order (all when None)."""
    if per_label is None:
        return list(tracks)
    seen: dict[str, int] = {}
    kept = []
    for item in tracks:
        if seen.get(item.label, 0) < per_label:
            seen[item.label] = seen.get(item.label, 0) + 1
            kept.append(item)
    return kept


def data_fingerprint(tracks: Sequence) -> str:
    """``sha256:`` of the sorted ``(track_id, file size)`` list: changes when the data does."""
    digest = hashlib.sha256()
    for track_id, size in sorted((t.track_id, Path(t.path).stat().st_size) for t in tracks):
        digest.update(f"{track_id}\t{size}\n".encode())
    return f"sha256:{digest.hexdigest()}"
