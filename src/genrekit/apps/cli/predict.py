"""``genrekit predict`` (genres of files) and ``genrekit tags`` (musicnn tags of a file)."""

from __future__ import annotations

import os

from typing import Optional

import typer

from genrekit.errors import GenrekitError, UsageError
from genrekit.utils import printable, stderr


class OutputError(GenrekitError):
    """The results cannot be written (full disk, closed or unwritable output)."""


def predict(
    inputs: list[str] = typer.Argument(..., metavar="FILE...", help="Audio files, folders or glob patterns."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundled model name (default) or model file (NAME.json); default: the bundled default model."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="How many genres to list per file."),
    segments: bool = typer.Option(False, "--segments", help="Also give the per-segment timeline."),
    styles: bool = typer.Option(False, "--styles", help="Also give the styles: genre-like MSD tags (electronic, folk, soul, punk, House, ...) whose mean probability is at least 0.2 (models on the MSD taggram, such as the default)."),
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

    Speech, noise, tones and other sounds that are not music get no genre and are marked "not
    music" (JSON: "genre": null, "not_music": true), per file and per segment.

    A file that cannot be classified gets a one-line error and the batch goes on; exit code 1 if any failed.
    """
    from genrekit.inference.writers import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if aggregate not in ("mean", "vote"):
        raise UsageError(f"--aggregate must be mean or vote, not {aggregate!r}")
    if force and not db:
        raise UsageError("--force goes with --db")
    if output is not None and os.path.isdir(output):
        raise UsageError(f"--output {printable(output)}: is a folder; give a file name")
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
    from genrekit.utils import is_quiet, stdout, track

    started = time.perf_counter()
    found = list(collect_audio_files(inputs, recursive=recursive))
    workers = default_workers(len(found)) if workers is None else workers
    if workers:
        start_decoders()  # the decoders' start-up overlaps loading the model
    loaded = load_model(model)
    torch.set_num_threads(threads or default_threads(workers))
    options = dict(workers=workers, batch_size=batch_size, top_k=top_k, segments=segments,
                   aggregate=aggregate, offset=offset, max_duration=max_duration, styles=styles)
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

    lines = [f"{printable(result['file'])}  ({result['model']}, {result['duration']:.1f} s)", f"whole file: {ranked(result['tags'])}"]
    lines += [f"{s['start']:7.2f}-{s['end']:7.2f} s  {ranked(s['tags'])}" for s in result["segments"]]
    stdout.print("\n".join(lines), markup=False, highlight=False)
