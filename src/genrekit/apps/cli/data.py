"""``genrekit data``, ``genrekit cache`` and ``genrekit plot``: look at datasets, the feature cache and audio."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from genrekit.apps.cli.options import CacheDir, DatasetKind

data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True, add_completion=False)


cache_app = typer.Typer(help="Manage the on-disk feature cache.", no_args_is_help=True, add_completion=False)


@data_app.command("check")
def data_check(
    path: str = typer.Argument(..., metavar="DATASET", help="Dataset folder, FMA root, or CSV manifest (path,label[,split][,group])."),
    kind: DatasetKind = None,
    subset: Optional[str] = typer.Option(None, "--subset", metavar="[small|medium|large]", help="FMA subset: small, medium or large."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not open the files (no durations, no unreadable-file check)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Count tracks per label, measure durations and list problems; exit 1 if any is an error."""
    import json

    from genrekit.data.datasets import format_summary, open_dataset, summarize

    dataset = open_dataset(path, kind or "auto", **({"subset": subset} if subset else {}))
    if not no_audio:
        dataset.check_audio()
    summary = summarize(dataset)
    sys.stdout.write(json.dumps(summary, indent=2, allow_nan=False) + "\n" if as_json else format_summary(summary))
    if summary["errors"]:
        raise typer.Exit(1)


@data_app.command("report")
def data_report_command(
    path: str = typer.Argument(..., metavar="DATASET", help="Dataset folder, FMA root, or CSV manifest."),
    out: str = typer.Option("runs/data-report", "--out", "-o", metavar="DIR", help="Folder for data-report.md and images/."),
    kind: DatasetKind = None,
    limit_per_label: Optional[int] = typer.Option(None, "--limit-per-label", min=1, help="Look at no more than this many clips per genre."),
    no_embeddings: bool = typer.Option(False, "--no-embeddings", help="Skip the musicnn embedding map (the slow part)."),
    cache_dir: CacheDir = None,
) -> None:
    """Write an exploratory Markdown page: clips, minutes, durations, levels, spectra and an embedding map."""
    import shlex

    from genrekit.experiments.data_report import data_report

    kind = kind or "auto"
    command = ["genrekit", "data", "report", path, "--out", out]
    command += (["--kind", kind] if kind != "auto" else []) + (["--no-embeddings"] if no_embeddings else [])
    command += ["--limit-per-label", str(limit_per_label)] if limit_per_label else []
    page = data_report(path, out, kind=kind, cache_dir=cache_dir, limit_per_label=limit_per_label,
                       embeddings=not no_embeddings, command=shlex.join(command))
    typer.echo(str(page))


def plot(
    file: str = typer.Argument(..., metavar="FILE", help="Audio file."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE.png", help="PNG to write (default FILE's name + .png here; its folder must exist)."),
    offset: float = typer.Option(0.0, "--offset", min=0.0, metavar="SECONDS", help="Start at this many seconds."),
    duration: Optional[float] = typer.Option(30.0, "--duration", min=0.1, metavar="SECONDS", help="Seconds to show (default 30)."),
    no_tags: bool = typer.Option(False, "--no-tags", help="Leave out the musicnn taggram."),
) -> None:
    """Draw the waveform, log-mel spectrogram, MFCC and musicnn taggram of an audio file as one PNG."""
    from pathlib import Path

    from genrekit.evaluation.plots import plot_file
    from genrekit.utils import output_target

    target = Path(out) if out else Path(Path(file).name + ".png")
    output_target(target)  # a missing folder or a read-only file: one line now, before any work
    plot_file(file, target, offset=offset, duration=duration, musicnn=None if no_tags else "MSD_musicnn")
    typer.echo(str(target))


@cache_app.command("info")
def cache_info(cache_dir: CacheDir = None) -> None:
    """Show where the feature cache is, how many entries it holds and their size."""
    from genrekit.data.cache import FeatureCache

    found = FeatureCache(cache_dir).info()
    typer.echo(f"{found.root}: {found.entries} entries, {found.size_bytes / 2**20:.1f} MiB")


@cache_app.command("clear")
def cache_clear(cache_dir: CacheDir = None) -> None:
    """Delete every cached feature array (other files in the folder are left alone)."""
    from genrekit.data.cache import FeatureCache
    from genrekit.apps.console import info

    cache = FeatureCache(cache_dir)
    info(f"removed {cache.clear()} entries from {cache.root}")
