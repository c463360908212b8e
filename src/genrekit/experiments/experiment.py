"""Experiments: many training recipes (variants) cross-validated under one protocol into one
results table (``genrekit experiment run``). Features are computed once per feature and
folds may run in worker processes.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from genrekit.errors import UsageError
from genrekit.experiments.results import (
    METRICS,
    _environment,
    _load_average,
    _mean_std,
    _write_run_report,
    summarize_folds,
    write_results,
)
from genrekit.utils import atomic_write_text, finite_json, read_toml

logger = logging.getLogger(__name__)

#: Evaluation methods: ``kfold`` (grouped cross-validation) or a fixed split of
#: :func:`genrekit.data.splits.split_dataset`.
METHODS = ("kfold", "auto", "random", "group", "official", "gtzan-artist")


GROUPINGS = ("track", "artist")


#: TrainConfig settings an experiment sets itself (so [base] and variants may not).
_OWN_SETTINGS = ("dataset", "dataset_kind", "out", "name", "split")


#: Settings that change where or how fast a fold runs, not what it computes.
_RUNTIME_SETTINGS = ("out", "name", "cache_dir", "device", "checkpoint")


@dataclass
class Variant:
    """One recipe of an experiment: TrainConfig ``settings`` over the experiment's base.

    Attributes
    ----------
    name : str
        Unique within the experiment (a ``[[variant]]``'s ``name``).
    input, model : str
        How the results table describes its feature and its model.
    settings : dict
        :class:`~genrekit.training.config.TrainConfig` settings over the experiment's ``[base]``.
    """

    name: str
    input: str
    model: str
    settings: dict


@dataclass
class Experiment:
    """A parsed experiment file (see the module docstring and :func:`load_experiment`).

    Attributes
    ----------
    name : str
    dataset, dataset_kind : str
        Dataset path and kind (:func:`genrekit.data.datasets.open_dataset`).
    protocol : dict
        ``method`` (:data:`METHODS`), and for ``kfold`` ``folds``, ``group_by`` (:data:`GROUPINGS`)
        and ``valid_size``; ``valid_size`` and ``test_size`` for a fixed split.
    base : dict
        Settings every variant starts from.
    variants : list of Variant
    description : str
    source : str or None
        The file it was read from.
    """

    name: str
    dataset: str
    dataset_kind: str
    protocol: dict
    base: dict
    variants: list[Variant]
    description: str = ""
    source: str | None = None


@dataclass
class Run:
    """One table row: a variant under one protocol (k-fold grouping, or fixed split).

    Attributes
    ----------
    experiment : Experiment
    variant : Variant
    grouping : {"track", "artist"} or None
        The k-fold grouping; None for a fixed split.
    """

    experiment: Experiment
    variant: Variant
    grouping: str | None  # "track" or "artist" for k-fold, None for a fixed split

    @property
    def protocol(self) -> str:
        """The protocol's name in the table: ``track-grouped``, ``artist-grouped`` or the split method.
        """
        method = self.experiment.protocol["method"]
        return f"{self.grouping}-grouped" if method == "kfold" else method

    @property
    def id(self) -> str:
        """``<variant>-<grouping or split method>``: the run's folder name under ``out/models``."""
        return f"{self.variant.name}-{self.grouping or self.experiment.protocol['method']}"

    @property
    def folds(self) -> int:
        """Number of folds; 1 for a fixed split."""
        return int(self.experiment.protocol["folds"]) if self.grouping else 1

    def config(self, fold: int, out: Path):
        """The :class:`~genrekit.training.config.TrainConfig` of one fold.

        Parameters
        ----------
        fold : int
            Fold index, ``0 <= fold < folds`` (0 for a fixed split).
        out : Path
            The experiment's output folder; the model goes to ``out/models/<id>/fold<fold>``.

        Returns
        -------
        TrainConfig

        Raises
        ------
        UsageError
            The variant's settings do not make a valid config.
        """
        from genrekit.experiments.crossval import kfold_split
        from genrekit.training.config import TrainConfig

        protocol = self.experiment.protocol
        if self.grouping:
            split = kfold_split(self.folds, fold, valid_size=protocol["valid_size"], group_by=self.grouping)
        else:
            split = {"method": protocol["method"], "valid_size": protocol["valid_size"],
                     "test_size": protocol["test_size"]}
        values = {
            **copy.deepcopy(self.experiment.base),
            **copy.deepcopy(self.variant.settings),
            "dataset": self.experiment.dataset,
            "dataset_kind": self.experiment.dataset_kind,
            "split": split,
            "out": str(out / "models" / self.id / f"fold{fold}"),
            "name": f"{self.experiment.name}-{self.id}-fold{fold}",
        }
        values.setdefault("checkpoint", False)
        return TrainConfig.from_dict(values, where=f"{self.experiment.source or self.experiment.name}: "
                                                   f"variant {self.variant.name!r}")


def load_experiment(
    path: str | Path,
    *,
    data: str | None = None,
    kind: str | None = None,
    method: str | None = None,
    folds: int | None = None,
    group_by: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    settings: dict | None = None,
) -> Experiment:
    """Read an experiment file; keyword arguments (not None) override it.

    Parameters
    ----------
    path : path
        TOML file (see the module docstring). ``dataset`` may name environment variables
        (``"$GTZAN"``) and is taken relative to the file. A ``genrekit train`` config (no
        ``[base]``, no ``[[variant]]``) is an experiment of that one recipe, its ``split``
        the protocol.
    data : str, optional
        Dataset path instead of the file's (relative to the current directory).
    kind : str, optional
        Dataset kind (``auto``, ``gtzan``, ``fma``, ``folder``, ``manifest``).
    method, folds, group_by :
        Protocol overrides: e.g. ``method="gtzan-artist"`` for GTZAN's fixed artist-filtered
        split or ``"official"`` for FMA's.
    only : sequence of str, optional
        Keep these variants only (by name).
    settings : dict, optional
        TrainConfig settings applied to every variant (``{"epochs": 2}``); ``epochs`` and
        ``patience`` leave scikit-learn baselines alone, which have none.

    Returns
    -------
    Experiment
        Every recipe already checked (a bad one fails now, not after an hour of training).

    Raises
    ------
    UsageError
        Unreadable file, unknown keys or variants, a dataset path that names an unset variable.
    """
    path = Path(path)
    values = read_toml(path, "experiment file")
    if "variant" not in values and "base" not in values:
        values = _single_recipe(values, path)
    _refuse_unknown(values, {"name", "description", "dataset", "dataset_kind", "protocol", "base", "variant"}, path)
    dataset = data or values.get("dataset")
    if not dataset:
        raise UsageError(f"{path}: no dataset; set 'dataset' in the file or pass --data")
    if not data:
        dataset = _resolve_path(dataset, path)
    protocol = _protocol(values.get("protocol", {}), path, method=method, folds=folds, group_by=group_by)
    base = dict(values.get("base", {}))
    _refuse_own_settings(base, f"{path} [base]")
    if base.get("cache_dir"):
        base["cache_dir"] = _resolve_path(base["cache_dir"], path)
    variants = [_variant(entry, path) for entry in values.get("variant", [])]
    if not variants:
        raise UsageError(f"{path}: no [[variant]] tables")
    names = [v.name for v in variants]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise UsageError(f"{path}: variant name {duplicate!r} is used twice")
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise UsageError(f"{path}: no variant named {missing[0]!r} (known: {', '.join(names)})")
        variants = [v for v in variants if v.name in only]
    experiment = Experiment(
        name=str(values.get("name") or path.stem), dataset=str(dataset),
        dataset_kind=kind or values.get("dataset_kind", "auto"), protocol=protocol, base=base,
        variants=variants, description=str(values.get("description", "")).strip(), source=str(path),
    )
    if settings:
        _apply_settings(experiment, settings)
    for run in plan_runs(experiment):
        run.config(0, Path("."))  # check every recipe now rather than after an hour of training
    return experiment


def _single_recipe(values: dict, where: Path) -> dict:
    """An experiment of one variant from a ``genrekit train`` config (one recipe per file).

    Its ``split`` becomes the protocol (k-fold settings, or the fixed split it names), its
    ``out`` and ``name`` are dropped (the experiment writes to its own folder), everything else
    is the recipe.
    """
    recipe = dict(values)
    experiment = {key: recipe.pop(key) for key in ("dataset", "dataset_kind", "protocol", "description")
                  if key in recipe}
    split = recipe.pop("split", {})
    recipe.pop("out", None)
    recipe.pop("search", None)  # a genrekit tune config is a train config with a search space
    name = recipe.pop("name", None) or where.stem
    if "protocol" not in experiment and split:
        protocol = {k: v for k, v in split.items() if k in ("method", "folds", "group_by", "valid_size", "test_size")}
        experiment["protocol"] = protocol
    base = {"cache_dir": recipe.pop("cache_dir")} if "cache_dir" in recipe else {}  # resolved like [base]'s
    return {**experiment, "name": name, "base": base, "variant": [{"name": where.stem, **recipe}]}


def _resolve_path(value: str, where: Path) -> str:
    expanded = os.path.expanduser(os.path.expandvars(str(value)))
    if "$" in expanded:
        raise UsageError(f"{where}: path {value!r} names an unset environment variable; set it or pass --data")
    return expanded if Path(expanded).is_absolute() else str(where.parent / expanded)


def _refuse_unknown(values: dict, known: set, where) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _refuse_own_settings(values: dict, where: str) -> None:
    own = sorted(set(values) & set(_OWN_SETTINGS))
    if own:
        raise UsageError(f"{where}: {own[0]!r} is set by the experiment (top-level dataset, [protocol])")


def _protocol(values: dict, where: Path, **overrides) -> dict:
    _refuse_unknown(values, {"method", "folds", "group_by", "valid_size", "test_size"}, f"{where} [protocol]")
    protocol = {"method": "kfold", "folds": 5, "group_by": ["artist"], "valid_size": 0.15, "test_size": 0.2,
                **values, **{k: v for k, v in overrides.items() if v is not None}}
    if isinstance(protocol["group_by"], str):
        protocol["group_by"] = [protocol["group_by"]]
    protocol["group_by"] = list(dict.fromkeys(protocol["group_by"]))
    if protocol["method"] not in METHODS:
        raise UsageError(f"{where}: protocol method must be one of {', '.join(METHODS)}, not {protocol['method']!r}")
    bad = [g for g in protocol["group_by"] if g not in GROUPINGS]
    if bad or not protocol["group_by"]:
        raise UsageError(f"{where}: group_by must list {', '.join(GROUPINGS)}, not {bad[0] if bad else 'nothing'!r}")
    if protocol["method"] == "kfold" and not (isinstance(protocol["folds"], int) and protocol["folds"] >= 2):
        raise UsageError(f"{where}: k-fold needs folds >= 2, not {protocol['folds']!r}")
    return protocol


def _variant(entry: dict, where: Path) -> Variant:
    entry = dict(entry)
    name = entry.pop("name", None)
    if not name or not isinstance(name, str) or "/" in name:
        raise UsageError(f"{where}: every [[variant]] needs a 'name' usable as a file name")
    _refuse_own_settings(entry, f"{where}: variant {name!r}")
    input_name = str(entry.pop("input", _describe_feature(entry.get("feature"))))
    model_name = str(entry.pop("model", (entry.get("architecture") or {}).get("name", "?")))
    return Variant(name, input_name, model_name, entry)


def _describe_feature(feature) -> str:
    if isinstance(feature, list):
        return " + ".join(_describe_feature(f) for f in feature)
    return (feature or {}).get("name", "?")


def _apply_settings(experiment: Experiment, settings: dict) -> None:
    _refuse_own_settings(settings, "overrides")
    for variant in experiment.variants:
        baseline = (variant.settings.get("architecture") or experiment.base.get("architecture") or {}).get(
            "name", "").startswith("sklearn-")
        for key, value in settings.items():
            if baseline and key in ("epochs", "patience", "augment"):
                continue
            variant.settings[key] = copy.deepcopy(value)


def plan_runs(experiment: Experiment) -> list[Run]:
    """The table rows in order: every variant under the first grouping, then the next grouping.

    Parameters
    ----------
    experiment : Experiment

    Returns
    -------
    list of Run
    """
    if experiment.protocol["method"] != "kfold":
        return [Run(experiment, variant, None) for variant in experiment.variants]
    return [Run(experiment, variant, grouping)
            for grouping in experiment.protocol["group_by"] for variant in experiment.variants]


def run_experiments(
    experiments: Sequence[Experiment],
    out: str | Path,
    *,
    force: bool = False,
    reports: bool = True,
    jobs: int = 1,
    threads: int | None = None,
    command: str | None = None,
) -> list[dict]:
    """Train and test every fold of every run; write the table, reports and figures to ``out``.

    Features are computed first, once per distinct feature and dataset, into the feature cache;
    then the folds train, reading them back.

    Parameters
    ----------
    experiments : sequence of Experiment
        Their runs all go into one table.
    out : path
        Output folder (see the module docstring).
    force : bool
        Retrain folds that have a record from an identical recipe (default: reuse it).
    reports : bool
        Write a cross-validation report per run (Markdown, confusion matrix, curves).
    jobs : int
        Worker processes for features and folds (1: everything in this process). Results do
        not depend on it.
    threads : int, optional
        torch threads per worker process (default 1 when ``jobs > 1``).
    command : str, optional
        The command line, recorded in ``results.md``.

    Returns
    -------
    list of dict
        One row per run (the keys of :data:`COLUMNS`, plus ``per_fold``).

    Raises
    ------
    UsageError
        ``jobs`` below 1, or a recipe that cannot run.
    DatasetError
        A protocol the dataset cannot support (see :func:`check_dataset`).
    """
    out = Path(out)
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}")
    started, load_before = time.perf_counter(), _load_average()
    for experiment in experiments:
        check_dataset(experiment)
    runs = [run for experiment in experiments for run in plan_runs(experiment)]
    ids = [run.id for run in runs]
    clash = next((i for i in ids if ids.count(i) > 1), None)
    if clash:
        raise UsageError(f"two experiments both have a run {clash!r}: rename a variant or run them separately")
    records, pending = {}, []
    for run in runs:
        for fold in range(run.folds):
            record = None if force else _reusable_record(run, fold, out)
            if record is None:
                pending.append((run, fold))
            else:
                records[run.id, fold] = record
    reused = len(records)
    if records:
        logger.info(f"reusing {len(records)} fold results of identical recipes in {out / 'runs'} (--force retrains)")
    features_started = time.perf_counter()
    prefetch_features([run for run, _ in pending], out, jobs=jobs, threads=threads)
    features_seconds = time.perf_counter() - features_started
    for number, (run, fold, record) in enumerate(_train(pending, out, jobs, threads), start=1):
        atomic_write_text(out / "runs" / run.id / f"fold{fold}.json",
                          json.dumps(finite_json(record), indent=1, allow_nan=False) + "\n", parents=True)
        records[run.id, fold] = record
        m = record["metrics"]
        logger.info(f"[{number}/{len(pending)}] {run.id} fold {fold}: track accuracy {m['track_accuracy']:.3f} on "
                    f"{m['n_tracks']} tracks, {record['timings']['training']:.1f} s training")
    rows = []
    for run in runs:
        fold_records = [records[run.id, fold] for fold in range(run.folds)]
        rows.append(summarize_folds(run, fold_records))
        logger.info(f"{run.id}: track accuracy {_mean_std(rows[-1], 'track_accuracy')}")
        if reports:
            _write_run_report(run, fold_records, out / "runs" / run.id / "report.md")
    environment = _environment(time.perf_counter() - started, load_before, command)
    environment.update(folds_trained=len(pending), folds_reused=reused, jobs=jobs,
                       features_seconds=round(features_seconds, 1))
    if jobs > 1:
        environment["torch_threads"] = threads or 1
    write_results(rows, out, experiments, environment)
    return rows


def _reusable_record(run: Run, fold: int, out: Path) -> dict | None:
    """The saved record of this fold if it was made with the same recipe, else None."""
    path = out / "runs" / run.id / f"fold{fold}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("recipe") == _recipe(run.config(fold, out)) else None


def _recipe(config) -> dict:
    """What defines a fold's result: its config without output paths and runtime settings."""
    return {k: v for k, v in config.to_dict().items() if k not in _RUNTIME_SETTINGS}


def _train(pending: Sequence[tuple[Run, int]], out: Path, jobs: int, threads: int | None):
    """Yield ``(run, fold, record)`` for each pending fold as it finishes (in order when ``jobs == 1``)."""
    configs = [run.config(fold, out) for run, fold in pending]
    if jobs == 1 or len(pending) <= 1:
        for (run, fold), config in zip(pending, configs):
            yield run, fold, {"fold": fold, "recipe": _recipe(config), **train_fold(config)}
        return
    from concurrent.futures import as_completed

    with _pool(jobs, threads) as pool:
        futures = {pool.submit(train_fold, config): (run, fold, config)
                   for (run, fold), config in zip(pending, configs)}
        try:
            for future in as_completed(futures):
                run, fold, config = futures[future]
                yield run, fold, {"fold": fold, "recipe": _recipe(config), **future.result()}
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _pool(jobs: int, threads: int | None):
    """Worker processes (spawned: forking a process that already ran torch can hang OpenMP)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads or 1,))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    # a spawned worker configures no logging: its per-epoch INFO lines, which would interleave,
    # are dropped (warnings still reach stderr); the parent reports each finished fold


def prefetch_features(runs: Sequence[Run], out: Path, *, jobs: int = 1, threads: int | None = None) -> int:
    """Compute every feature the runs need into the feature cache, each one once.

    Folds of one variant share their features, and variants often share a feature (the same
    MFCC for a CNN and an LSTM): computing them up front, one worker per feature, keeps
    parallel folds from computing the same features twice.

    Parameters
    ----------
    runs : sequence of Run
    out : Path
        The experiment's output folder.
    jobs : int, default 1
        Worker processes.
    threads : int, optional
        torch threads per worker process.

    Returns
    -------
    int
        Number of distinct features (0 when no run uses a cache).
    """
    tasks = {}
    for run in runs:
        config = run.config(0, out)
        if config.cache_dir == "":
            continue  # no cache to fill: each fold computes its own
        for spec in config.feature_specs:
            task = (config.dataset, config.dataset_kind, config.limit_per_label, spec, config.sample_rate,
                    config.segment, config.cache_dir)
            tasks.setdefault(json.dumps(task, sort_keys=True, default=str), task)
    if not tasks:
        return 0
    logger.info(f"computing {len(tasks)} features (or reading them from the cache)")
    if jobs == 1 or len(tasks) == 1:
        done = ((task, cache_features(*task)) for task in tasks.values())
        for task, seconds in done:
            _features_line(task, seconds)
    else:
        from concurrent.futures import as_completed

        with _pool(jobs, threads) as pool:
            futures = {pool.submit(cache_features, *task): task for task in tasks.values()}
            for future in as_completed(futures):
                _features_line(futures[future], future.result())
    return len(tasks)


def _features_line(task: tuple, seconds: float) -> None:
    spec, sample_rate = task[3], task[4]
    details = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    logger.info(f"  {spec.get('name')} ({details}{', ' if details else ''}{sample_rate} Hz) ready in {seconds:.1f} s")


def cache_features(dataset: str, dataset_kind: str, limit_per_label: int | None, spec: dict, sample_rate: int,
                   segment: dict, cache_dir: str | None) -> float:
    """Make sure the cache holds ``spec`` for every track of the dataset (as training computes it).

    Parameters
    ----------
    dataset, dataset_kind : str
        As :func:`genrekit.data.datasets.open_dataset` takes them.
    limit_per_label : int or None
        At most this many tracks per label.
    spec : dict
        Feature spec.
    sample_rate : int
        Audio rate in Hz.
    segment : dict
        Window settings (``window``, ``hop``, ``last``).
    cache_dir : str or None
        Feature cache folder (``None``: the default).

    Returns
    -------
    float
        Seconds it took (reading what is cached already, computing the rest).
    """
    from genrekit.data.datasets import open_dataset
    from genrekit.data.extract import extract_features, open_cache
    from genrekit.data.splits import limit_tracks
    from genrekit.features.registry import resolve_feature

    tracks = limit_tracks(open_dataset(dataset, dataset_kind).tracks, limit_per_label)
    resolved, module = resolve_feature(spec, sample_rate)
    started = time.perf_counter()
    extract_features(tracks, [resolved], sample_rate=sample_rate, segment=segment, cache=open_cache(cache_dir),
                     modules=[module], description=f"{spec.get('name')} features")
    return time.perf_counter() - started


def check_dataset(experiment: Experiment) -> None:
    """Refuse, before any training, a protocol the dataset cannot support.

    Parameters
    ----------
    experiment : Experiment

    Raises
    ------
    DatasetError
        Artist grouping on tracks without artists, or fewer artists than folds.
    """
    from genrekit.data.datasets import open_dataset
    from genrekit.errors import DatasetError

    protocol = experiment.protocol
    if protocol["method"] != "kfold" or "artist" not in protocol["group_by"]:
        return
    dataset = open_dataset(experiment.dataset, experiment.dataset_kind)
    unknown = sum(t.group is None for t in dataset.tracks)
    if unknown == len(dataset.tracks):
        raise DatasetError(f"{experiment.dataset}: no track names its artist, so folds cannot be grouped by "
                           "artist (use group_by = \"track\")")
    if unknown:
        logger.warning(f"{experiment.dataset}: {unknown} of {len(dataset.tracks)} tracks name no artist; in artist-grouped "
                       "folds each of them is a group of its own")
    groups = len({t.group or t.track_id for t in dataset.tracks})
    if groups < protocol["folds"]:
        raise DatasetError(f"{experiment.dataset}: {groups} artists cannot fill {protocol['folds']} "
                           "artist-disjoint folds")


def train_fold(config) -> dict:
    """Train one configuration and return what the table needs from it.

    Parameters
    ----------
    config : TrainConfig
        One fold of one run (:meth:`Run.config`).

    Returns
    -------
    dict
        JSON-able: test ``metrics``, ``labels``, ``confusion``, ``per_class_f1``, ``timings``,
        ``wall_seconds``, ``cpu_seconds``, ``parameters``, ``best_epoch``, ``history``, ``counts``,
        ``model``.

    Raises
    ------
    UsageError
        The split has no test tracks.
    """
    from genrekit.models.registry import count_parameters
    from genrekit.training.loop import train_model

    wall, cpu = time.perf_counter(), time.process_time()
    result = train_model(config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    test = result.metrics.get("test")
    if test is None:
        raise UsageError(f"{config.dataset}: the {config.split['method']} split has no test tracks")
    parameters, kind = count_parameters(result.network), "trainable"
    if parameters == 0:  # a scikit-learn baseline: its size is its fitted arrays
        parameters, kind = sum(t.numel() for t in result.network.state_dict().values()), "fitted values"
    split = result.spec.split
    return {
        "metrics": {key: test[key] for key in (*METRICS, "n_tracks", "n_segments", "nll")},
        "labels": list(result.spec.labels),
        "confusion": test["tracks"]["confusion"],
        "per_class_f1": {label: v["f1"] for label, v in test["tracks"]["per_class"].items()},
        "timings": result.timings,
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "parameters": int(parameters),
        "parameter_kind": kind,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "counts": split.get("counts", {}),
        "labels_not_in_train": split.get("labels_not_in_train", []),
        "model": str(result.model_path),
    }
