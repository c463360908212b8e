"""Feature tables: precomputed segment features as a dataset, in place of audio.

Two layouts are read:

- ``.npz`` as in ``gtzan-msd-taggrams/train.npz``: ``X`` ``(n_rows, n_features)`` features,
  one row per segment; ``Y`` ``(n_rows,)`` labels, as class indices into the sorted label names
  (the model's ``labels``) or as names; ``IDS`` ``(n_rows,)`` the track of each row
  (e.g. ``"blues/blues.00012.au"``).
- Parquet, one row per segment: ``track``, ``label``, ``start``, ``end`` and the feature vector
  (a list column ``feature``, as ``genrekit embed`` writes, or one float column per dimension).

Rows of a track stay together, so every split and metric is track level. GTZAN track ids map
to Sturm's artist annotations (:func:`genrekit.data.datasets.load_gtzan_artists`) for
artist-grouped splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from genrekit.errors import DatasetError, UsageError

TABLE_SUFFIXES = (".npz", ".parquet")


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
    """

    features: np.ndarray
    track_index: np.ndarray
    tracks: list[str]
    labels: list[str] | None
    source: str

    def __len__(self) -> int:
        return len(self.features)


def is_table(path: str | Path) -> bool:
    """Whether ``path`` names a feature table (by suffix) rather than audio or a dataset folder."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def read_table(path: str | Path, label_names: Sequence[str] | None = None) -> FeatureTable:
    """Read a feature table; integer labels are indices into ``label_names`` (sorted names).

    Raises
    ------
    DatasetError
        Missing file, missing columns, rows of one track that are not consecutive, labels
        that disagree within a track, or class indices without ``label_names``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: feature table not found")
    if path.suffix.lower() == ".npz":
        features, ids, labels = _read_npz(path)
    elif path.suffix.lower() == ".parquet":
        features, ids, labels = _read_parquet(path)
    else:
        raise UsageError(f"{path}: a feature table is .npz or .parquet")
    if features.ndim != 2 or len(features) != len(ids) or (labels is not None and len(labels) != len(ids)):
        raise DatasetError(f"{path}: X must be (rows, features) with one id (and label) per row")
    if labels is not None and np.issubdtype(np.asarray(labels).dtype, np.integer):
        if label_names is None:
            raise DatasetError(f"{path}: labels are class indices; give the label names they index")
        names = list(label_names)
        if labels.min() < 0 or labels.max() >= len(names):
            raise DatasetError(f"{path}: class index out of range for {len(names)} labels")
        labels = np.asarray(names, dtype=object)[labels]
    return _grouped(path, features, ids, labels)


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("X", "IDS") if key not in data]
            if missing:
                raise DatasetError(f"{path}: an .npz feature table needs X and IDS (and Y), missing {missing[0]}")
            features = np.asarray(data["X"], dtype=np.float32)
            ids = np.asarray(data["IDS"]).astype(str)
            labels = np.asarray(data["Y"]) if "Y" in data else None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable .npz feature table ({exc})") from None
    if labels is not None and not np.issubdtype(labels.dtype, np.integer):
        labels = labels.astype(str)
    return features, ids, labels


def _read_parquet(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise UsageError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any Arrow error means an unreadable file
        raise DatasetError(f"{path}: not a readable Parquet feature table ({exc})") from None
    columns = table.column_names
    if "track" not in columns:
        raise DatasetError(f"{path}: a Parquet feature table needs a 'track' column")
    ids = np.asarray(table.column("track").to_pylist()).astype(str)
    labels = np.asarray(table.column("label").to_pylist()) if "label" in columns else None
    if labels is not None and labels.dtype.kind not in "iu":
        labels = labels.astype(str)
    if "feature" in columns:
        features = np.asarray(table.column("feature").to_pylist(), dtype=np.float32)
    else:
        numeric = [c for c in columns if c not in ("track", "path", "label", "start", "end", "error")]
        if not numeric:
            raise DatasetError(f"{path}: no feature columns")
        features = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in numeric], axis=1)
        features = features.astype(np.float32)
    return features, ids, labels


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
    """``"blues/blues.00012.au"`` -> ``"blues.00012"``: the id GTZAN lists and annotations use."""
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
