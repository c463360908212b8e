"""``genrekit tag``: genre tags written into a music library's files, with dry run and undo."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from genrekit.apps.cli.options import MaxWindows, Model
from genrekit.audio.windows import DEFAULT_MAX_WINDOWS
from genrekit.errors import UsageError


def tag(
    library: str = typer.Argument(..., metavar="LIBRARY", help="Music folder (searched recursively) or one audio file."),
    db: Optional[str] = typer.Option(None, "--db", metavar="FILE", help="Library database (default: LIBRARY/.genrekit.sqlite)."),
    write: bool = typer.Option(False, "--write", help="Write the tags. Without it nothing is changed: the plan is shown."),
    min_confidence: float = typer.Option(0.5, "--min-confidence", min=0.0, max=1.0, metavar="P", help="Tag only files predicted with at least this confidence."),
    keep_existing: bool = typer.Option(True, "--keep-existing/--replace-existing", help="Leave files that already have a genre alone, or replace their genre."),
    undo: bool = typer.Option(False, "--undo", help="Put back the genres of the last tag batch (or --batch); acts at once."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="With --undo: the batch to undo."),
    model: Model = None,
    force: bool = typer.Option(False, "--force", help="Predict again even files with a stored result."),
    styles: bool = typer.Option(False, "--styles", help="Also write the predicted styles (genre-like MSD tags, see genrekit predict --styles) as additional genre values; a style that names another of the model's genres only when the model gives that genre at least 25 %."),
    genre_map: Optional[str] = typer.Option(None, "--genre-map", metavar="FILE.toml", help="Your own genre names: model label (or style) = \"tag text\", or false to never write it."),
    max_windows: MaxWindows = DEFAULT_MAX_WINDOWS,
) -> None:
    """Write predicted genres into the files' genre tags (dry run unless --write; undo with --undo).

    Files that are not music (speech, noise, ...) or silent get nothing written.
    """
    from pathlib import Path

    from genrekit.apps.library.db import LibraryDB, default_db_path
    from genrekit.apps.library.genre_tags import (
        apply_tag_changes,
        plan_tag_changes,
        undo_tag_batch,
    )
    from genrekit.utils import track

    if batch is not None and not undo:
        raise UsageError("--batch goes with --undo")
    if styles and undo:
        raise UsageError("--styles does not go with --undo")
    if genre_map is not None and undo:
        raise UsageError("--genre-map does not go with --undo")
    if not Path(library).exists():
        raise UsageError(f"{library}: no such file or folder")
    db_path = Path(db) if db else default_db_path(library)
    if undo and not db_path.is_file():  # opening it would create an empty database
        raise UsageError(f"{db_path}: no such library database, so no tag batch to undo")
    with LibraryDB(db_path) as state:
        if undo or write:
            _remove_stale_copies(library)
        if undo:
            batch_id, outcomes = undo_tag_batch(state, batch, progress=track)
            _print_tag_changes(outcomes, library, f"undo of tag batch {batch_id}")
        else:
            from genrekit.apps.library.genre_names import load_genre_map
            from genrekit.apps.library.results import library_predictions
            from genrekit.inference.model import load_model

            loaded = load_model(model)
            names = None if genre_map is None else load_genre_map(genre_map, loaded)
            predictions = track(library_predictions(state, [library], loaded, force=force, styles=styles,
                                                    max_windows=max_windows), "classifying")
            outcomes = plan_tag_changes(predictions, min_confidence=min_confidence, keep_existing=keep_existing,
                                        styles=styles, genre_map=names, genres=loaded.labels)
            if not write:
                _print_tag_changes(outcomes, library, "dry run", "nothing changed; add --write to apply")
            else:
                batch_id, written = apply_tag_changes(outcomes, state, model_id=loaded.model_id, progress=track)
                outcomes = _merge_outcomes(outcomes, written)
                if batch_id is None:
                    _print_tag_changes(outcomes, library, "nothing to write")
                else:
                    _print_tag_changes(outcomes, library, f"tag batch {batch_id}", _undo_hint(written, library, db))
    if any(change.action == "failed" for change in outcomes):
        raise typer.Exit(1)


def _undo_hint(written, library: str, db: str | None) -> str | None:
    """The command that undoes this batch, as it can be pasted; None when no file was written."""
    import shlex

    from genrekit.apps.library.genre_tags import WRITTEN

    if not any(change.action == WRITTEN for change in written):
        return None
    command = ["genrekit", "tag", library, "--undo"] + (["--db", db] if db else [])
    return "undo with: " + shlex.join(command)


def _remove_stale_copies(library: str) -> None:
    """Remove hidden copies left in the library by an interrupted ``tag --write`` or ``--undo``."""
    from genrekit.apps.library.genre_tags import remove_stale_temp_files
    from genrekit.apps.console import info

    removed = remove_stale_temp_files(library)
    if removed:
        info(f"removed {len(removed)} temporary cop{'y' if len(removed) == 1 else 'ies'}"
             " left by an interrupted tag write")


def _merge_outcomes(planned, written):
    done = iter(written)
    return [next(done) if change.action == "write" else change for change in planned]


def _print_tag_changes(changes, library: str, title: str, note: str | None = None) -> None:
    """The changes as a table on stdout and counts per action on stderr."""
    import os
    from collections import Counter

    from genrekit.apps.library.genre_tags import format_tag_table
    from genrekit.apps.console import info
    from genrekit.utils import printable

    root = library if os.path.isdir(library) else os.path.dirname(library)
    sys.stdout.write(format_tag_table(changes, root))
    counts = Counter(change.action for change in changes)
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "no audio files"
    info(printable(f"{title}: {summary}" + (f" ({note})" if note else "")))
