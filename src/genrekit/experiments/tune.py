"""Hyper-parameter search with Optuna, cross-validated inside the training data only.

:func:`tune` takes a training config (the TOML of ``genrekit train``), holds out its test side
for good and searches learning rate, dropout, network width and augmentation by grouped k-fold
cross-validation on the remaining tracks (train + validation of the config's split). The test
tracks are not even listed in what the trials see: the development tracks are written to a
manifest beside the study (``STUDY.tracks.csv``) and every trial trains on that manifest.

The study lives in an SQLite file (Optuna's RDB storage, ``sqlite:///STUDY``): running
``genrekit tune`` again with the same study adds trials to it. The best trial's settings are
written as a training config (TOML) that ``genrekit train`` takes as is.

The search space is the config's optional ``[search]`` table (or :data:`DEFAULT_SPACE`)::

    [search]
    learning_rate = [1e-4, 1e-2]      # log-uniform between the two
    dropout = [0.0, 0.5]              # uniform
    width = [0.5, 1.0, 2.0]           # multiplies the network's channels and hidden units
    augment = [{}, { freq_masks = 2, time_masks = 2 }, { gain_db = 6 }]   # one of these
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from genrekit.errors import UsageError
from genrekit.experiments.crossval import train_folds
from genrekit.utils import atomic_write_text, read_toml

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SPACE", "TuneResult", "read_tune_config", "apply_params", "tune", "to_toml"]


#: Search space used when the config has no ``[search]`` table.
DEFAULT_SPACE = {
    "learning_rate": [1e-4, 1e-2],
    "dropout": [0.0, 0.5],
    "width": [0.5, 1.0, 2.0],
    "augment": [{}, {"freq_masks": 2, "freq_width": 8, "time_masks": 2, "time_width": 10}],
}


#: Metrics a study can optimise, and their direction.
OBJECTIVES = {"track_accuracy": "maximize", "segment_accuracy": "maximize", "track_macro_f1": "maximize",
              "nll": "minimize"}


#: Architecture keys that ``width`` scales (lists element-wise), in networks and their branches.
_WIDTH_KEYS = ("channels", "hidden_size", "hidden")


@dataclass
class TuneResult:
    """What :func:`tune` returns: the best trial and where things were written.

    Attributes
    ----------
    study : str
        The study's SQLite file.
    n_trials : int
        Trials in the study (this call's and earlier ones).
    best_value : float
        The best trial's objective (mean over inner folds).
    best_params : dict
        Its parameters.
    best_config : Path
        The TOML training config written for it.
    development_tracks, held_out_tracks : int
        Tracks tuning used, and test tracks it never saw.
    """

    study: str
    n_trials: int
    best_value: float
    best_params: dict
    best_config: Path
    development_tracks: int
    held_out_tracks: int


def read_tune_config(path: str | Path, **overrides):
    """A training config and its search space from a TOML file (``[search]`` is optional).

    The rest of the file is a ``genrekit train`` config: relative ``dataset`` and ``cache_dir``
    are taken relative to the file, ``out`` relative to the current folder, as in
    :func:`genrekit.training.config.load_config`.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    **overrides
        Settings that replace the file's (``None`` values are ignored).

    Returns
    -------
    config : TrainConfig
    space : dict
        The search space; :data:`DEFAULT_SPACE` without ``[search]``.

    Raises
    ------
    UsageError
        Unreadable file, unknown settings or a bad search space.
    """
    from genrekit.training.config import TrainConfig, resolve_config_paths

    path = Path(path)
    values = resolve_config_paths(read_toml(path, "config file"), path)
    space = _check_space(values.pop("search", DEFAULT_SPACE), path)
    values.update({key: value for key, value in overrides.items() if value is not None})
    return TrainConfig.from_dict(values, where=str(path)), space


def _check_space(space: dict, where) -> dict:
    unknown = sorted(set(space) - set(DEFAULT_SPACE))
    if unknown:
        raise UsageError(f"{where}: cannot search {unknown[0]!r} (searchable: {', '.join(DEFAULT_SPACE)})")
    for key in ("learning_rate", "dropout"):
        if key in space:
            bounds = space[key]
            if not (isinstance(bounds, list) and len(bounds) == 2 and 0 <= bounds[0] < bounds[1]):
                raise UsageError(f"{where}: search.{key} must be [low, high] with 0 <= low < high")
    if "learning_rate" in space and space["learning_rate"][0] <= 0:
        raise UsageError(f"{where}: search.learning_rate needs a positive lower bound (log scale)")
    for key in ("width", "augment"):
        if key in space and not (isinstance(space[key], list) and space[key]):
            raise UsageError(f"{where}: search.{key} must be a non-empty list of choices")
    return space


def apply_params(config, params: dict):
    """A copy of ``config`` with a trial's parameters set.

    Parameters
    ----------
    config : TrainConfig
    params : dict
        Some of ``learning_rate``, ``dropout``, ``width`` (a factor on the network's widths) and
        ``augment`` (an augment spec).

    Returns
    -------
    TrainConfig
    """
    import dataclasses

    values = config.to_dict()
    if "learning_rate" in params:
        values["learning_rate"] = float(params["learning_rate"])
    architecture = values["architecture"]
    if "dropout" in params:
        architecture["dropout"] = float(params["dropout"])
    if "width" in params:
        values["architecture"] = _scale_width(architecture, float(params["width"]))
    if "augment" in params:
        values["augment"] = copy.deepcopy(params["augment"])
    return dataclasses.replace(config, **{k: values[k] for k in ("learning_rate", "architecture", "augment")})


def _scale_width(architecture: dict, factor: float) -> dict:
    if architecture["name"].startswith("sklearn-"):
        raise UsageError("tuning searches network settings; scikit-learn baselines have none")
    scaled = copy.deepcopy(architecture)
    if scaled["name"] == "parallel":
        scaled["branches"] = [_scale_width(branch, factor) for branch in scaled.get("branches", [])]
        keys = ("hidden",)
    else:
        keys = _WIDTH_KEYS
    defaults = _constructor_defaults(scaled["name"])
    for key in keys:
        value = scaled.get(key, defaults.get(key))
        if isinstance(value, (list, tuple)):
            scaled[key] = [max(1, round(v * factor)) for v in value]
        elif isinstance(value, int) and value > 0:
            scaled[key] = max(1, round(value * factor))
    return scaled


def _constructor_defaults(name: str) -> dict:
    """Default keyword arguments of the network class ``name`` (what width scales when unset)."""
    import inspect

    from genrekit.models.registry import MODELS

    constructor = MODELS[name]
    try:
        parameters = inspect.signature(constructor).parameters
    except (TypeError, ValueError):
        return {}
    defaults = {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}
    if name == "cnn2d-deep":
        defaults.update(channels=(32, 64, 128, 256, 256), hidden=128)
    return defaults


def _suggest(trial, space: dict) -> dict:
    params = {}
    if "learning_rate" in space:
        params["learning_rate"] = trial.suggest_float("learning_rate", *space["learning_rate"], log=True)
    if "dropout" in space:
        params["dropout"] = trial.suggest_float("dropout", *space["dropout"])
    if "width" in space:
        params["width"] = trial.suggest_categorical("width", [float(w) for w in space["width"]])
    if "augment" in space:
        # optuna's categorical choices must be plain values: choose an index, keep the dict
        index = trial.suggest_categorical("augment", list(range(len(space["augment"]))))
        params["augment"] = space["augment"][index]
    return params


def tune(
    config,
    space: dict | None = None,
    *,
    trials: int,
    study: str | Path,
    out: str | Path,
    folds: int = 3,
    group_by: str = "artist",
    metric: str = "track_accuracy",
) -> TuneResult:
    """Run ``trials`` more trials of the study in ``study`` and write the best config to ``out``.

    Parameters
    ----------
    config : TrainConfig
        The recipe to tune; its ``split`` defines the test side that tuning never sees.
    space : dict, optional
        Search space (see the module docstring); default :data:`DEFAULT_SPACE`.
    trials : int
        Trials to add in this call (0: only write the best config of the existing ones).
    study : path
        SQLite file of the study; created if missing, resumed if it exists (it must come from
        the same config, search space and protocol).
    out : path
        TOML file for the best training config.
    folds : int
        Inner cross-validation folds over the development tracks.
    group_by : {"artist", "track"}
        Grouping of the inner folds (see :func:`genrekit.data.splits.split_tracks`).
    metric : str
        One of :data:`OBJECTIVES`: mean over inner folds of the held-out tracks' metric.

    Returns
    -------
    TuneResult

    Raises
    ------
    UsageError
        Bad settings, or a study file made for another recipe.
    """
    import optuna

    space = _check_space(space if space is not None else DEFAULT_SPACE, "search space")
    if metric not in OBJECTIVES:
        raise UsageError(f"metric must be one of {', '.join(OBJECTIVES)}, not {metric!r}")
    if folds < 2:
        raise UsageError(f"tuning needs at least 2 inner folds, not {folds}")
    if trials < 0:
        raise UsageError(f"trials must be >= 0, not {trials}")
    study_path, out = Path(study), Path(out)
    manifest, held_out, developed = write_development_manifest(config, study_path.with_suffix(".tracks.csv"))
    identity = {"config": _recipe(config), "space": space, "folds": folds, "group_by": group_by, "metric": metric}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_path.parent.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{study_path.resolve()}"
    existing = _existing_trials(storage)
    sampler = optuna.samplers.TPESampler(seed=config.seed + existing)  # a resumed study must not replay its trials
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    study_object = optuna.create_study(study_name="genrekit", storage=storage, load_if_exists=True,
                                       direction=OBJECTIVES[metric], sampler=sampler, pruner=pruner)
    recorded = study_object.user_attrs.get("identity")
    if recorded is None:
        study_object.set_user_attr("identity", json.loads(json.dumps(identity)))
    elif recorded != json.loads(json.dumps(identity)):
        changed = next(k for k in identity if json.loads(json.dumps(identity[k])) != recorded.get(k))
        raise UsageError(f"{study_path}: this study was made with another {changed}; use a new --study file")

    def objective(trial) -> float:
        params = _suggest(trial, space)
        values = []
        tuned = apply_params(config, params)
        for fold, result in train_folds(
            tuned, folds, out_dir=study_path.parent / f"{study_path.stem}-trials", prefix=f"trial{trial.number}",
            group_by=group_by, quiet=True, dataset=str(manifest), dataset_kind="manifest", checkpoint=False,
            limit_per_label=None,  # already applied when the manifest was written
        ):
            values.append(_held_out_metric(result, metric))
            trial.report(float(np.mean(values)), fold)
            if trial.should_prune():
                raise optuna.TrialPruned()
        value = float(np.mean(values))
        trial.set_user_attr("fold_values", values)
        logger.info(f"trial {trial.number}: {metric} {value:.3f} ({', '.join(f'{k}={_short(v)}' for k, v in params.items())})")
        return value

    if trials:
        logger.info(f"tuning on {developed} development tracks ({held_out} test tracks held out), "
                    f"{folds}-fold {group_by}-grouped; study {study_path} has {existing} trials")
        study_object.optimize(objective, n_trials=trials)
    completed = [t for t in study_object.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise UsageError(f"{study_path}: no completed trial yet; run with --trials 1 or more")
    best = study_object.best_trial
    best_params = _params_of(best, space)
    best_config = apply_params(config, best_params)
    header = [
        f"Best of {len(completed)} completed trials ({len(study_object.trials)} in all) of the study {study_path}:",
        f"mean {metric} {best.value:.4f} over {folds} {group_by}-grouped inner folds of the {developed}",
        f"development tracks; the {held_out} test tracks of the config's split were never used.",
        "Searched: " + ", ".join(f"{k} = {_short(v)}" for k, v in best_params.items()),
    ]
    write_config(best_config, out, header)
    logger.info(f"best trial {best.number}: {metric} {best.value:.4f}; wrote {out}")
    return TuneResult(str(study_path), len(study_object.trials), float(best.value), best_params, out,
                      developed, held_out)


def _existing_trials(storage: str) -> int:
    import optuna

    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception:  # noqa: BLE001 - a new or empty storage has no studies
        return 0
    return sum(s.n_trials for s in summaries if s.study_name == "genrekit")


def _params_of(trial, space: dict) -> dict:
    params = dict(trial.params)
    if "augment" in params:
        params["augment"] = space["augment"][params["augment"]]
    return params


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _recipe(config) -> dict:
    """The settings that define what is tuned (not where files go)."""
    values = config.to_dict()
    for key in ("out", "name", "cache_dir", "device", "checkpoint"):
        values.pop(key, None)
    return values


def _held_out_metric(result, metric: str) -> float:
    test = result.metrics["test"]
    value = float(test[metric])
    logger.info(f"  {result.spec.name}: {metric} {value:.3f} on {test['n_tracks']} held-out tracks")
    return value


def write_development_manifest(config, path: Path) -> tuple[Path, int, int]:
    """Write the tracks tuning may use (all but the test side of ``config.split``) as a manifest.

    Track ids and artists are kept, so the inner folds group like the original dataset.

    Parameters
    ----------
    config : TrainConfig
        The recipe whose split defines the held-out test side.
    path : Path
        The CSV manifest to write (atomically).

    Returns
    -------
    path : Path
    held_out : int
        Number of held-out test tracks.
    development : int
        Number of development tracks in the manifest.

    Raises
    ------
    UsageError
        Development and test tracks overlap (never expected: a guard).
    """
    from genrekit.data.datasets import open_dataset
    from genrekit.data.splits import limit_tracks, split_tracks

    dataset = open_dataset(config.dataset, config.dataset_kind)
    dataset.tracks = limit_tracks(dataset.tracks, config.limit_per_label)
    parts, _ = split_tracks(dataset, config.split, config.seed)
    development = [*parts.train, *parts.valid]
    test_ids = {t.track_id for t in parts.test}
    if test_ids & {t.track_id for t in development}:  # split_tracks checks this too; tuning must never leak
        raise UsageError("development and test tracks overlap")
    rows = [{"path": os.path.abspath(t.path), "label": t.label, "group": t.group or "", "track_id": t.track_id}
            for t in development]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _csv_text(rows, ["path", "label", "group", "track_id"])
    atomic_write_text(path, text)
    return path, len(parts.test), len(development)


def _csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_config(config, path: str | Path, header: Sequence[str] = ()) -> Path:
    """Write a TrainConfig as TOML that :func:`genrekit.training.config.load_config` reads back as is.

    Input paths are written relative to ``path``'s folder (load_config takes them relative to
    the file), ``out`` as it is (relative to the current folder unless absolute); settings that
    are None are left out (their defaults are None).

    Parameters
    ----------
    config : TrainConfig
    path : str or Path
        The TOML file (written atomically).
    header : sequence of str
        Comment lines at the top.

    Returns
    -------
    Path
    """
    from genrekit.training.config import CONFIG_INPUT_PATHS

    path = Path(path)
    values = config.to_dict()
    for key in CONFIG_INPUT_PATHS:
        if values.get(key):
            values[key] = os.path.relpath(os.path.abspath(values[key]), os.path.abspath(path.parent))
    comments = "".join(f"# {line}\n" for line in header)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, comments + to_toml(values))
    return path


def to_toml(values: dict) -> str:
    """TOML text of a flat dict whose values are scalars, lists and dicts (written inline).

    ``None`` values are left out; floats keep their full precision.

    Parameters
    ----------
    values : dict

    Returns
    -------
    str

    Examples
    --------
    >>> print(to_toml({"epochs": 2, "feature": {"name": "mfcc"}, "name": None}), end="")
    epochs = 2
    feature = { name = "mfcc" }
    """
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in values.items() if v is not None)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
