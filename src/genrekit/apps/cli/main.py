"""The ``genrekit`` command line.

Each command is a thin wrapper: it parses options, calls the library and prints. Exit codes:
0 success, 1 some inputs failed, 2 usage error. User errors (:class:`GenrekitError`) print one
line without a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from genrekit.errors import GenrekitError, UsageError
from genrekit.utils import is_debug, set_verbosity, stderr
from genrekit.version import __version__

app = typer.Typer(
    name="genrekit",
    help="Tell the genre of a piece of music; train, evaluate and serve genre models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)


cache_app = typer.Typer(help="Manage the on-disk feature cache.", no_args_is_help=True)


experiment_app = typer.Typer(help="Cross-validate many training recipes into one results table.", no_args_is_help=True)


app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
app.add_typer(experiment_app, name="experiment")

def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"genrekit {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status messages."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    set_verbosity(quiet=quiet, debug=debug)


@app.command()
def predict(
    inputs: list[str] = typer.Argument(..., metavar="FILE...", help="Audio files, folders or glob patterns."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundled model name (default, fast) or model file (NAME.json); default: the bundled default model."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="How many genres to list per file."),
    segments: bool = typer.Option(False, "--segments", help="Also give the per-segment timeline."),
    aggregate: str = typer.Option("mean", "--aggregate", help="Segments to track: mean (probability) or vote."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output format: table, json, jsonl or csv (written as each file finishes)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write results to this file (atomically) instead of stdout."),
    offset: float = typer.Option(0.0, "--offset", min=0.0, help="Start this many seconds into each file."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", min=0.1, help="Classify at most this many seconds."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Search folders recursively, or take only the files directly in them."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=0, help="Processes decoding audio while the network runs (0: none). Default: 1 per core beyond the first, at most 2; none for a single file."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Segments gathered across files per network batch."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads running the network. Default: the cores the decoding workers leave, at least 1."),
    db: Optional[str] = typer.Option(None, "--db", "--library-db", help="Library database (SQLite, shared with genrekit tag): files already predicted with this model and unchanged are answered from it, new results are stored."),
    force: bool = typer.Option(False, "--force", help="With --db: predict again even files with a stored result."),
) -> None:
    """Tell the genre of audio files: genre, confidence, top-k and optional per-segment timeline.

    A file that cannot be classified gets a one-line error and the batch goes on; exit code 1 if any failed.
    """
    from genrekit.inference.writers import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if aggregate not in ("mean", "vote"):
        raise UsageError(f"--aggregate must be mean or vote, not {aggregate!r}")
    if force and not db:
        raise UsageError("--force goes with --db")
    import contextlib
    import time

    import torch

    from genrekit.apps.library.results import predict_with_library
    from genrekit.inference.batch import (
        collect_audio_files,
        default_threads,
        default_workers,
        predict_found,
        start_decoders,
    )
    from genrekit.inference.model import load_model
    from genrekit.inference.writers import write_records
    from genrekit.utils import atomic_write, is_quiet, stdout, track

    started = time.perf_counter()
    found = list(collect_audio_files(inputs, recursive=recursive))
    workers = default_workers(len(found)) if workers is None else workers
    if workers:
        start_decoders()  # the decoders' start-up overlaps loading the model
    loaded = load_model(model)
    torch.set_num_threads(threads or default_threads(workers))
    options = dict(workers=workers, batch_size=batch_size, top_k=top_k, segments=segments,
                   aggregate=aggregate, offset=offset, max_duration=max_duration)
    stats: dict = {}
    with contextlib.ExitStack() as stack:
        if db:
            from genrekit.apps.library.db import LibraryDB

            state = stack.enter_context(LibraryDB(db))
            records = predict_with_library(found, loaded, state, force=force, stats=stats, **options)
        else:
            records = predict_found(found, loaded, **options)
        records = _report_failures(track(records, "classifying", total=len(found)))
        handle = stack.enter_context(atomic_write(output, "w")) if output else stdout.file
        n_ok, failed = write_records(records, fmt, handle, top_k=top_k)
    seconds = time.perf_counter() - started
    if not is_quiet():
        reused = f" ({stats['reused']} answered from {db})" if stats.get("reused") else ""
        stderr.print(f"{n_ok + failed} files in {seconds:.1f} s ({(n_ok + failed) / max(seconds, 1e-9):.1f} files/s): "
                     f"{n_ok} classified{reused}, {failed} failed", markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _report_failures(records):
    """Pass records through, echoing each failure as one line on stderr."""
    for record in records:
        if "error" in record:
            # soft_wrap: one line per failure however long the path, so logs can be grepped
            stderr.print(f"error: {record['error']}", markup=False, highlight=False, soft_wrap=True)
        yield record


@app.command()
def tag(
    library: str = typer.Argument(..., metavar="LIBRARY", help="Music folder (searched recursively) or one audio file."),
    db: Optional[str] = typer.Option(None, "--db", help="Library database (default: LIBRARY/.genrekit.sqlite)."),
    write: bool = typer.Option(False, "--write", help="Write the tags. Without it nothing is changed: the plan is shown."),
    min_confidence: float = typer.Option(0.5, "--min-confidence", min=0.0, max=1.0, help="Tag only files predicted with at least this confidence."),
    keep_existing: bool = typer.Option(True, "--keep-existing/--replace-existing", help="Leave files that already have a genre alone, or replace their genre."),
    undo: bool = typer.Option(False, "--undo", help="Put back the genres of the last tag batch (or --batch); acts at once."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="With --undo: the batch to undo."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model file (NAME.json); default: the bundled model."),
    force: bool = typer.Option(False, "--force", help="Predict again even files with a stored result."),
) -> None:
    """Write predicted genres into the files' genre tags (dry run unless --write; undo with --undo)."""
    from pathlib import Path

    from genrekit.apps.library.db import LibraryDB, default_db_path
    from genrekit.apps.library.genre_tags import apply_tag_changes, plan_tag_changes, undo_tag_batch
    from genrekit.utils import track

    if batch is not None and not undo:
        raise UsageError("--batch goes with --undo")
    if not Path(library).exists():
        raise UsageError(f"{library}: no such file or folder")
    with LibraryDB(db or default_db_path(library)) as state:
        if undo:
            batch_id, outcomes = undo_tag_batch(state, batch, progress=track)
            _print_tag_changes(outcomes, library, f"undo of tag batch {batch_id}")
        else:
            from genrekit.apps.library.results import library_predictions
            from genrekit.inference.model import load_model

            loaded = load_model(model)
            predictions = track(library_predictions(state, [library], loaded, force=force), "classifying")
            outcomes = plan_tag_changes(predictions, min_confidence=min_confidence, keep_existing=keep_existing)
            if not write:
                _print_tag_changes(outcomes, library, "dry run", "nothing changed; add --write to apply")
            else:
                batch_id, written = apply_tag_changes(outcomes, state, model_id=loaded.model_id, progress=track)
                outcomes = _merge_outcomes(outcomes, written)
                if batch_id is None:
                    _print_tag_changes(outcomes, library, "nothing to write")
                else:
                    import shlex

                    undo_hint = f"undo with: genrekit tag {shlex.quote(library)} --undo"
                    _print_tag_changes(outcomes, library, f"tag batch {batch_id}", undo_hint)
    if any(change.action == "failed" for change in outcomes):
        raise typer.Exit(1)


def _merge_outcomes(planned, written):
    done = iter(written)
    return [next(done) if change.action == "write" else change for change in planned]


def _print_tag_changes(changes, library: str, title: str, note: str | None = None) -> None:
    """The changes as a table on stdout and counts per action on stderr."""
    import os
    from collections import Counter

    from genrekit.apps.library.genre_tags import format_tag_table
    from genrekit.utils import info

    root = library if os.path.isdir(library) else os.path.dirname(library)
    sys.stdout.write(format_tag_table(changes, root))
    counts = Counter(change.action for change in changes)
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "no audio files"
    info(f"{title}: {summary}" + (f" ({note})" if note else ""))


@app.command("tags")
def tags_command(
    file: str = typer.Argument(..., metavar="FILE", help="Audio file."),
    model: str = typer.Option("MSD_musicnn", "--model", "-m", help="MSD_musicnn (Million Song Dataset tags), MTT_musicnn (MagnaTagATune tags), or the VGG baselines MSD_vgg, MTT_vgg."),
    top: int = typer.Option(5, "--top", "-n", min=1, help="Tags to list, overall and per segment."),
    overlap: bool = typer.Option(False, "--overlap", help="A 3 s segment every 1 s instead of every 3 s (musicnn's input_overlap=1)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Music tags of FILE from a pretrained musicnn model: whole file and every 3 s segment.

    Needs the musicnn weights (pip install --no-deps musicnn==0.1.0), converted on first use.
    """
    import json

    from genrekit.features.musicnn.tags import tag_file
    from genrekit.utils import stdout

    result = tag_file(file, model, top=top, overlap=overlap)
    if as_json:
        stdout.print(json.dumps(result, allow_nan=False), markup=False, highlight=False)
        return

    def ranked(tags):
        return ", ".join(f"{t['tag']} {t['probability']:.2f}" for t in tags)

    lines = [f"{result['file']}  ({result['model']}, {result['duration']:.1f} s)", f"whole file: {ranked(result['tags'])}"]
    lines += [f"{s['start']:7.2f}-{s['end']:7.2f} s  {ranked(s['tags'])}" for s in result["segments"]]
    stdout.print("\n".join(lines), markup=False, highlight=False)


@data_app.command("check")
def data_check(
    path: str = typer.Argument(..., help="Dataset folder, FMA root, or CSV manifest (path,label[,split][,group])."),
    kind: str = typer.Option("auto", "--kind", help="auto, gtzan, fma, folder or manifest."),
    subset: Optional[str] = typer.Option(None, "--subset", help="FMA subset: small, medium or large."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not open the files (no durations, no unreadable-file check)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Count tracks per label, measure durations and list problems; exit 1 if any is an error."""
    import json

    from genrekit.data.datasets import format_summary, open_dataset, summarize

    dataset = open_dataset(path, kind, **({"subset": subset} if subset else {}))
    if not no_audio:
        dataset.check_audio()
    summary = summarize(dataset)
    sys.stdout.write(json.dumps(summary, indent=2, allow_nan=False) + "\n" if as_json else format_summary(summary))
    if summary["errors"]:
        raise typer.Exit(1)


@data_app.command("report")
def data_report_command(
    path: str = typer.Argument(..., metavar="DATASET", help="Dataset folder, FMA root, or CSV manifest."),
    out: str = typer.Option("runs/data-report", "--out", "-o", help="Folder for data-report.md and images/."),
    kind: str = typer.Option("auto", "--kind", help="auto, gtzan, fma, folder or manifest."),
    limit_per_label: Optional[int] = typer.Option(None, "--limit-per-label", min=1, help="Look at no more than this many clips per genre."),
    no_embeddings: bool = typer.Option(False, "--no-embeddings", help="Skip the musicnn embedding map (the slow part)."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Feature cache for the embeddings (default: the genrekit cache)."),
) -> None:
    """Write an exploratory Markdown page: clips, minutes, durations, levels, spectra and an embedding map."""
    import shlex

    from genrekit.experiments.data_report import data_report

    command = ["genrekit", "data", "report", path, "--out", out]
    command += (["--kind", kind] if kind != "auto" else []) + (["--no-embeddings"] if no_embeddings else [])
    command += ["--limit-per-label", str(limit_per_label)] if limit_per_label else []
    page = data_report(path, out, kind=kind, cache_dir=cache_dir, limit_per_label=limit_per_label,
                       embeddings=not no_embeddings, command=shlex.join(command))
    typer.echo(str(page))


@app.command()
def plot(
    file: str = typer.Argument(..., metavar="FILE", help="Audio file."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="PNG to write (default FILE's name + .png here)."),
    offset: float = typer.Option(0.0, "--offset", min=0.0, help="Start at this many seconds."),
    duration: Optional[float] = typer.Option(30.0, "--duration", min=0.1, help="Seconds to show (default 30)."),
    no_tags: bool = typer.Option(False, "--no-tags", help="Leave out the musicnn taggram."),
) -> None:
    """Draw the waveform, log-mel spectrogram, MFCC and musicnn taggram of an audio file as one PNG."""
    from pathlib import Path

    from genrekit.evaluation.plots import plot_file

    target = Path(out) if out else Path(Path(file).name + ".png")
    plot_file(file, target, offset=offset, duration=duration, musicnn=None if no_tags else "MSD_musicnn")
    typer.echo(str(target))


_CACHE_DIR_HELP = "Feature cache folder (default: features/ in $GENREKIT_CACHE_DIR, else in ~/.cache/genrekit)."


@cache_app.command("info")
def cache_info(cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP)) -> None:
    """Show where the feature cache is, how many entries it holds and their size."""
    from genrekit.data.cache import FeatureCache

    found = FeatureCache(cache_dir).info()
    typer.echo(f"{found.root}: {found.entries} entries, {found.size_bytes / 2**20:.1f} MiB")


@cache_app.command("clear")
def cache_clear(cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP)) -> None:
    """Delete every cached feature array (other files in the folder are left alone)."""
    from genrekit.data.cache import FeatureCache
    from genrekit.utils import info

    cache = FeatureCache(cache_dir)
    info(f"removed {cache.clear()} entries from {cache.root}")


@app.command()
def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model file (NAME.json); default: the bundled model."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", min=0.001, help="Largest accepted upload, in MB (413 beyond)."),
    max_duration: float = typer.Option(1200.0, "--max-duration", min=1.0, help="Longest accepted audio, in seconds (422 beyond)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Inference threads (requests classified at once)."),
    queue_limit: int = typer.Option(8, "--queue-limit", min=0, help="Requests that may wait for a worker (429 beyond)."),
    request_timeout: float = typer.Option(120.0, "--request-timeout", min=1.0, help="Seconds before a request gets 504."),
) -> None:
    """Serve the REST API (/v1/predict, /docs) and the web page (/) with one model loaded once."""
    from genrekit.apps.service.app import run_server

    run_server(model, host=host, port=port, max_upload_mb=max_upload_mb, max_duration_s=max_duration,
               workers=workers, queue_limit=queue_limit, request_timeout_s=request_timeout)


@app.command()
def train(
    config: Optional[str] = typer.Argument(None, metavar="[CONFIG.toml]", help="Training config (TOML); options override it."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset folder or CSV manifest."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Model path NAME (writes NAME.json + NAME.safetensors)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Dataset kind: auto, gtzan, fma, folder or manifest."),
    feature: Optional[str] = typer.Option(None, "--feature", help='Feature spec, JSON: \'{"name": "mfcc", "n_mfcc": 20}\'.'),
    architecture: Optional[str] = typer.Option(None, "--arch", help='Network spec, JSON: \'{"name": "cnn2d"}\'.'),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Most epochs to train (default 30)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Segments per batch (default 32)."),
    learning_rate: Optional[float] = typer.Option(None, "--lr", help="AdamW learning rate (default 1e-3)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0.01)."),
    patience: Optional[int] = typer.Option(None, "--patience", min=0, help="Early stopping: epochs without lower validation loss (0: off; default 5)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the split, initialisation and batch order (default 0)."),
    split: Optional[str] = typer.Option(None, "--split", help="auto, random, group, official, gtzan-artist or kfold."),
    valid_size: Optional[float] = typer.Option(None, "--valid-size", help="Share of tracks for validation (default 0.1)."),
    test_size: Optional[float] = typer.Option(None, "--test-size", help="Share of tracks for testing (default 0.2)."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="With --split kfold: number of folds."),
    fold: Optional[int] = typer.Option(None, "--fold", min=0, help="With --split kfold: the test fold."),
    window: Optional[float] = typer.Option(None, "--window", help="Segment length in seconds (default 3)."),
    hop: Optional[float] = typer.Option(None, "--hop", help="Seconds between segment starts (default: the window)."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help="Decode audio at this rate in Hz (default 22050)."),
    class_weights: Optional[bool] = typer.Option(None, "--class-weights/--no-class-weights", help="Balance the loss over classes."),
    augment: Optional[str] = typer.Option(None, "--augment", help='Augmentation, JSON: \'{"gain_db": 6, "noise_snr_db": 30, "shift": 0.5, "time_masks": 2}\'.'),
    limit_per_label: Optional[int] = typer.Option(None, "--limit-per-label", min=1, help="Use at most this many tracks per label."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Feature cache folder (default: the genrekit cache)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name recorded in the file (default: NAME)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue from a checkpoint (NAME.ckpt.json)."),
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
    result = train_model(config_from_options(config, resume, **options), resume=resume)
    summary = {"model": str(result.model_path), "best_epoch": result.best_epoch, "parameters": result.n_parameters}
    for side, metrics in result.metrics.items():
        summary[side] = {key: round(metrics[key], 4) for key in ("track_accuracy", "segment_accuracy", "track_macro_f1")}
    typer.echo(json.dumps(summary, indent=2, allow_nan=False))


@app.command()
def evaluate(
    model: str = typer.Argument(..., metavar="MODEL", help="Model file (NAME.json)."),
    dataset: str = typer.Argument(..., metavar="DATASET", help="Dataset folder, CSV manifest, or feature table (.npz, .parquet)."),
    split: str = typer.Option("test", "--split", help="test, valid, all, or kfold (retrains the model's recipe per fold)."),
    folds: int = typer.Option(5, "--folds", min=2, help="With --split kfold: number of folds."),
    report: Optional[str] = typer.Option(None, "--report", help="Write a Markdown report (with PNG figures) here."),
    as_json: bool = typer.Option(False, "--json", help="Print all results as JSON."),
    kind: str = typer.Option("auto", "--kind", help="Dataset kind: auto, gtzan, fma, folder or manifest."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Feature cache folder (default: the genrekit cache)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="With --split kfold: epochs per fold (default: the model's)."),
    aggregate: str = typer.Option("mean", "--aggregate", help="Segments to track: mean (probability) or vote, as in predict."),
) -> None:
    """Score a model on a dataset split: track and segment accuracy, macro-F1, confusion matrix."""
    import dataclasses
    import json

    from genrekit.data.tables import is_table
    from genrekit.evaluation.evaluate import evaluate_model, evaluate_table
    from genrekit.evaluation.reports import write_report
    from genrekit.experiments.crossval import cross_validate
    from genrekit.utils import info

    cache = "" if no_cache else cache_dir
    if split == "kfold":
        from pathlib import Path

        from genrekit.models.files import read_model_files
        from genrekit.training.config import TrainConfig

        spec, _ = read_model_files(model)
        recipe = (spec.get("training") or {}).get("config")
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
        result = evaluate_model(model, dataset, split=split, dataset_kind=kind, cache_dir=cache, device=device,
                                aggregate=aggregate)
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
    configs: list[str] = typer.Argument(..., metavar="CONFIG.toml...", help="Experiment files; all their runs go into one table."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset folder or manifest instead of the files' own."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Dataset kind: auto, gtzan, fma, folder or manifest."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output folder (default runs/<name of the first experiment>)."),
    split: Optional[str] = typer.Option(None, "--split", help="kfold, or a fixed split: gtzan-artist, official, auto, random."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="Number of folds for kfold."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Comma-separated fold groupings: track, artist."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated variant names to run."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs for every network (quick runs)."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Feature cache folder (default: the files' or the genrekit cache)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (per job; 1 is fastest on a busy machine)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes for features and folds."),
    force: bool = typer.Option(False, "--force", help="Retrain folds whose results exist for the same recipe."),
) -> None:
    """Train and test every variant of the experiment files on every fold; print the results table."""
    import shlex
    from pathlib import Path

    from genrekit.experiments.experiment import load_experiment, run_experiments
    from genrekit.experiments.results import results_csv
    from genrekit.utils import info

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


@app.command()
def tune(
    config: str = typer.Argument(..., metavar="CONFIG.toml", help="Training config, optionally with a [search] table."),
    trials: int = typer.Option(..., "--trials", "-n", min=0, help="Trials to add to the study (0: only write the best config)."),
    study: Optional[str] = typer.Option(None, "--study", help="SQLite study file; resumed if it exists (default runs/tune/<config>.db)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Best config as TOML (default runs/tune/<config>-best.toml)."),
    folds: int = typer.Option(3, "--folds", min=2, help="Inner cross-validation folds over the training tracks."),
    group_by: str = typer.Option("artist", "--group-by", help="Inner folds grouped by artist or track."),
    metric: str = typer.Option("track_accuracy", "--metric", help="track_accuracy, segment_accuracy, track_macro_f1 or nll."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset instead of the config's."),
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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``genrekit`` script; exits with 0, 1 or 2."""
    command = typer.main.get_command(app)
    try:
        # standalone mode: click prints usage errors itself and exits 2, --help exits 0
        code = command.main(args=argv, prog_name="genrekit", standalone_mode=True)
    except GenrekitError as exc:
        if is_debug():
            raise
        stderr.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        code = 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        stderr.print("interrupted")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
