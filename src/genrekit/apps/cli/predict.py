"""``genrekit predict`` (genres of files), ``genrekit embed`` (feature tables) and ``genrekit tags``
(musicnn tags of a file). ``predict --ray`` and ``embed --ray`` hand over to :mod:`genrekit.apps.cluster`."""

from __future__ import annotations

import os
from typing import Optional

import typer

from genrekit.apps.cli.options import Aggregate, Device, Feature, MaxWindows, Model, resolve_device
from genrekit.apps.console import stderr
from genrekit.audio.windows import DEFAULT_MAX_WINDOWS
from genrekit.errors import OutputError, UsageError
from genrekit.utils import printable


def predict(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="FILE", help="Audio files, folders or glob patterns (with --ray also pyarrow.fs URIs such as s3://bucket/music/)."),
    model: Model = None,
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="How many genres to list per file."),
    segments: bool = typer.Option(False, "--segments", help="Also give the per-segment timeline."),
    styles: bool = typer.Option(False, "--styles", help="Also give the styles: genre-like MSD tags (electronic, folk, soul, punk, House, ...) whose mean probability is at least 0.2 (models on the MSD taggram, such as the default)."),
    aggregate: Aggregate = "mean",
    fmt: str = typer.Option("table", "--format", "-f", metavar="[table|json|jsonl|csv]", help="Output format (json, jsonl and csv are written as each file finishes)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write results to this file instead of stdout (a file is replaced atomically; a FIFO, device or link is written through; its folder must exist)."),
    offset: float = typer.Option(0.0, "--offset", min=0.0, metavar="SECONDS", help="Start this many seconds into each file."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", min=0.1, metavar="SECONDS", help="Classify at most this many seconds."),
    max_windows: MaxWindows = DEFAULT_MAX_WINDOWS,
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Search folders recursively, or take only the files directly in them."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=0, help="Processes decoding audio while the network runs (0: none). Default: 1 per core beyond the first, at most 2; none for a single file."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Segments gathered across files per network batch."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads running the network. Default: the cores the decoding workers leave, at least 1."),
    db: Optional[str] = typer.Option(None, "--db", metavar="FILE", help="Library database (SQLite, shared with genrekit tag): files already predicted with this model and unchanged are answered from it, new results are stored."),
    force: bool = typer.Option(False, "--force", help="With --db: predict again even files with a stored result."),
    files_from: Optional[str] = typer.Option(None, "--files-from", metavar="LIST", help="Also the files listed in LIST: text (one path a line), CSV or Parquet (a path column); relative to the list's folder."),
    ray_address: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Run on a Ray cluster: auto (the running one, or RAY_ADDRESS), local (start one here) or HOST:PORT. -o NAME.parquet writes a Parquet folder, and a re-run skips files already in it."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="With --ray: model actors (default: one per GPU with --device cuda, else half the cluster's CPUs)."),
    device: Device = None,
) -> None:
    """Tell the genre of audio files: genre, confidence, top-k and optional per-segment timeline.

    Speech, noise, tones and other sounds that are not music get no genre and are marked "not
    music" (JSON: "genre": null, "not_music": true), per file and per segment.

    A file that cannot be classified gets a one-line error and the batch goes on; exit code 1 if any failed.
    """
    from genrekit.inference.writers import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if force and not db:
        raise UsageError("--force goes with --db")
    inputs = _check_inputs(inputs, files_from)
    if ray_address:
        if db:
            raise UsageError("--db does not go with --ray: a Parquet output (-o NAME.parquet) resumes instead")
        from genrekit.apps.cluster.pipeline import predict_on_ray

        report = predict_on_ray(inputs, address=ray_address, model=model, output=output, fmt=fmt, files_from=files_from,
                                recursive=recursive, top_k=top_k, aggregate=aggregate, segments=segments, offset=offset,
                                max_duration=max_duration, actors=actors, threads=threads or 1,
                                device=resolve_device(device), styles=styles, max_windows=max_windows)
        _ray_exit(report, "classified", output)
    if actors or device not in (None, "auto", "cpu"):
        raise UsageError("--actors and --device go with --ray (here the network runs on the CPU)")
    if files_from:
        from genrekit.apps.cluster.inputs import read_file_list

        inputs = inputs + read_file_list(files_from)
    if output is not None and os.path.isdir(output):
        raise UsageError(f"--output {printable(output)}: is a folder; give a file name")
    if output is not None:
        from genrekit.utils import output_target

        output_target(output)  # a missing folder or a read-only file: one line now, before any work
    import contextlib
    import time

    import torch

    from genrekit.apps.console import is_quiet, stdout
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
    from genrekit.utils import track

    started = time.perf_counter()
    found = list(collect_audio_files(inputs, recursive=recursive))
    workers = default_workers(len(found)) if workers is None else workers
    if workers:
        start_decoders()  # the decoders' start-up overlaps loading the model
    loaded = load_model(model)
    torch.set_num_threads(threads or default_threads(workers))
    options = dict(workers=workers, batch_size=batch_size, top_k=top_k, segments=segments,
                   aggregate=aggregate, offset=offset, max_duration=max_duration, styles=styles,
                   max_windows=max_windows)
    stats: dict = {}
    with contextlib.ExitStack() as stack:
        if db:
            from genrekit.apps.library.db import LibraryDB

            state = stack.enter_context(LibraryDB(db))
            records = predict_with_library(found, loaded, state, force=force, stats=stats, **options)
        else:
            records = predict_found(found, loaded, **options)
        records = _report_failures(track(records, "classifying", total=len(found)))
        handle = _open_output(stack, output) if output else _Output(stdout.file, "standard output")
        n_ok, failed = write_records(records, fmt, handle, top_k=top_k)
    seconds = time.perf_counter() - started
    if not is_quiet():
        reused = f" ({stats['reused']} answered from {db})" if stats.get("reused") else ""
        stderr.print(printable(f"{n_ok + failed} files in {seconds:.1f} s ({(n_ok + failed) / max(seconds, 1e-9):.1f} "
                               f"files/s): {n_ok} classified{reused}, {failed} failed"),
                     markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _check_inputs(inputs: list[str] | None, files_from: str | None) -> list[str]:
    if not inputs and not files_from:
        raise UsageError("give audio files, folders or patterns, or --files-from LIST")
    return list(inputs or [])


def _ray_exit(report, verb: str, output: str | None) -> None:
    """End a ``--ray`` command: summary on stderr; exit 1 if any file failed or is missing."""
    from genrekit.apps.cluster.pipeline import summary_line
    from genrekit.apps.console import is_quiet, warn

    if not is_quiet():
        stderr.print(summary_line(report, verb, output), markup=False, highlight=False, soft_wrap=True)
    if report.missing:
        warn(f"{report.missing} files are missing from the output (their batch failed); run the command again to retry them")
    raise typer.Exit(1 if report.failed or report.missing else 0)


def embed(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="FILE", help="Audio files, folders or glob patterns (with --labels: datasets; with --ray also pyarrow.fs URIs)."),
    output: str = typer.Option(..., "--output", "-o", metavar="FILE", help="Parquet file to write (with --ray: a folder NAME.parquet; a re-run skips files already in it)."),
    feature: Feature = None,
    window: float = typer.Option(3.0, "--window", min=0.1, metavar="SECONDS", help="Segment length in seconds."),
    hop: Optional[float] = typer.Option(None, "--hop", min=0.01, metavar="SECONDS", help="Seconds between segment starts (default: the window)."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", min=1000, metavar="HZ", help="Decode at this rate in Hz (default: the feature's own)."),
    labels: Optional[str] = typer.Option(None, "--labels", metavar="KIND", help="Open each input as a labelled dataset (auto, gtzan, fma, folder or manifest): rows get its labels and track ids."),
    files_from: Optional[str] = typer.Option(None, "--files-from", metavar="LIST", help="Also the files listed in LIST (text, CSV or Parquet)."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Search folders recursively."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads running the feature network (per actor with --ray; default 1 there)."),
    ray_address: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Run on a Ray cluster: auto, local or HOST:PORT."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="With --ray: feature actors (default: one per GPU with --device cuda, else half the CPUs)."),
    device: Device = None,
    max_windows: int = typer.Option(0, "--max-windows", min=0, metavar="N", help="Window budget: rows for at most N windows of a file, spread evenly over it (default 0: every window, for training)."),
) -> None:
    """Write a feature table: one Parquet row per segment (track, path, label, start, end, feature vector)."""
    from genrekit.data.embed import DEFAULT_FEATURE

    inputs = _check_inputs(inputs, files_from)
    spec = feature or dict(DEFAULT_FEATURE)
    device = resolve_device(device)
    settings = {"window": window, "hop": hop, "sample_rate": sample_rate, "max_windows": max_windows}
    if ray_address:
        from genrekit.apps.cluster.pipeline import embed_on_ray

        report = embed_on_ray(inputs, address=ray_address, output=output, spec=spec, settings=settings, labels=labels,
                              files_from=files_from, recursive=recursive, actors=actors, threads=threads or 1,
                              device=device)
        _ray_exit(report, "embedded", output)
    import time

    import torch

    from genrekit.data.embed import (
        Embedder,
        embed_items,
        list_items,
        write_feature_table,
    )
    from genrekit.apps.console import info
    from genrekit.utils import output_target, track

    output_target(output)  # a missing folder or a read-only file: one line now, before any work
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    items = list_items(inputs, labels=labels, recursive=recursive)
    if files_from:
        from genrekit.apps.cluster.inputs import read_file_list

        items += list_items(read_file_list(files_from))
    embedder = Embedder(spec, device=device, **settings)
    per_file = _report_failed_rows(track(embed_items(items, embedder), "embedding", total=len(items)))
    n_ok, failed = write_feature_table(per_file, output, embedder)
    seconds = time.perf_counter() - started
    info(f"{n_ok + failed} files in {seconds:.1f} s: {n_ok} embedded, {failed} failed; wrote {output}")
    if failed:
        raise typer.Exit(1)


def _report_failed_rows(per_file):
    """Pass each file's table rows through, echoing a failed file as one line on stderr."""
    for rows in per_file:
        if rows and rows[0]["error"] is not None:
            stderr.print(f"error: {printable(rows[0]['error'])}", markup=False, highlight=False, soft_wrap=True)
        yield rows


def _report_failures(records):
    """Pass records through, echoing each failure as one line on stderr."""
    for record in records:
        if "error" in record:
            # soft_wrap: one line per failure however long the path, so logs can be grepped
            # escaped: a file name with a newline or an escape sequence stays one plain line
            stderr.print(f"error: {printable(record['error'])}", markup=False, highlight=False, soft_wrap=True)
        yield record


def _open_output(stack, output: str):
    """``--output``, written atomically, its write errors reported as :class:`OutputError`."""
    from genrekit.utils import atomic_write

    try:
        return _Output(stack.enter_context(atomic_write(output, "w")), output)
    except OSError as exc:
        raise OutputError(f"{printable(output)}: cannot write ({exc.strerror or exc})") from None


class _Output:
    """A text stream whose write failures (full disk, closed pipe) name the output.

    A closed pipe (``genrekit predict ... | head -1``) stays a :class:`BrokenPipeError`: the
    command line ends quietly on it, as other tools do.
    """

    def __init__(self, stream, name: str):
        self.stream, self.name = stream, name

    def write(self, text: str) -> int:
        return self._checked(self.stream.write, text)

    def flush(self) -> None:
        self._checked(self.stream.flush)

    def _checked(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write the results to {printable(self.name)}"
                              f" ({exc.strerror or exc})", ) from None



def tags_command(
    file: str = typer.Argument(..., metavar="FILE", help="Audio file."),
    model: str = typer.Option("MSD_musicnn", "--model", "-m", metavar="NAME", help="MSD_musicnn (Million Song Dataset tags), MTT_musicnn (MagnaTagATune tags), or the VGG baselines MSD_vgg, MTT_vgg."),
    top: int = typer.Option(5, "--top", "-n", min=1, help="Tags to list, overall and per segment."),
    overlap: bool = typer.Option(False, "--overlap", help="A 3 s segment every 1 s instead of every 3 s (musicnn's input_overlap=1)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Music tags of FILE from a pretrained musicnn model: whole file and every 3 s segment.

    MSD_musicnn's weights come with genrekit; the other models need the musicnn package
    (pip install --no-deps musicnn==0.1.0), whose weights are converted on first use.
    """
    import json

    from genrekit.features.musicnn.tags import tag_file
    from genrekit.apps.console import stdout
    from genrekit.utils import utf8_json

    result = tag_file(file, model, top=top, overlap=overlap)
    if as_json:
        stdout.print(utf8_json(json.dumps(result, ensure_ascii=False, allow_nan=False)), markup=False, highlight=False)
        return

    def ranked(tags):
        return ", ".join(f"{t['tag']} {t['probability']:.2f}" for t in tags)

    lines = [f"{printable(result['file'])}  ({result['model']}, {result['duration']:.1f} s)", f"whole file: {ranked(result['tags'])}"]
    lines += [f"{s['start']:7.2f}-{s['end']:7.2f} s  {ranked(s['tags'])}" for s in result["segments"]]
    stdout.print("\n".join(lines), markup=False, highlight=False)
