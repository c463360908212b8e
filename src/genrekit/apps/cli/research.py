"""``genrekit train``, ``evaluate``, ``experiment run`` and ``tune``: training and measuring models."""

from __future__ import annotations

from typing import Optional

import typer

from genrekit.apps.cli.options import (
    Aggregate,
    CacheDir,
    DatasetKind,
    Device,
    Feature,
    MaxWindows,
    NoCache,
    resolve_device,
)
from genrekit.audio.windows import DEFAULT_MAX_WINDOWS
from genrekit.errors import UsageError

experiment_app = typer.Typer(help="Cross-validate many training recipes into one results table.", no_args_is_help=True,
                             add_completion=False)



def train(
    config: Optional[str] = typer.Argument(None, metavar="CONFIG.toml", help="Training config (TOML); options override it."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", metavar="PATH", help="Dataset folder, CSV manifest, or feature table (.npz, .parquet: its rows are the network input; give --feature unless the table names it)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="NAME", help="Model path NAME (writes NAME.json + NAME.safetensors)."),
    kind: DatasetKind = None,
    feature: Feature = None,
    architecture: Optional[str] = typer.Option(None, "--arch", metavar="SPEC", help='Network spec, JSON: \'{"name": "cnn2d"}\'.'),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Most epochs to train (default 30)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Segments per batch (default 32)."),
    learning_rate: Optional[float] = typer.Option(None, "--lr", metavar="RATE", help="AdamW learning rate (default 1e-3)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0.01)."),
    patience: Optional[int] = typer.Option(None, "--patience", min=0, help="Early stopping: epochs without lower validation loss (0: off; default 5)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the split, initialisation and batch order (default 0)."),
    split: Optional[str] = typer.Option(None, "--split", metavar="[auto|random|group|official|gtzan-artist|kfold]", help="How tracks are split into train, valid and test (default: auto: the dataset's own lists when they cover every label, else a stratified split keeping each artist on one side)."),
    valid_size: Optional[float] = typer.Option(None, "--valid-size", metavar="SHARE", help="Share of tracks for validation (default 0.1)."),
    test_size: Optional[float] = typer.Option(None, "--test-size", metavar="SHARE", help="Share of tracks for testing (default 0.2)."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="With --split kfold: number of folds."),
    fold: Optional[int] = typer.Option(None, "--fold", min=0, help="With --split kfold: the test fold."),
    window: Optional[float] = typer.Option(None, "--window", metavar="SECONDS", help="Segment length in seconds (default 3)."),
    hop: Optional[float] = typer.Option(None, "--hop", metavar="SECONDS", help="Seconds between segment starts (default: the window)."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", metavar="HZ", help="Decode audio at this rate in Hz (default 22050)."),
    class_weights: Optional[bool] = typer.Option(None, "--class-weights/--no-class-weights", help="Balance the loss over classes."),
    augment: Optional[str] = typer.Option(None, "--augment", metavar="SPEC", help='Augmentation, JSON: \'{"gain_db": 6, "noise_snr_db": 30, "shift": 0.5, "time_masks": 2}\'.'),
    limit_per_label: Optional[int] = typer.Option(None, "--limit-per-label", min=1, help="Use at most this many tracks per label."),
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    device: Device = None,
    name: Optional[str] = typer.Option(None, "--name", help="Model name recorded in the file (default: NAME)."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="CHECKPOINT", help="Continue from a checkpoint (NAME.ckpt.json)."),
) -> None:
    """Train a genre model on a dataset; writes the model, a checkpoint and prints its metrics."""
    import json

    from genrekit.training.config import config_from_options
    from genrekit.training.loop import train_model

    options = dict(
        dataset=dataset, out=out, dataset_kind=kind, feature=feature, architecture=architecture, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay, patience=patience,
        seed=seed, split_method=split, valid_size=valid_size, test_size=test_size, folds=folds, fold=fold,
        window=window, hop=hop, sample_rate=sample_rate, class_weights=class_weights, augment=augment,
        limit_per_label=limit_per_label, cache_dir="" if no_cache else cache_dir, device=device, name=name,
    )
    recipe = config_from_options(config, resume, **options)
    _check_model_outputs(recipe.out)
    result = train_model(recipe, resume=resume)
    summary = {"model": str(result.model_path), "best_epoch": result.best_epoch, "parameters": result.n_parameters}
    for side, metrics in result.metrics.items():
        summary[side] = {key: round(metrics[key], 4) for key in ("track_accuracy", "segment_accuracy", "track_macro_f1")}
    typer.echo(json.dumps(summary, indent=2, allow_nan=False))


def _check_model_outputs(out: str) -> None:
    """A read-only model file or a folder in the way: one line before training, not after it."""
    from genrekit.models.files import model_paths
    from genrekit.training.checkpoints import checkpoint_paths
    from genrekit.utils import output_target

    for path in (*model_paths(out), *checkpoint_paths(out)):
        output_target(path, parents=True)  # training outputs are a result tree: folders are made


def evaluate(
    model: str = typer.Argument(..., metavar="MODEL", help="Model file (NAME.json)."),
    dataset: str = typer.Argument(..., metavar="DATASET", help="Dataset folder, CSV manifest, or feature table (.npz, .parquet)."),
    split: str = typer.Option("test", "--split", metavar="[test|valid|all|kfold]", help="The tracks to score: a split of the model's training run, all, or kfold (retrains the model's recipe per fold)."),
    folds: int = typer.Option(5, "--folds", min=2, help="With --split kfold: number of folds."),
    report: Optional[str] = typer.Option(None, "--report", metavar="FILE.md", help="Write a Markdown report (with PNG figures) here."),
    as_json: bool = typer.Option(False, "--json", help="Print all results as JSON."),
    kind: DatasetKind = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    device: Device = None,
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="With --split kfold: epochs per fold (default: the model's)."),
    aggregate: Aggregate = "mean",
    max_windows: MaxWindows = DEFAULT_MAX_WINDOWS,
) -> None:
    """Score a model on a dataset split: track and segment accuracy, macro-F1, confusion matrix."""
    import dataclasses
    import json

    from genrekit.data.tables import is_table
    from genrekit.evaluation.evaluate import evaluate_model, evaluate_table
    from genrekit.evaluation.reports import write_report
    from genrekit.experiments.crossval import cross_validate
    from genrekit.apps.console import info

    cache = "" if no_cache else cache_dir
    kind = kind or "auto"
    if split == "kfold":
        from pathlib import Path

        from genrekit.models.files import read_model_spec
        from genrekit.training.config import TrainConfig

        recipe = read_model_spec(model).training.get("config")
        if not recipe:
            raise UsageError(f"{model}: the model file records no training config, so it cannot be cross-validated")
        out_dir = Path(report).parent / "folds" if report else Path(model).parent / "folds"
        config = TrainConfig.from_dict({**recipe, "dataset": dataset, "dataset_kind": kind, "cache_dir": cache,
                                        "out": str(out_dir / Path(recipe["out"]).name),
                                        **({"epochs": epochs} if epochs else {})})
        result = cross_validate(config, folds, out_dir=out_dir)
        lines = [f"{key}: {v['mean']:.4f} +- {v['std']:.4f}" for key, v in result.summary.items()]
    elif is_table(dataset):
        result = evaluate_table(model, dataset, split=split, aggregate=aggregate)
        m = result.metrics
        lines = [f"tracks: {m['n_tracks']}  rows: {m['n_segments']}"] + [
            f"{key}: {m[key]:.4f}" for key in ("track_accuracy", "track_macro_f1")
        ]
    elif split in ("test", "valid", "all"):
        result = evaluate_model(model, dataset, split=split, dataset_kind=kind, cache_dir=cache,
                                device=resolve_device(device),
                                aggregate=aggregate, max_windows=max_windows)
        m = result.metrics
        lines = [f"tracks: {m['n_tracks']}  segments: {m['n_segments']}"] + [
            f"{key}: {m[key]:.4f}" for key in ("track_accuracy", "track_macro_f1", "segment_accuracy", "segment_macro_f1")
        ]
    else:
        raise UsageError(f"--split must be test, valid, all or kfold, not {split!r}")
    if report:
        written = write_report(result, report)
        info(f"wrote {', '.join(str(p) for p in written)}")
    typer.echo(json.dumps(dataclasses.asdict(result), indent=1, allow_nan=False) if as_json else "\n".join(lines))


def _comma_list(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


@experiment_app.command("run")
def experiment_run(
    configs: list[str] = typer.Argument(..., metavar="CONFIG.toml", help="Experiment files; all their runs go into one table."),
    data: Optional[str] = typer.Option(None, "--data", "-d", metavar="PATH", help="Dataset folder or manifest instead of the files' own."),
    kind: DatasetKind = None,
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="DIR", help="Output folder (default runs/<name of the first experiment>)."),
    split: Optional[str] = typer.Option(None, "--split", metavar="[kfold|auto|random|group|official|gtzan-artist]", help="kfold, or a fixed split (default: the files' own)."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="Number of folds for kfold."),
    group_by: Optional[str] = typer.Option(None, "--group-by", metavar="LIST", help="Comma-separated fold groupings: track, artist."),
    only: Optional[str] = typer.Option(None, "--only", metavar="LIST", help="Comma-separated variant names to run."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs for every network (quick runs)."),
    cache_dir: CacheDir = None,
    device: Device = None,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (per job; 1 is fastest on a busy machine)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes for features and folds."),
    force: bool = typer.Option(False, "--force", help="Retrain folds whose results exist for the same recipe."),
) -> None:
    """Train and test every variant of the experiment files on every fold; print the results table."""
    import shlex
    from pathlib import Path

    from genrekit.experiments.experiment import load_experiment, run_experiments
    from genrekit.experiments.results import results_csv
    from genrekit.apps.console import info

    if threads:
        import torch

        torch.set_num_threads(threads)
    settings = {key: value for key, value in (("epochs", epochs), ("cache_dir", cache_dir), ("device", device))
                if value is not None}
    experiments = [
        load_experiment(path, data=data, kind=kind, method=split, folds=folds, group_by=_comma_list(group_by),
                        only=_comma_list(only), settings=settings)
        for path in configs
    ]
    out_dir = Path(out) if out else Path("runs") / experiments[0].name
    options = {"--data": data, "--kind": kind, "--out": out, "--split": split, "--folds": folds,
               "--group-by": group_by, "--only": only, "--epochs": epochs, "--cache-dir": cache_dir,
               "--device": device, "--threads": threads, "--jobs": jobs if jobs > 1 else None}
    command = shlex.join(["genrekit", "experiment", "run", *configs,
                          *[part for flag, value in options.items() if value is not None for part in (flag, str(value))]])
    rows = run_experiments(experiments, out_dir, force=force, jobs=jobs, threads=threads, command=command)
    typer.echo(results_csv(rows), nl=False)
    info(f"wrote {out_dir / 'results.md'}, results.csv and per-run reports in {out_dir / 'runs'}")


def tune(
    config: str = typer.Argument(..., metavar="CONFIG.toml", help="Training config, optionally with a \\[search] table: the settings to vary and their ranges."),
    trials: int = typer.Option(..., "--trials", "-n", min=0, help="Trials to add to the study (0: only write the best config)."),
    study: Optional[str] = typer.Option(None, "--study", metavar="FILE", help="SQLite study file; resumed if it exists (default runs/tune/<config>.db)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE", help="Best config as TOML (default runs/tune/<config>-best.toml)."),
    folds: int = typer.Option(3, "--folds", min=2, help="Inner cross-validation folds over the training tracks."),
    group_by: str = typer.Option("artist", "--group-by", metavar="[artist|track]", help="Inner folds grouped by artist or track."),
    metric: str = typer.Option("track_accuracy", "--metric", metavar="[track_accuracy|segment_accuracy|track_macro_f1|nll]", help="What the search maximises (nll: minimises)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", metavar="PATH", help="Dataset instead of the config's."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs per trial instead of the config's."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads."),
) -> None:
    """Search learning rate, dropout, width and augmentation by grouped CV inside the training data."""
    import json
    from pathlib import Path

    from genrekit.experiments.tune import read_tune_config
    from genrekit.experiments.tune import tune as run_tune

    if threads:
        import torch

        torch.set_num_threads(threads)
    recipe, space = read_tune_config(config, dataset=data, epochs=epochs)
    stem = Path(config).stem
    result = run_tune(recipe, space, trials=trials, study=study or Path("runs") / "tune" / f"{stem}.db",
                      out=out or Path("runs") / "tune" / f"{stem}-best.toml", folds=folds, group_by=group_by,
                      metric=metric)
    typer.echo(json.dumps({"study": result.study, "trials": result.n_trials, "best_value": round(result.best_value, 4),
                           "best_params": result.best_params, "best_config": str(result.best_config)}, indent=1))
