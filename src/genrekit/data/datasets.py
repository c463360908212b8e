"""Open labelled music collections as lists of tracks: GTZAN, FMA, folder-per-label trees, CSV manifests.

Every reader returns a :class:`Dataset` whose ``tracks`` are usable (the file exists, the label is
known) and whose ``problems`` say what was skipped or looks wrong. Nothing here decodes audio unless
asked (``check_audio=True``), so opening 100k FMA tracks takes seconds.

Severities of :class:`Problem`: ``"error"`` (a file the dataset promises is missing, unreadable or
duplicated: ``genrekit data check`` exits 1), ``"warning"`` (skipped for a known or harmless
reason) and ``"info"`` (facts worth knowing, e.g. "8 of 100 GTZAN clips: a subset").
"""

from __future__ import annotations

import csv
import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

from genrekit.audio.decode import AUDIO_EXTENSIONS, audio_info
from genrekit.errors import AudioError, DatasetError, EmptyAudioError, UsageError
from genrekit.utils import track as progress

KINDS = ("gtzan", "fma", "folder", "manifest")

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

GTZAN_TRACKS_PER_GENRE = 100

#: Layouts seen in the wild: the original tarball (``genres/``) and the Kaggle copy.
GTZAN_SUBFOLDERS = ("genres", "genres_original", "Data/genres_original")

#: Known bad files, used only to explain a failure that ``check_audio`` found.
GTZAN_KNOWN_CORRUPT = {"jazz.00054": "known corrupt file in the Kaggle copy of GTZAN"}

FMA_SUBSETS = ("small", "medium", "large")

FMA_SPLITS = {"training": "train", "validation": "valid", "test": "test"}

#: Clips of fma_small/medium that hold no audio at all (github.com/mdeff/fma issues #41 and #44).
FMA_KNOWN_EMPTY = frozenset({"099134", "108925", "133297"})

FMA_COLUMNS_USED = ("set.subset", "set.split", "track.genre_top", "artist.id")

SPLIT_NAMES = ("train", "valid", "test")

_SPLIT_ALIASES = {**FMA_SPLITS, "train": "train", "valid": "valid", "val": "valid", "dev": "valid"}


SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Track:
    """One labelled audio file.

    Attributes
    ----------
    path : Path
    label : str
    track_id : str
        Unique in the dataset, without file extension (``blues.00012``, FMA's ``000002``).
    group : str or None
        The unit that must not straddle a split (the artist); ``None``: unknown.
    split : {"train", "valid", "test"} or None
        The dataset's own split, if it has one.
    """

    path: Path
    label: str
    track_id: str
    group: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something wrong or notable found while opening a dataset.

    Attributes
    ----------
    path : str
    kind : str
        ``missing-file``, ``duplicate``, ``unreadable``, ``empty``, ``known-empty``, ``no-label``,
        ``no-group``, ``unexpected-file``, ``incomplete`` or ``bad-row``.
    message : str
    severity : {"error", "warning", "info"}
    """

    path: str
    kind: str
    message: str
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        """Whether the severity is ``"error"``."""
        return self.severity == "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message} [{self.kind}]"


@dataclass
class Dataset:
    """Tracks of a labelled collection and the problems met while reading it.

    Attributes
    ----------
    name, kind : str
        Display name, and ``"gtzan"``, ``"fma"``, ``"folder"`` or ``"manifest"``.
    root : Path
    tracks : list of Track
    labels : list of str
        Every label of ``tracks``, sorted.
    problems : list of Problem
    durations : dict of str to float
        ``track_id`` -> seconds, once the audio has been probed (:meth:`check_audio`).
    """

    name: str
    root: Path
    tracks: list[Track]
    labels: list[str]
    problems: list[Problem]
    kind: str = "folder"
    durations: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity ``"error"``."""
        return [problem for problem in self.problems if problem.is_error]

    def label_counts(self) -> dict[str, int]:
        """Number of tracks per label, in the order of ``labels``.

        Returns
        -------
        dict of str to int
        """
        counts = Counter(track.label for track in self.tracks)
        return {label: counts[label] for label in self.labels}

    def check_audio(self) -> None:
        """Open every file: drop unreadable tracks into ``problems`` and record ``durations``."""
        durations, problems = probe_audio(self.tracks)
        bad = {problem.path for problem in problems if problem.is_error}
        self.tracks = [track for track in self.tracks if str(track.path) not in bad]
        self.labels = sorted({track.label for track in self.tracks})
        self.durations.update(durations)
        self.problems.extend(problems)


def open_dataset(path: str | Path, kind: str = "auto", *, check_audio: bool = False, **options) -> Dataset:
    """Open a labelled collection of audio files.

    Parameters
    ----------
    path : str or Path
        A dataset folder, or a CSV manifest file (``path,label[,split][,group]``).
    kind : {"auto", "gtzan", "fma", "folder", "manifest"}
        ``"auto"`` picks with :func:`detect_kind`.
    check_audio : bool
        Open every file (header only) to find unreadable or empty ones and to measure durations.
        Slow on large collections; off by default.
    **options
        ``subset`` for FMA (``"small"``, ``"medium"`` or ``"large"``; default: the smallest whose
        ``fma_<subset>/`` folder exists).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        If ``path`` does not exist or holds nothing usable.
    UsageError
        If ``kind`` or an option is not recognised.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if kind == "auto":
        kind = detect_kind(path)
    readers = {"gtzan": open_gtzan, "fma": open_fma, "folder": open_folder, "manifest": open_manifest}
    if kind not in readers:
        raise UsageError(f"unknown dataset kind {kind!r} (choose from auto, {', '.join(KINDS)})")
    unknown = set(options) - ({"subset"} if kind == "fma" else set())
    if unknown:
        raise UsageError(f"option {sorted(unknown)[0]!r} does not apply to {kind} datasets")
    dataset = readers[kind](path, **options)
    if check_audio:
        dataset.check_audio()
    return dataset


def detect_kind(path: str | Path) -> str:
    """Guess the dataset kind of ``path``.

    A file is a manifest; a folder with ``fma_metadata/tracks.csv`` is FMA; GTZAN genre folders
    of ``<genre>.NNNNN`` files are GTZAN; anything else a folder-per-label tree.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    {"gtzan", "fma", "folder", "manifest"}
    """
    path = Path(path)
    if path.is_file():
        if path.name == "tracks.csv" and path.parent.name == "fma_metadata":
            return "fma"
        return "manifest"
    if (path / "fma_metadata" / "tracks.csv").is_file():
        return "fma"
    if _looks_like_gtzan(_gtzan_root(path)):
        return "gtzan"
    return "folder"


def open_gtzan(root: str | Path) -> Dataset:
    """Read GTZAN: one folder per genre holding ``<genre>.NNNNN.<ext>`` files (any audio extension).

    ``group`` is the artist from Sturm's GTZAN index (:func:`load_gtzan_artists`, 920 of 1000
    clips). Genres with under 100 clips are ``info``; one id with two extensions is a ``duplicate``.

    Parameters
    ----------
    root : str or Path
        The genre folders' parent, or the folder above the original ``genres/`` or Kaggle's
        ``Data/genres_original/``.

    Returns
    -------
    Dataset
    """
    root = _gtzan_root(Path(root))
    artists = load_gtzan_artists()
    tracks: list[Track] = []
    problems: list[Problem] = []
    pattern = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})$")
    for folder in _subfolders(root):
        if folder.name not in GTZAN_GENRES:
            if any(_audio_files(folder)):
                problems.append(Problem(str(folder), "unexpected-file", "not a GTZAN genre, skipped", "warning"))
            continue
        for path in _audio_files(folder, recursive=False):
            match = pattern.match(path.stem)
            if not match or match["genre"] != folder.name:
                message = f"name is not {folder.name}.NNNNN, skipped"
                problems.append(Problem(str(path), "unexpected-file", message, "warning"))
                continue
            tracks.append(Track(path, folder.name, path.stem, group=artists.get(path.stem)))
    tracks, duplicates = _drop_duplicates(tracks)
    problems += duplicates
    problems += _gtzan_counts(root, tracks)
    unknown = sum(track.group is None for track in tracks)
    if unknown:
        message = f"artist unknown for {unknown} of {len(tracks)} clips (group=None)"
        problems.append(Problem(str(root), "no-group", message, "info"))
    return _dataset(root, tracks, problems, kind="gtzan", name=root.name)


@functools.lru_cache(maxsize=1)
def load_gtzan_artists() -> dict[str, str]:
    """Artist of each annotated GTZAN clip, from the ``gtzan-artists.csv`` shipped with genrekit.

    Returns
    -------
    dict of str to str
        ``{"blues.00000": "John Lee Hooker", ...}`` (Sturm's GTZAN index).
    """
    try:
        text = (resources.files("genrekit") / "assets" / "gtzan-artists.csv").read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {row["track_id"]: row["artist"] for row in csv.DictReader(text.splitlines()) if row.get("artist")}


def _gtzan_counts(root: Path, tracks: list[Track]) -> list[Problem]:
    counts = Counter(track.label for track in tracks)
    short = [genre for genre in GTZAN_GENRES if counts[genre] < GTZAN_TRACKS_PER_GENRE]
    if not short:
        return []
    per_genre = ", ".join(f"{genre} {counts[genre]}" for genre in GTZAN_GENRES)
    message = f"{sum(counts.values())} of {GTZAN_TRACKS_PER_GENRE * len(GTZAN_GENRES)} GTZAN clips ({per_genre})"
    severity = "warning" if any(counts[genre] == 0 for genre in GTZAN_GENRES) else "info"
    return [Problem(str(root), "incomplete", message, severity)]


def _gtzan_root(path: Path) -> Path:
    for sub in GTZAN_SUBFOLDERS:
        if (path / sub).is_dir() and not any((path / genre).is_dir() for genre in GTZAN_GENRES):
            return path / sub
    return path


def _looks_like_gtzan(path: Path) -> bool:
    folders = [folder for folder in _subfolders(path) if any(_audio_files(folder, recursive=False))]
    if not folders or any(folder.name not in GTZAN_GENRES for folder in folders):
        return False
    first = next(_audio_files(folders[0], recursive=False))
    return re.fullmatch(rf"{folders[0].name}\.\d{{5}}", first.stem) is not None


def open_fma(root: str | Path, subset: str | None = None) -> Dataset:
    """Read the Free Music Archive: ``fma_metadata/tracks.csv`` and the ``fma_<subset>/`` audio.

    Label ``track.genre_top``, group ``artist.id``, split ``set.split``; tracks without a top
    genre or known to be empty are skipped.

    Parameters
    ----------
    root : str or Path
        The folder holding ``fma_metadata/`` (or ``tracks.csv`` itself).
    subset : {"small", "medium", "large"}, optional
        This subset and the smaller ones; default: the smallest whose audio folder exists.

    Returns
    -------
    Dataset

    Raises
    ------
    UsageError
        Unknown ``subset``.
    DatasetError
        No audio folder for the subset, or an unreadable ``tracks.csv``.
    """
    root = Path(root)
    if root.is_file():  # given fma_metadata/tracks.csv itself
        root = root.parent.parent
    subset = subset or _default_fma_subset(root)
    if subset not in FMA_SUBSETS:
        raise UsageError(f"unknown FMA subset {subset!r} (choose from {', '.join(FMA_SUBSETS)})")
    audio_root = root / f"fma_{subset}"
    if not audio_root.is_dir():
        raise DatasetError(f"{audio_root}: audio folder of the FMA {subset} subset not found")
    tracks: list[Track] = []
    problems: list[Problem] = []
    no_genre = 0
    allowed = FMA_SUBSETS[: FMA_SUBSETS.index(subset) + 1]
    for row in read_fma_tracks(root / "fma_metadata" / "tracks.csv", FMA_COLUMNS_USED):
        if row["set.subset"] not in allowed:
            continue
        if not row["track.genre_top"]:
            no_genre += 1
            continue
        track_id = f"{int(row['track_id']):06d}"
        track = Track(
            path=fma_audio_path(audio_root, track_id),
            label=row["track.genre_top"],
            track_id=track_id,
            group=row["artist.id"] or None,
            split=FMA_SPLITS.get(row["set.split"]),
        )
        problem = _fma_file_problem(track)
        if problem:
            problems.append(problem)
        else:
            tracks.append(track)
    if no_genre:
        message = f"{no_genre} tracks of fma_{subset} have no track.genre_top, skipped"
        problems.append(Problem(str(root / "fma_metadata" / "tracks.csv"), "no-label", message, "info"))
    return _dataset(root, tracks, problems, kind="fma", name=f"fma_{subset}")


def read_fma_tracks(csv_path: str | Path, columns: Iterable[str] | None = None) -> Iterator[dict[str, str]]:
    """Rows of FMA's ``tracks.csv`` as dicts keyed ``"<top>.<sub>"`` plus ``"track_id"``.

    The file has a two-row header (pandas multi-index columns) and a third line ``track_id,,,...``.

    Parameters
    ----------
    csv_path : str or Path
    columns : iterable of str, optional
        Keys to keep (``"set.subset"``, ``"track.genre_top"``, ``"artist.id"``, ...); faster on the
        100k-row file. Default: all.

    Yields
    ------
    dict of str to str

    Raises
    ------
    DatasetError
        The file cannot be read, lacks a needed column, or has a malformed row.
    """
    csv_path = Path(csv_path)
    required = FMA_COLUMNS_USED
    wanted = None if columns is None else list(columns)
    csv.field_size_limit(max(csv.field_size_limit(), 2**27))  # artist bios run long
    try:
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            top, sub, index_name = next(reader), next(reader), next(reader)
            names = _fma_columns(top, sub)
            missing = [name for name in (*required, *(wanted or ())) if name not in names]
            if missing or not index_name or index_name[0] != "track_id":
                missing = missing or ["track_id"]
                raise DatasetError(f"{csv_path}: not FMA's tracks.csv (two header rows, then track_id); no {missing}")
            keep = [(name, names.index(name) + 1) for name in (names if wanted is None else wanted)]
            for line, values in enumerate(reader, start=4):
                if not values:
                    continue
                if len(values) != len(names) + 1 or not values[0].isdigit():
                    raise DatasetError(f"{csv_path}: line {line}: malformed row")
                row = {name: values[index] for name, index in keep}
                row["track_id"] = values[0]
                yield row
    except (OSError, UnicodeDecodeError, StopIteration, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: cannot read FMA tracks.csv ({exc or 'file too short'})") from None


def fma_audio_path(audio_root: str | Path, track_id: int | str) -> Path:
    """Where FMA keeps a track's audio: the 6-digit id under a folder of its first 3 digits.

    Parameters
    ----------
    audio_root : str or Path
    track_id : int or str

    Returns
    -------
    Path
        ``<audio_root>/NNN/NNNNNN.mp3``.
    """
    padded = f"{int(track_id):06d}"
    return Path(audio_root) / padded[:3] / f"{padded}.mp3"


def _fma_columns(top: list[str], sub: list[str]) -> list[str]:
    names, current = [], ""
    for upper, lower in zip(top[1:], sub[1:]):
        current = upper or current  # tolerate merged (blank) top-level cells
        names.append(f"{current}.{lower}")
    return names


def _fma_file_problem(track: Track) -> Problem | None:
    path = str(track.path)
    if track.track_id in FMA_KNOWN_EMPTY:
        return Problem(path, "known-empty", "FMA clip known to hold no audio, skipped", "warning")
    try:
        size = track.path.stat().st_size
    except FileNotFoundError:
        return Problem(path, "missing-file", "listed in tracks.csv but not found")
    if size == 0:
        return Problem(path, "empty", "file is empty (0 bytes)")
    return None


def _default_fma_subset(root: Path) -> str:
    present = [subset for subset in FMA_SUBSETS if (root / f"fma_{subset}").is_dir()]
    return present[0] if present else "small"


def open_folder(root: str | Path) -> Dataset:
    """Read a folder-per-label tree: each subfolder's name labels every audio file below it.
    ``track_id`` is the path relative to ``root`` without its suffix.

    Parameters
    ----------
    root : str or Path

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    tracks, problems = [], []
    for folder in _subfolders(root):
        for path in _audio_files(folder):
            track_id = path.relative_to(root).with_suffix("").as_posix()
            tracks.append(Track(path, folder.name, track_id))
    loose = list(_audio_files(root, recursive=False))
    if loose:
        message = f"{len(loose)} audio files directly in the root have no label folder, skipped"
        problems.append(Problem(str(root), "unexpected-file", message, "warning"))
    tracks, duplicates = _drop_duplicates(tracks)
    return _dataset(root, tracks, problems + duplicates, kind="folder", name=root.name)


def open_manifest(csv_path: str | Path) -> Dataset:
    """Read a CSV manifest with a header row: ``path,label[,split][,group][,track_id]``.
    ``genre`` may stand for ``label``, ``artist`` for ``group``; ``split`` is train/valid/test.
    Rows naming a missing file, an empty label or an unknown split are reported and skipped.

    Parameters
    ----------
    csv_path : str or Path
        Paths in the manifest are relative to its folder.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Unreadable, or no ``path`` and ``label`` columns.
    """
    csv_path = Path(csv_path)
    base = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            header = [name.strip().lower() for name in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: cannot read manifest ({exc})") from None
    columns = {name: name for name in header}
    columns.setdefault("label", "genre" if "genre" in header else None)
    columns.setdefault("group", "artist" if "artist" in header else None)
    if "path" not in header or columns["label"] is None:
        raise DatasetError(f"{csv_path}: manifest needs a header with 'path' and 'label' columns")
    tracks, problems = [], []
    for line, raw in enumerate(rows, start=2):
        row = {key.strip().lower(): (value or "").strip() for key, value in raw.items() if key}
        track, problem = _manifest_track(row, columns, base, f"{csv_path}:{line}")
        if problem:
            problems.append(problem)
        else:
            tracks.append(track)
    tracks, duplicates = _drop_duplicates(tracks)
    return _dataset(base, tracks, problems + duplicates, kind="manifest", name=csv_path.stem)


def _manifest_track(row: dict, columns: dict, base: Path, where: str) -> tuple[Track | None, Problem | None]:
    label = row.get(columns["label"], "")
    split = row.get("split", "")
    if not row["path"] or not label:
        return None, Problem(where, "bad-row", "empty path or label, skipped")
    path = Path(row["path"]).expanduser()
    path = path if path.is_absolute() else base / path
    if split and split.lower() not in _SPLIT_ALIASES:
        return None, Problem(where, "bad-row", f"unknown split {split!r} (use train, valid or test), skipped")
    if not path.is_file():
        return None, Problem(str(path), "missing-file", f"listed in {where} but not found")
    track_id = row.get("track_id") or Path(row["path"]).with_suffix("").as_posix()
    group = row.get(columns["group"]) if columns["group"] else None
    return Track(path, label, track_id, group or None, _SPLIT_ALIASES.get(split.lower())), None


def probe_audio(tracks: Iterable[Track], *, description: str = "checking audio") -> tuple[dict[str, float], list[Problem]]:
    """Open each track's file (header only), with a progress bar titled ``description``.

    Parameters
    ----------
    tracks : iterable of Track
    description : str, default "checking audio"

    Returns
    -------
    durations : dict
        ``track_id`` -> duration in seconds, for the readable files.
    problems : list of Problem
        ``unreadable`` or ``empty`` (no samples) errors, one per bad file.
    """
    tracks = list(tracks)
    durations, problems = {}, []
    for track in progress(tracks, description, total=len(tracks)):
        try:
            duration = float(audio_info(track.path).duration)
        except AudioError as exc:
            message = exc.cause + (f" ({exc.detail})" if exc.detail else "")
            if track.track_id in GTZAN_KNOWN_CORRUPT:
                message += f"; {GTZAN_KNOWN_CORRUPT[track.track_id]}"
            kind = "empty" if isinstance(exc, EmptyAudioError) else "unreadable"
            problems.append(Problem(str(track.path), kind, message))
            continue
        if duration <= 0:
            problems.append(Problem(str(track.path), "empty", "no audio samples"))
        else:
            durations[track.track_id] = duration
    return durations, problems


def summarize(dataset: Dataset) -> dict:
    """A JSON-able report: tracks and seconds per label, splits, groups and problems.

    Parameters
    ----------
    dataset : Dataset
        As opened (probe the audio first for durations).

    Returns
    -------
    dict
        ``name``, ``kind``, ``root``, ``tracks``, ``duration_s`` (or ``None``),
        ``labels``, ``splits``, ``groups``, ``tracks_without_group``, ``problems``, ``errors``.
    """
    probed = bool(dataset.durations)
    per_label = []
    for label in dataset.labels:
        ids = [track.track_id for track in dataset.tracks if track.label == label]
        seconds = sum(dataset.durations.get(track_id, 0.0) for track_id in ids) if probed else None
        per_label.append({"label": label, "tracks": len(ids), "duration_s": seconds})
    splits = Counter(track.split for track in dataset.tracks if track.split)
    groups = {track.group for track in dataset.tracks} - {None}
    return {
        "name": dataset.name,
        "kind": dataset.kind,
        "root": str(dataset.root),
        "tracks": len(dataset.tracks),
        "duration_s": sum(dataset.durations.values()) if probed else None,
        "labels": per_label,
        "splits": {side: splits[side] for side in SPLIT_NAMES if splits[side]},
        "groups": len(groups),
        "tracks_without_group": sum(track.group is None for track in dataset.tracks),
        "problems": [vars(problem) for problem in dataset.problems],
        "errors": len(dataset.errors),
    }


def format_summary(summary: dict, *, max_problems: int = 20) -> str:
    """:func:`summarize`'s report as an aligned text table followed by the problems.

    Parameters
    ----------
    summary : dict
    max_problems : int, default 20
        Problems listed per severity.

    Returns
    -------
    str
    """
    width = max([len("label"), *(len(row["label"]) for row in summary["labels"])])
    lines = [f"{summary['name']} ({summary['kind']}: {summary['root']})", ""]
    lines.append(f"{'label':<{width}}  {'tracks':>7}  {'duration':>10}")
    for row in summary["labels"]:
        lines.append(f"{row['label']:<{width}}  {row['tracks']:>7}  {_clock(row['duration_s']):>10}")
    lines.append(f"{'total':<{width}}  {summary['tracks']:>7}  {_clock(summary['duration_s']):>10}")
    lines.append("")
    if summary["splits"]:
        lines.append("splits: " + ", ".join(f"{side} {n}" for side, n in summary["splits"].items()))
    if summary["groups"]:
        unknown = summary["tracks_without_group"]
        lines.append(f"groups (artists): {summary['groups']}" + (f", unknown for {unknown} tracks" if unknown else ""))
    counts = Counter(problem["severity"] for problem in summary["problems"])
    lines.append(f"problems: {counts['error']} errors, {counts['warning']} warnings, {counts['info']} info")
    for severity in SEVERITIES:
        found = [problem for problem in summary["problems"] if problem["severity"] == severity]
        lines += [f"  {Problem(**problem)}" for problem in found[:max_problems]]
        if len(found) > max_problems:
            lines.append(f"  ... and {len(found) - max_problems} more {severity} problems")
    return "\n".join(lines) + "\n"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, seconds = divmod(round(seconds, 1), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{seconds:04.1f}" if hours else f"{minutes}:{seconds:04.1f}"


def _subfolders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def _audio_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    paths = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(paths):
        if path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".") and path.is_file():
            yield path


def _drop_duplicates(tracks: list[Track]) -> tuple[list[Track], list[Problem]]:
    kept: dict[str, Track] = {}
    problems = []
    for track in tracks:
        first = kept.setdefault(track.track_id, track)
        if first is not track:
            message = f"same track id {track.track_id!r} as {first.path.name}, skipped"
            problems.append(Problem(str(track.path), "duplicate", message))
    return list(kept.values()), problems


def _dataset(root: Path, tracks: list[Track], problems: list[Problem], *, kind: str, name: str) -> Dataset:
    if not tracks and not problems:
        raise DatasetError(f"{root}: no labelled audio files found for a {kind} dataset")
    labels = sorted({track.label for track in tracks})
    return Dataset(name=name, root=root, tracks=tracks, labels=labels, problems=problems, kind=kind)
