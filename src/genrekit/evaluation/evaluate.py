"""Evaluate a model file on a dataset split (``genrekit evaluate``): which tracks, leakage checks
against the model's own training tracks and artists, features through the model's front end,
track-level metrics and per-track predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from genrekit.audio.windows import DEFAULT_MAX_WINDOWS
from genrekit.errors import DatasetError, GenrekitError, UsageError
from genrekit.evaluation.metrics import (
    answer_metrics,
    answer_name,
    softmax,
    summarize_predictions,
    track_probabilities,
)
from genrekit.evaluation.reports import evaluation_markdown

SPLITS = ("test", "valid", "all", "kfold")


@dataclass
class Evaluation:
    """A model's results on one split of a dataset (what the report shows).

    ``metrics`` is :func:`summarize_predictions`'s dict, its track-level entries counting the
    answers ``genrekit predict`` gives (:func:`answer_metrics`); ``predictions`` one row per
    track (``track_id``, ``path``, ``label``, ``predicted``: a genre, ``"not music"`` or
    ``"silent"``, ``confidence``); ``notes`` sentences for the
    report (how the split was chosen, leakage and group checks, skipped tracks).

    Attributes
    ----------
    model_name : str
    model_path : str or None
        The model file, when evaluated from one.
    dataset : str
        The dataset's root (or a table's path).
    split : str
        ``"test"``, ``"valid"`` or ``"all"``.
    split_source : str
        Where the tracks' choice comes from (a phrase for the report).
    labels : list of str
        The model's genres.
    metrics : dict
    predictions : list of dict
    notes : list of str
    training_counts : dict
        Tracks per side of the model's own split.
    history : list of dict
        The model's training history (per epoch).
    """

    model_name: str
    model_path: str | None
    dataset: str
    split: str
    split_source: str
    labels: list[str]
    metrics: dict
    predictions: list[dict]
    notes: list[str] = field(default_factory=list)
    training_counts: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """All fields as a JSON-able dict (``genrekit evaluate --json``).

        Returns
        -------
        dict
        """
        return asdict(self)

    @property
    def track_confusion(self) -> list[list[int]]:
        """Track-level confusion counts, rows true, columns predicted (see :attr:`track_labels`)."""
        return self.metrics["tracks"]["confusion"]

    @property
    def track_labels(self) -> list[str]:
        """Rows and columns of :attr:`track_confusion`: the genres, then "not music" and
        "silent" when some track got that answer."""
        return list(self.metrics["tracks"]["per_class"])

    @property
    def histories(self) -> list[list[dict]]:
        """The model's training history as a list of runs (empty when not recorded)."""
        return [self.history] if self.history else []

    def markdown(self) -> str:
        """The report's Markdown body (:func:`genrekit.evaluation.reports.evaluation_markdown`).

        Returns
        -------
        str
        """
        return evaluation_markdown(self)


def evaluate_model(
    model,
    dataset,
    *,
    split: str = "test",
    dataset_kind: str = "auto",
    cache_dir: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    aggregate: str = "mean",
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> Evaluation:
    """Run a model on a split of a dataset and score it at segment and track level.

    Parameters
    ----------
    model : GenreModel or path
        A loaded model or a model file (``NAME``, ``NAME.json``, ``NAME.safetensors``).
        Each track is answered as ``genrekit predict`` answers it (:func:`classify_tracks`):
        a track that is not music, or silent, gets no genre and counts as wrong.
    dataset : Dataset or path
        Opened with :func:`genrekit.data.datasets.open_dataset` when a path.
    split : {"test", "valid", "all"}
        Which tracks: the model file's recorded test / validation tracks when they are in this
        dataset, else the dataset's own split (official or GTZAN artist-filtered, see
        :func:`genrekit.data.splits.split_dataset`); ``"all"`` takes every track.
    cache_dir : str or None
        Not used for audio since each track is answered as ``predict`` answers it (kept for
        callers that pass it; the feature cache serves training and cross-validation).
    device : str
        Where the model runs (:meth:`GenreModel.to <genrekit.inference.model.GenreModel.to>`).
    aggregate : str
        Segments to track, as ``genrekit predict --aggregate``: ``"mean"`` or ``"vote"``.
    max_windows : int, default DEFAULT_MAX_WINDOWS
        The window budget of ``genrekit predict``: each track is answered from at most this many
        of its windows, spread evenly; 0: all.

    Returns
    -------
    Evaluation

    Raises
    ------
    DatasetError
        When evaluated tracks (or their artists) were used to train the model, or the split
        selects no track the model can be scored on.
    """
    from genrekit.data.datasets import Dataset, open_dataset
    from genrekit.inference.model import GenreModel, load_model

    if split not in ("test", "valid", "all"):
        raise UsageError(f"split must be test, valid or all here, not {split!r} (kfold: see cross_validate)")
    model_path = None
    if not isinstance(model, GenreModel):
        model_path, model = str(model), load_model(model)
    if not isinstance(dataset, Dataset):
        dataset = open_dataset(dataset, dataset_kind)
    tracks, source = select_tracks(dataset, model.spec.split, split)
    notes = [f"Tracks: {source}."]
    notes += check_against_training(tracks, model.spec.split, split, model.name)
    known = set(model.labels)
    unknown = [t for t in tracks if t.label not in known]
    if unknown:
        notes.append(f"{len(unknown)} tracks with labels the model does not know were left out "
                     f"({', '.join(sorted({t.label for t in unknown}))}).")
        tracks = [t for t in tracks if t.label in known]
    if not tracks:
        raise DatasetError(f"{dataset.root}: the {split} split holds no track with a label the model knows")

    model.to(device)
    answers, segments, failed = classify_tracks(model, tracks, aggregate=aggregate, max_windows=max_windows,
                                                description=f"{split} tracks")
    if failed:
        notes.append(f"{len(failed)} tracks could not be decoded and were left out (first: {failed[0][1]}).")
    kept = [t for t in tracks if str(t.path) in {a.path for a in answers}]
    if not kept:
        raise DatasetError(f"{dataset.root}: none of the {len(tracks)} tracks could be decoded ({failed[0][1]})")
    code = {label: i for i, label in enumerate(model.labels)}
    track_labels = np.array([code[t.label] for t in kept], dtype=np.int64)
    probabilities, silent, weights, track_index = segments
    voiced = ~silent  # segment metrics: the windows the network saw
    metrics = summarize_predictions(probabilities[voiced], track_index[voiced], track_labels, model.labels,
                                    weights[voiced], aggregate)
    metrics.update(answer_metrics([t.label for t in kept], [answer_name(a) for a in answers], model.labels))
    predictions = [
        {"track_id": t.track_id, "path": str(t.path), "label": t.label, "predicted": answer_name(a),
         "confidence": round(float(a.confidence), 4)}
        for t, a in zip(kept, answers)
    ]
    record = model.spec.split
    return Evaluation(
        model_name=model.name,
        model_path=model_path,
        dataset=str(dataset.root),
        split=split,
        split_source=source,
        labels=model.labels,
        metrics=metrics,
        predictions=predictions,
        notes=notes,
        training_counts=dict(record.get("counts") or {}),
        history=list(model.spec.training.get("history") or []),
    )


def classify_tracks(model, tracks, *, aggregate: str = "mean", max_windows: int = DEFAULT_MAX_WINDOWS,
                    description: str = "tracks"):
    """Each track's answer exactly as ``genrekit predict`` gives it.

    Each file is read by :func:`genrekit.audio.windows.read_windows` and its windows go through
    :func:`genrekit.inference.predict.classify_segments` and
    :func:`~genrekit.inference.predict.summarize` (silence, the not-music rule, aggregation), the
    path of :meth:`GenreModel.predict <genrekit.inference.model.GenreModel.predict>`. (The feature
    cache is not used: a not-music detector may read more of the network than its cached feature.)

    Parameters
    ----------
    model : GenreModel
    tracks : sequence of Track
    aggregate : {"mean", "vote"}
    max_windows : int
        The window budget, as in :func:`genrekit.inference.predict.predict_audio` (0: every window).
    description : str
        The progress bar's label.

    Returns
    -------
    answers : list of Prediction
        One per track that could be read, in order.
    segments : tuple of np.ndarray
        ``(probabilities (n, n_classes), silent (n,), weights (n,), track_index (n,))`` of every
        window classified: calibrated probabilities (NaN rows for silent windows), the share of
        real audio in each window, and the index into ``answers`` of its track.
    failed : list of (Track, str)
        Tracks that could not be read, with the reason.
    """
    from genrekit.audio.windows import read_windows
    from genrekit.inference.predict import classify_segments, summarize
    from genrekit.utils import track

    answers, parts, failed = [], [], []
    for item in track(tracks, description, total=len(tracks)):
        try:
            windows = read_windows(str(item.path), model.sample_rate, window=model.window, hop=model.hop,
                                   last=model.segment.last, max_windows=max_windows)
            batches = [(b.starts, b.ends, *classify_segments(model, b.samples)) for b in windows]
        except GenrekitError as exc:
            failed.append((item, str(exc)))
            continue
        starts, ends, probabilities, silent = (np.concatenate([b[i] for b in batches]) for i in range(4))
        taggram = None if batches[0][4] is None else np.concatenate([b[4] for b in batches])
        answers.append(summarize(model, str(item.path), starts=starts, ends=ends, probabilities=probabilities,
                                 silent=silent, taggram=taggram, aggregate=aggregate, duration=windows.duration,
                                 warnings=[windows.repairs.describe()] if windows.repairs else None))
        parts.append((probabilities, silent, (ends - starts) / model.window, np.full(len(starts), len(answers) - 1)))
    n_classes = len(model.labels)
    segments = tuple(np.concatenate([p[i] for p in parts]) if parts else empty
                     for i, empty in enumerate((np.zeros((0, n_classes)), np.zeros(0, bool), np.zeros(0),
                                                np.zeros(0, np.int64))))
    return answers, segments, failed


def select_tracks(dataset, record: dict, split: str) -> tuple[list, str]:
    """The tracks of ``split`` and a phrase saying where that choice comes from.

    The model file's recorded tracks of that side are found by track id, or by file (name and
    size, :func:`genrekit.data.splits.track_key`) when the dataset was opened another way than for
    training (a manifest instead of a GTZAN folder, say).

    Parameters
    ----------
    dataset : Dataset
    record : dict
        The model file's ``split`` record.
    split : {"test", "valid", "all"}

    Returns
    -------
    tracks : list of Track
    source : str
        For the report, e.g. ``"test side of the GTZAN artist-filtered lists"``.
    """
    from genrekit.data.splits import split_dataset, track_key

    if split == "all":
        return list(dataset.tracks), f"all {len(dataset.tracks)} tracks of the dataset"
    recorded_ids = set(record.get(split) or [])
    recorded_keys = set((record.get("keys") or {}).get(split) or [])
    if recorded_ids or recorded_keys:
        chosen = [t for t in dataset.tracks if t.track_id in recorded_ids]
        if not chosen and recorded_keys:
            chosen = [t for t in dataset.tracks if track_key(t) in recorded_keys]
        if chosen:
            total = len(recorded_ids or recorded_keys)
            return chosen, (f"the model's recorded {split} tracks ({len(chosen)} of {total} found in this "
                            f"dataset; {record.get('method', '?')} split, seed {record.get('seed', '?')})")
    parts = split_dataset(dataset, "auto")
    side = parts.valid if split == "valid" else parts.test
    method = ("the dataset's official split" if all(t.split for t in dataset.tracks)
              else "GTZAN's artist-filtered split" if dataset.kind == "gtzan"
              else "a seeded random split of the dataset (seed 0)")
    return list(side), f"{split} side of {method}"


def check_against_training(tracks: Sequence, record: dict, split: str = "test", model_name: str = "the model") -> list[str]:
    """Leakage guard: raise :class:`DatasetError` if an evaluated track, or its artist, was trained on.

    Compares ``tracks`` with the training tracks the model file records (``record``: its ``split``
    field, :attr:`ModelSpec.split`): by track id, and by file
    (name without extension, and size in bytes) so that the same files opened through another
    dataset layout are recognised too. Tracks that only share a file name with training tracks
    (perhaps the same recording in another encoding) are reported in a note, not refused.
    Returns notes for the report: what could be checked, and whether groups are known.

    Parameters
    ----------
    tracks : sequence of Track
        The tracks to evaluate.
    spec : dict or ModelSpec
        The model's spec (its ``split`` record).
    split : str, default "test"

    Returns
    -------
    list of str

    Raises
    ------
    DatasetError
        An evaluated track, or the artist of one, was trained on.
    """
    from genrekit.data.splits import track_key

    trained_ids = set(record.get("train") or [])
    trained_keys = set((record.get("keys") or {}).get("train") or [])
    notes = []
    if not trained_ids and not trained_keys:
        notes.append("The model file records no training tracks, so overlap with training could not be checked.")
    else:
        keys = {t.track_id: track_key(t) for t in tracks} if trained_keys else {}
        overlap = sorted(t.track_id for t in tracks if t.track_id in trained_ids or keys.get(t.track_id) in trained_keys)
        if overlap:
            raise DatasetError(
                f"{len(overlap)} of the {len(tracks)} evaluated tracks were used to train "
                f"{model_name} (e.g. {overlap[0]}): the split leaks; evaluate on held-out tracks"
            )
        notes.append(f"None of the evaluated tracks is among the model's {len(trained_ids or trained_keys)} "
                     "training tracks" + (" (compared by id and by file name and size)." if trained_keys else
                                          " (compared by track id only: this model file records no file keys)."))
        trained_names = {key.rsplit(":", 1)[0] for key in trained_keys}
        same_name = [t.track_id for t in tracks if keys.get(t.track_id, "").rsplit(":", 1)[0] in trained_names]
        if same_name:
            notes.append(f"{len(same_name)} evaluated tracks share a file name with training tracks (e.g. "
                         f"{same_name[0]}) but not the size: if they are the same recordings, the split leaks.")
    groups = {t.group for t in tracks}
    if None in groups:
        notes.append(
            "This split has no group (artist) information for "
            f"{sum(t.group is None for t in tracks)} of {len(tracks)} tracks: songs of one artist may sit on "
            "both sides, which flatters the accuracy."
        )
    trained_groups = set(record.get("train_groups") or [])
    shared = sorted((groups - {None}) & trained_groups)
    if shared:
        raise DatasetError(
            f"artist {shared[0]!r} (and {len(shared) - 1} more) has tracks in training and in the "
            f"evaluated {split} split: the split leaks"
        )
    if trained_groups and groups != {None}:
        notes.append("No artist (group) of the evaluated tracks appears in training.")
    if split == "valid" and record.get("valid"):
        notes.append("The validation tracks chose the best epoch and the temperature: expect optimistic numbers.")
    return notes


def evaluate_table(model, table, *, split: str = "all", aggregate: str = "mean") -> Evaluation:
    """Score a model on a feature table (``.npz`` / ``.parquet``) whose rows are its network's input.

    The model's front end is skipped: each row goes straight into ``model.network`` (e.g. a
    taggram head on published MSD-musicnn taggrams), rows are combined per track as
    ``genrekit predict`` combines segments, and metrics are track level. ``split="all"`` scores
    every track of the table; ``"test"`` / ``"valid"`` the tracks the model file records on that
    side of its split (a model trained on this table by ``genrekit train``). Tracks the model
    lists as its training tracks, and GTZAN tracks by an annotated artist it was trained on,
    are refused.

    Parameters
    ----------
    model : GenreModel or path
    table : FeatureTable or path
        A table whose rows are the model's network input (:func:`genrekit.data.tables.read_table`).
    split : {"all", "test", "valid"}, default "all"
    aggregate : {"mean", "vote"}, default "mean"

    Returns
    -------
    Evaluation

    Raises
    ------
    UsageError
        Another ``split``.
    DatasetError
        No recorded tracks of that side in the table, rows of the wrong width, no labels, unknown
        labels, or tracks (or artists) the model was trained on.
    """
    from genrekit.data.tables import (
        bare_track_id,
        read_table,
        shape_rows,
        table_track_ids,
    )
    from genrekit.inference.model import GenreModel, load_model
    from genrekit.models.registry import predict_logits

    if split not in ("test", "valid", "all"):
        raise UsageError(f"a feature table is scored on --split all, test or valid, not {split!r}")
    model_path = None
    if not isinstance(model, GenreModel):
        model_path, model = str(model), load_model(model)
    table = read_table(table, model.labels) if not hasattr(table, "features") else table
    record = model.spec.split
    source = f"every track of the feature table ({len(table.tracks)} tracks, {len(table)} rows)"
    if split != "all":
        wanted = {bare_track_id(t) for t in record.get(split) or []}
        if not wanted:
            raise DatasetError(f"{model.name} records no {split} tracks (it was not trained on a split of this "
                               "data): use --split all")
        chosen = [i for i, t in enumerate(table.tracks) if bare_track_id(t) in wanted]
        if not chosen:
            raise DatasetError(f"{table.source}: none of the {len(wanted)} {split} tracks {model.name} records is in "
                               "this table")
        table = table.subset(chosen)
        source = (f"the model's recorded {split} tracks ({len(chosen)} of {len(wanted)} found in this table; "
                  f"{record.get('method', '?')} split, seed {record.get('seed', '?')})")
    expected = model.spec.input_shape
    if expected and not shape_rows(table, expected):
        raise DatasetError(f"{table.source}: rows have {int(np.prod(table.features.shape[1:]))} features, but "
                           f"{model.name} takes {expected} ({model.spec.feature_specs[0].get('name')} "
                           f"{model.spec.feature_specs[0].get('layer', '')})")
    if table.labels is None:
        raise DatasetError(f"{table.source}: the table has no labels to score against")
    trained = {bare_track_id(t) for t in record.get("train", [])}
    overlap = sorted({bare_track_id(t) for t in table.tracks} & trained)
    if overlap:
        raise DatasetError(f"{table.source}: {len(overlap)} tracks were used to train {model.name} "
                           f"(first: {overlap[0]}); score it on held-out tracks")
    notes = _table_artist_notes(table_track_ids(table.tracks), record.get("train_groups") or [], model.name)
    known = [label in set(model.labels) for label in table.labels]
    if not all(known):
        raise DatasetError(f"{table.source}: labels the model does not know: "
                           f"{', '.join(sorted({l for l, k in zip(table.labels, known) if not k}))}")
    logits = predict_logits(model.network, [table.features])
    probabilities = softmax(logits.numpy() / model.temperature)
    code = {label: i for i, label in enumerate(model.labels)}
    track_labels = np.array([code[label] for label in table.labels], dtype=np.int64)
    metrics = summarize_predictions(probabilities, table.track_index, track_labels, model.labels, None, aggregate)
    per_track = track_probabilities(probabilities, table.track_index, len(table.tracks), None, aggregate)
    predictions = [{"track_id": t, "label": label, "predicted": model.labels[int(p.argmax())],
                    "confidence": round(float(p.max()), 4)}
                   for t, label, p in zip(table.tracks, table.labels, per_track)]
    return Evaluation(
        model_name=model.name, model_path=model_path, dataset=table.source,
        split=split, split_source=source, labels=model.labels, metrics=metrics, predictions=predictions,
        notes=[f"Feature table {table.source}: {len(table.tracks)} tracks, {len(table)} rows fed to the network "
               f"directly (no audio front end); none of them is a training track of the model.", *notes],
        training_counts=dict(record.get("counts") or {}),
    )


def _table_artist_notes(track_ids: Sequence[str], train_groups: Sequence[str], name: str) -> list[str]:
    """Refuse GTZAN tracks whose annotated artist the model was trained on; note inferred ones.

    Artists are compared without the ``artist:`` prefix that tables' groups carry. An
    unannotated clip's artist is only inferred (:func:`genrekit.data.tables.gtzan_groups`), so a
    match there is reported, not refused.
    """
    from genrekit.data.datasets import load_gtzan_artists
    from genrekit.data.tables import gtzan_groups

    trained = {g.removeprefix("artist:") for g in train_groups}
    if not trained:
        return []
    annotated = load_gtzan_artists()
    known = [a.strip().lower() for t in track_ids if (a := annotated.get(t)) is not None]
    shared = sorted(set(known) & trained)
    if shared:
        raise DatasetError(f"artist {shared[0]!r} (and {len(shared) - 1} more) has tracks in {name}'s training data "
                           "and in the evaluated table: the evaluation leaks")
    if not known:
        return []
    inferred = sorted({g.removeprefix("artist:") for t, g in zip(track_ids, gtzan_groups(track_ids))
                       if t not in annotated and g.startswith("artist:")} & trained)
    note = f"No annotated artist of the {len(known)} annotated GTZAN tracks appears in the model's training data."
    if inferred:
        note += (f" Unannotated tracks sit between clips of {', '.join(repr(a) for a in inferred)}, an artist the "
                 "model was trained on: they may be by that artist.")
    return [note]
