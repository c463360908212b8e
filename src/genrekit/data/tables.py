"""Feature tables: precomputed segment features as a dataset, in place of audio.

Two layouts are read:

- ``.npz`` as in ``gtzan-msd-taggrams/train.npz``: ``X`` ``(n_rows, n_features)`` features,
  one row per segment; ``Y`` ``(n_rows,)`` labels, as class indices into the sorted label names
  (the model's ``labels``) or as names; ``IDS`` ``(n_rows,)`` the track of each row
  (e.g. ``"blues/blues.00012.au"``).
- Parquet, one row per segment: ``track``, ``label``, ``start``, ``end`` and the feature vector
  (a list column ``feature``, as ``genrekit embed`` writes, or one float column per dimension).
  A file, or a folder of Parquet files (``genrekit embed --ray`` writes one). Tables written by
  ``genrekit embed`` (:mod:`genrekit.data.embed`) also hold ``path``, ``fingerprint`` and
  ``error``: a file that could not be embedded is one row with ``path`` and ``error`` only;
  such rows are left out of the features and listed in ``FeatureTable.errors``. Their schema
  metadata key ``genrekit`` (:data:`METADATA_KEY`) describes the feature, sample rate and
  windows (``FeatureTable.metadata``).

Rows of a track stay together, so every split and metric is track level. GTZAN track ids map
to Sturm's artist annotations (:func:`genrekit.data.datasets.load_gtzan_artists`) for
artist-grouped splits.

A table is a training dataset too (``genrekit train --dataset TABLE``): :func:`table_dataset`
makes its tracks :class:`~genrekit.data.datasets.Track` objects that the usual splits take, and
:func:`table_segments` hands their rows to training as segment features. The feature the rows
are (``{"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}``, say) comes from the
user or from the table: Parquet key-value metadata ``genrekit`` holding JSON
``{"feature": {...}, "labels": [...]}`` (``labels``: the names integer labels index); an
``.npz`` may carry the same JSON text as ``META``. Integer labels without names are GTZAN's
sorted genres when every track id is a GTZAN id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from genrekit.errors import DatasetError, UsageError

TABLE_SUFFIXES = (".npz", ".parquet")
#: Key of the Parquet key-value metadata (JSON) that says what a table's rows are.
METADATA_KEY = b"genrekit"


@dataclass
class FeatureTable:
    """Segment features of many tracks.

    Attributes
    ----------
    features : np.ndarray, float32
        ``(n_rows, n_features)``.
    track_index : np.ndarray, int
        ``(n_rows,)`` index into ``tracks``; rows of one track are consecutive.
    tracks : list of str
        Track ids in order of first appearance.
    labels : list of str or None
        Label of each track (None when the table has no labels).
    source : str
    paths, starts, ends : per row, when the table has them (``genrekit embed`` tables do)
        Audio file, and start and end of the segment in seconds.
    metadata : dict
        The table's ``genrekit`` schema metadata (feature spec, sample rate, windows), if any.
    errors : list of (path, error)
        Files the table records as failed (their rows carry no features).
    """

    features: np.ndarray
    track_index: np.ndarray
    tracks: list[str]
    labels: list[str] | None
    source: str
    paths: list[str] | None = None
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, tracks: Sequence[int], source: str | None = None) -> "FeatureTable":
        """The rows of the tracks at positions ``tracks``, in that order.

        Parameters
        ----------
        tracks : sequence of int
            Positions in ``self.tracks``.
        source : str, optional
            The new table's ``source``; default this one's.

        Returns
        -------
        FeatureTable
            Features, track index, ids and labels only (no paths, times or metadata).
        """
        tracks = [int(i) for i in tracks]
        rows = [np.flatnonzero(self.track_index == i) for i in tracks]
        index = np.concatenate([np.full(len(r), new, dtype=np.int64) for new, r in enumerate(rows)] or [np.zeros(0, np.int64)])
        picked = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return FeatureTable(self.features[picked], index, [self.tracks[i] for i in tracks],
                            None if self.labels is None else [self.labels[i] for i in tracks], source or self.source)

    @property
    def row_tracks(self) -> list[str]:
        """The track of every row."""
        return [self.tracks[i] for i in self.track_index]

    @property
    def row_labels(self) -> list[str] | None:
        """The label of every row (None when the table has no labels)."""
        return None if self.labels is None else [self.labels[i] for i in self.track_index]


def is_table(path: str | Path) -> bool:
    """Whether ``path`` names a feature table (by suffix: a file, or a ``NAME.parquet`` folder)
    rather than audio or a dataset folder.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    bool
        The suffix is ``.npz`` or ``.parquet`` (no file is opened).
    """
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def read_table(path: str | Path, label_names: Sequence[str] | None = None) -> FeatureTable:
    """Read a feature table; integer labels are indices into ``label_names`` (sorted names).

    Parameters
    ----------
    path : str or Path
        An ``.npz`` file (``X``, ``ids``, optional ``Y``), a Parquet file, or a folder of Parquet
        files (read as one table; rows of a track are gathered, since parallel writers interleave
        files freely).
    label_names : sequence of str, optional
        Names of integer labels (sorted); default the table's metadata, or GTZAN's genres for
        GTZAN ids.

    Returns
    -------
    FeatureTable

    Raises
    ------
    DatasetError
        Missing file, missing columns, rows of one track that are not consecutive (in one
        file), labels that disagree within a track, or class indices without ``label_names``.
    UsageError
        A suffix other than ``.npz`` or ``.parquet``.
    """
    path = Path(path)
    folder = path.is_dir() and (path.suffix.lower() == ".parquet" or any(path.rglob("*.parquet")))
    if not (path.is_file() or folder):
        raise DatasetError(f"{path}: feature table not found")
    extra: dict = {}
    if path.suffix.lower() == ".npz" and not folder:
        features, ids, labels, extra = _read_npz(path)
    elif path.suffix.lower() == ".parquet" or folder:
        features, ids, labels, extra = _read_parquet(path, regroup=folder)
    else:
        raise UsageError(f"{path}: a feature table is .npz or .parquet")
    if features.ndim != 2 or len(features) != len(ids) or (labels is not None and len(labels) != len(ids)):
        raise DatasetError(f"{path}: X must be (rows, features) with one id (and label) per row")
    if not len(ids):
        raise DatasetError(f"{path}: the table holds no feature rows")
    if labels is not None and np.issubdtype(np.asarray(labels).dtype, np.integer):
        label_names = label_names or extra.get("metadata", {}).get("labels") or _gtzan_names(ids)
        if label_names is None:
            raise DatasetError(f"{path}: labels are class indices; give the label names they index "
                               "(the table's metadata 'labels', or string labels)")
        names = list(label_names)
        if labels.min() < 0 or labels.max() >= len(names):
            raise DatasetError(f"{path}: class index out of range for {len(names)} labels")
        labels = np.asarray(names, dtype=object)[labels]
    table = _grouped(path, features, ids, labels)
    for name, value in extra.items():
        setattr(table, name, value)
    return table


def _metadata_json(path: Path, text) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise DatasetError(f"{path}: the table's {METADATA_KEY.decode()} metadata is not JSON") from None
    return value if isinstance(value, dict) else {}


def _gtzan_names(ids) -> list[str] | None:
    from genrekit.data.datasets import GTZAN_GENRES

    bare = {bare_track_id(str(t)) for t in np.unique(ids)}
    return list(GTZAN_GENRES) if bare and all(_is_gtzan_id(t) for t in bare) else None


def _is_gtzan_id(track: str) -> bool:
    from genrekit.data.datasets import GTZAN_GENRES

    genre, _, number = track.partition(".")
    return genre in GTZAN_GENRES and len(number) == 5 and number.isdigit()


#: Arrays an ``.npz`` table may hold; others are ignored (and not read).
NPZ_KEYS = ("X", "IDS", "Y", "META")


#: Deflate cannot shrink data more than about 1032 times: a member declaring more is not real.
MAX_DEFLATE_RATIO = 1100


def _read_npz(path: Path):
    """``(features, ids, labels, extra)`` of an ``.npz`` table; ``extra`` holds its ``metadata``
    (the JSON text of its ``META`` array, ``{}`` without one)."""
    arrays = _npz_arrays(path)
    missing = [key for key in ("X", "IDS") if key not in arrays]
    if missing:
        raise DatasetError(f"{path}: an .npz feature table needs X and IDS (and Y), missing {missing[0]}")
    if arrays["X"].dtype.kind not in "biuf":
        raise DatasetError(f"{path}: X holds {arrays['X'].dtype} values; features must be real numbers")
    features = arrays["X"].astype(np.float32, copy=False)
    ids = arrays["IDS"].astype(str)
    labels = arrays.get("Y")
    if labels is not None and not np.issubdtype(labels.dtype, np.integer):
        labels = labels.astype(str)
    meta = arrays.get("META")
    return features, ids, labels, {"metadata": _metadata_json(path, None if meta is None else str(meta))}


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The :data:`NPZ_KEYS` arrays of an ``.npz`` file, each checked against the archive before
    it is read: a shape declaring more data than the member holds is refused, not allocated."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not an .npz feature table (not a zip archive)")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                if key in NPZ_KEYS and key not in arrays:
                    arrays[key] = _npz_member(path, archive, info)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise DatasetError(f"{path}: not a readable .npz feature table ({exc})") from None
    except MemoryError:
        raise DatasetError(f"{path}: the table is too large for this machine's memory") from None
    return arrays


def _npz_member(path: Path, archive, info) -> np.ndarray:
    from numpy.lib import format as npy

    key = info.filename.removesuffix(".npy")
    if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096:
        raise DatasetError(f"{path}: {key} declares {info.file_size:,} bytes in {info.compress_size:,} "
                           "compressed bytes: not a real archive member")
    with archive.open(info) as member:
        version = npy.read_magic(member)
        read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if read_header is None:
            raise DatasetError(f"{path}: {key} is in .npy format {version[0]}.{version[1]}, which this reader "
                               "does not take (1.0 and 2.0 are)")
        shape, fortran, dtype = read_header(member)
        if dtype.hasobject:
            raise DatasetError(f"{path}: {key} holds Python objects (pickled data), which are never loaded")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if declared != info.file_size - member.tell():
            raise DatasetError(f"{path}: {key} declares shape {tuple(shape)} ({declared:,} bytes) but holds "
                               f"{info.file_size - member.tell():,} bytes")
    with archive.open(info) as member:
        return npy.read_array(member, allow_pickle=False)


def _read_parquet(path: Path, regroup: bool = False):
    """``(features, ids, labels, extra)`` of a Parquet file or folder; ``extra`` holds the
    per-row ``paths``, ``starts``, ``ends``, the ``metadata`` and the ``errors`` of error rows."""
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise UsageError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(str(path))
    except Exception as exc:  # noqa: BLE001 - any Arrow error means an unreadable file
        raise DatasetError(f"{path}: not a readable Parquet feature table ({exc})") from None
    columns = table.column_names
    if "track" not in columns:
        raise DatasetError(f"{path}: a Parquet feature table needs a 'track' column")
    metadata = _metadata_json(path, (table.schema.metadata or {}).get(METADATA_KEY))
    errors: list[tuple[str, str]] = []
    if "error" in columns:  # files that failed: recorded, not features
        failed = table.filter(pc.is_valid(table["error"]))
        where = failed["path"] if "path" in columns else failed["track"]
        errors = list(zip(where.to_pylist(), failed["error"].to_pylist()))
        table = table.filter(pc.is_null(table["error"]))
    if regroup and len(table):  # a folder: gather each track's rows, in order of first appearance
        ids = np.asarray(table.column("track").to_pylist()).astype(str)
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        table = table.take(np.argsort(first[inverse], kind="stable"))
    _check_parquet_types(path, table)
    ids = np.asarray(table.column("track").to_pylist()).astype(str)
    labels = None
    if "label" in columns and table["label"].null_count < len(table):
        labels = np.asarray(table.column("label").to_pylist())
        if labels.dtype.kind not in "iu":
            labels = labels.astype(str)
    if "feature" in columns:
        features = _feature_column(path, table["feature"])
    else:
        numeric = _plain_feature_columns(columns)
        features = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in numeric], axis=1)
        features = features.astype(np.float32)
    extra = {"metadata": metadata, "errors": errors}
    if "path" in columns:
        extra["paths"] = [str(p) for p in table["path"].to_pylist()]
    for name, key in (("start", "starts"), ("end", "ends")):
        if name in columns:
            extra[key] = table[name].to_numpy(zero_copy_only=False).astype(np.float64)
    return features, ids, labels, extra


#: Parquet columns that are not features when the features are one column per dimension.
NOT_FEATURE_COLUMNS = ("track", "path", "label", "start", "end", "error", "fingerprint")


def _plain_feature_columns(columns) -> list[str]:
    return [c for c in columns if c not in NOT_FEATURE_COLUMNS]


def _check_parquet_types(path: Path, table) -> None:
    """Refuse, with one line naming the column, feature, ``start`` and ``end`` columns that are not
    numbers (strings, structs, ragged or nested lists) before anything is converted."""
    import pyarrow as pa

    def numeric(kind) -> bool:
        return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)

    if "feature" in table.column_names:
        kind = table.schema.field("feature").type
        listed = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
        if not (listed and numeric(kind.value_type)):
            raise DatasetError(f"{path}: the 'feature' column holds {kind}, not lists of numbers")
    else:
        names = _plain_feature_columns(table.column_names)
        if not names:
            raise DatasetError(f"{path}: no feature columns")
        for name in names:
            if not numeric(table.schema.field(name).type):
                raise DatasetError(f"{path}: feature column {name!r} holds {table.schema.field(name).type}, "
                                   "not numbers")
    for name in ("start", "end"):
        if name in table.column_names and not numeric(table.schema.field(name).type):
            raise DatasetError(f"{path}: the {name!r} column holds {table.schema.field(name).type}, not seconds")


def _feature_column(path: Path, column) -> np.ndarray:
    """A list column of feature vectors (checked by :func:`_check_parquet_types`) as
    ``(rows, dim)`` float32, without a round trip through Python objects."""
    import pyarrow.compute as pc

    column = column.combine_chunks()
    if column.null_count:
        raise DatasetError(f"{path}: {column.null_count} rows have no feature vector")
    if not len(column):
        return np.zeros((0, 0), np.float32)
    lengths = pc.list_value_length(column)
    shortest, longest = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if shortest != longest:
        raise DatasetError(f"{path}: feature vectors of different lengths ({shortest} to {longest} values)")
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.require(values, np.float32, "W").reshape(len(column), longest)  # torch wants writable arrays


def _grouped(path: Path, features, ids, labels) -> FeatureTable:
    tracks, index = np.unique(ids, return_inverse=True)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if len(starts) != len(tracks):
        raise DatasetError(f"{path}: the rows of a track must be consecutive")
    order = ids[starts]  # tracks in order of first appearance
    position = {track: i for i, track in enumerate(order)}
    track_index = np.array([position[t] for t in tracks])[index]
    track_labels = None
    if labels is not None:
        track_labels = [str(labels[s]) for s in starts]
        if (np.asarray(labels).astype(str) != np.asarray(track_labels, dtype=object)[track_index].astype(str)).any():
            raise DatasetError(f"{path}: rows of one track have different labels")
    if not np.isfinite(features).all():
        raise DatasetError(f"{path}: the features hold NaN or infinite values")
    return FeatureTable(features, track_index.astype(np.int64), [str(t) for t in order], track_labels, str(path))


def bare_track_id(track: str) -> str:
    """The id GTZAN lists and annotations use, from a table's track id.

    Parameters
    ----------
    track : str
        A path-like id.

    Returns
    -------
    str

    Examples
    --------
    >>> bare_track_id("blues/blues.00012.au")
    'blues.00012'
    """
    name = track.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".au", ".wav", ".flac", ".mp3", ".ogg"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def gtzan_groups(tracks: Sequence[str]) -> list[str]:
    """An artist group per GTZAN track id, for artist-grouped folds.

    Tracks Sturm's index gives no artist form groups of consecutive indices of one genre; such a
    run joins the neighbouring artist when the same artist is on both sides of it (e.g. jazz
    47-66, inside Coleman Hawkins' run), so that no unannotated clip stands apart from its artist.

    Parameters
    ----------
    tracks : sequence of str
        GTZAN track ids (paths are reduced with :func:`bare_track_id`).

    Returns
    -------
    list of str
        ``"artist:<name>"``, ``"unannotated:<genre>.<first>-<last>"`` or ``"track:<id>"``, one
        per track.
    """
    from genrekit.data.datasets import load_gtzan_artists

    artists = load_gtzan_artists()
    groups = []
    for track in tracks:
        key = bare_track_id(track)
        if key in artists:
            groups.append("artist:" + artists[key].strip().lower())
            continue
        genre, _, number = key.partition(".")
        if not number.isdigit():
            groups.append("track:" + key)
            continue
        low, high = int(number), int(number)
        while low > 0 and f"{genre}.{low - 1:05d}" not in artists:
            low -= 1
        while high < 99 and f"{genre}.{high + 1:05d}" not in artists:
            high += 1
        before, after = artists.get(f"{genre}.{low - 1:05d}"), artists.get(f"{genre}.{high + 1:05d}")
        if before is not None and before == after:
            groups.append("artist:" + before.strip().lower())
        else:
            groups.append(f"unannotated:{genre}.{low:05d}-{high:05d}")
    return groups


# -- tables as training data -------------------------------------------------------------------------


def table_track_ids(tracks: Sequence[str]) -> list[str]:
    """The dataset id of each table track.

    The bare id (``blues.00012``, as GTZAN folders name their tracks, so a model trained on a
    table can be checked against audio of the same tracks) when those are unique, else the
    table's ids unchanged.

    Parameters
    ----------
    tracks : sequence of str
        A table's track ids.

    Returns
    -------
    list of str
    """
    bare = [bare_track_id(t) for t in tracks]
    return bare if len(set(bare)) == len(bare) else [str(t) for t in tracks]


def table_dataset(table: FeatureTable):
    """The table's tracks as a :class:`~genrekit.data.datasets.Dataset` (``kind="table"``) for the
    usual splits.

    GTZAN ids get artist groups (:func:`gtzan_groups`), other tracks none; the track's ``path`` is
    its table id, so ``gtzan-artist`` lists find GTZAN tracks by name.

    Parameters
    ----------
    table : FeatureTable
        A table read by :func:`read_table`.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        The table has no labels.
    """
    from genrekit.data.datasets import Dataset, Track

    if table.labels is None:
        raise DatasetError(f"{table.source}: a training table needs labels (Y, or a 'label' column)")
    ids = table_track_ids(table.tracks)
    gtzan = all(_is_gtzan_id(bare_track_id(t)) for t in table.tracks)
    groups = gtzan_groups(table.tracks) if gtzan else [None] * len(ids)
    tracks = [Track(Path(raw), label, track_id, group=group)
              for raw, label, track_id, group in zip(table.tracks, table.labels, ids, groups)]
    return Dataset(Path(table.source).stem, Path(table.source), tracks, sorted(set(table.labels)), [], kind="table")


def table_segments(table: FeatureTable, tracks: Sequence):
    """The rows of ``tracks`` as segment features: every row weighs 1 and none is silent.

    Parameters
    ----------
    table : FeatureTable
        A table read by :func:`read_table`.
    tracks : sequence of Track
        Tracks of :func:`table_dataset`.

    Returns
    -------
    SegmentFeatures
        Rows in the order of ``tracks``.
    """
    from genrekit.data.extract import SegmentFeatures

    position = {track_id: i for i, track_id in enumerate(table_track_ids(table.tracks))}
    order = np.argsort(table.track_index, kind="stable")
    bounds = np.searchsorted(table.track_index[order], np.arange(len(table.tracks) + 1))
    rows = [order[bounds[position[t.track_id]]:bounds[position[t.track_id] + 1]] for t in tracks]
    index = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rows)] or [np.zeros(0, np.int64)])
    picked = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return SegmentFeatures(inputs=[table.features[picked]], track_index=index,
                           weights=np.ones(len(picked)), silent=np.zeros(len(picked), bool), tracks=list(tracks))


def table_fingerprint(table: FeatureTable, tracks: Sequence) -> str:
    """A digest of the used tracks' ids, labels and row contents: it changes when the data does.

    Parameters
    ----------
    table : FeatureTable
        A table read by :func:`read_table`.
    tracks : sequence of Track
        The tracks a run uses.

    Returns
    -------
    str
        ``"sha256:<hex>"``.
    """
    import hashlib

    digest = hashlib.sha256()
    segments = table_segments(table, sorted(tracks, key=lambda t: t.track_id))
    for track, features in zip(segments.tracks, np.split(segments.inputs[0], np.flatnonzero(np.diff(segments.track_index)) + 1)):
        digest.update(f"{track.track_id}\t{track.label}\t{len(features)}\n".encode())
        digest.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
    return f"sha256:{digest.hexdigest()}"


def shape_rows(table: FeatureTable, shape: Sequence[int]) -> bool:
    """Give ``table``'s rows the feature shape ``shape``, in place.

    Tables store 2-D features flattened, as ``genrekit embed`` writes them.

    Parameters
    ----------
    table : FeatureTable
        A table read by :func:`read_table`.
    shape : sequence of int
        The shape of one segment's features, e.g. ``(200, 8)``.

    Returns
    -------
    bool
        False when the rows do not hold that many values (the table is left as it was).
    """
    shape = tuple(int(n) for n in shape)
    if table.features.shape[1:] == shape:
        return True
    if int(np.prod(table.features.shape[1:])) != int(np.prod(shape)):
        return False
    table.features = table.features.reshape(len(table.features), *shape)
    return True


def table_feature(given: dict | list | None, table: FeatureTable, sample_rate: int, window: float) -> tuple[dict, int]:
    """The resolved feature spec the table's rows are, and the sample rate it implies.

    ``given`` (the user's spec, None when not given) and the table's metadata ``feature`` must
    agree when both exist; one of them must. A front end with a fixed rate (musicnn: 16 kHz)
    sets the rate; others take ``sample_rate``. The spec's output for one ``window``-second
    segment must have the table's width, so the trained head runs on audio unchanged.

    Parameters
    ----------
    given : dict, list or None
        The user's feature spec; None when not given.
    table : FeatureTable
        A table read by :func:`read_table`.
    sample_rate : int
        The run's rate in Hz, for front ends without a fixed one.
    window : float
        Segment length in seconds.

    Returns
    -------
    spec : dict
        The resolved feature spec.
    sample_rate : int
        The rate it implies, in Hz.

    Raises
    ------
    UsageError
        A list of features, no feature given or stored, ``given`` and the stored feature
        disagree, or the feature's width does not match the table's.
    """
    import torch

    from genrekit.features.registry import build_feature, resolve_feature

    stored = table.metadata.get("feature")
    if isinstance(given, list) or isinstance(stored, list):
        raise UsageError(f"{table.source}: a feature table holds one feature, not a list")
    spec = given or stored
    if spec is None:
        raise UsageError(f"{table.source}: say which feature the table's rows are, e.g. --feature "
                         '\'{"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}\' '
                         "(the table's metadata names none)")
    module = build_feature(spec)
    configurable = "sr" in (module.config() if hasattr(module, "config") else {})
    rate = int(getattr(module, "sr", None) or sample_rate) if not configurable and "sr" not in spec else sample_rate
    resolved, module = resolve_feature(spec, rate)
    if given and stored:
        other, _ = resolve_feature(stored, rate)
        if other != resolved:
            raise UsageError(f"{table.source}: the table says its rows are {stored}, but the feature given is {given}")
    with torch.no_grad():
        shape = tuple(module(torch.zeros(1, int(round(window * rate)))).shape[1:])
    if not shape_rows(table, shape):
        raise UsageError(f"{table.source}: rows have {int(np.prod(table.features.shape[1:]))} values, but feature "
                         f"{resolved.get('name')} {resolved.get('layer', '')} gives {list(shape)} per "
                         f"{window:g} s segment: not the feature these rows are")
    return resolved, rate
