"""Predictions kept in a library database: stored results are reused, new ones stored as they come."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from genrekit.apps.library.db import LibraryDB
from genrekit.inference.batch import collect_audio_files, predict_files
from genrekit.inference.predict import DEFAULT_MAX_WINDOWS, error_record

#: The :func:`predict_files` options whose results are stored in the library database under the
#: bare model id; ``predict --db`` and ``tag`` share results made with the same options. Every
#: window (``max_windows`` 0) is what results stored before the window budget were made with;
#: a budget is part of the key, so changing it recomputes.
LIBRARY_OPTIONS = {"top_k": 3, "aggregate": "mean", "segments": False, "offset": 0.0, "max_duration": None,
                   "styles": False, "max_windows": 0}


def library_result_key(model, **options) -> str:
    """The model id under which results of ``model`` with ``options`` are stored in a library DB.

    Other options than :data:`LIBRARY_OPTIONS` are appended (``"<id>?top_k=5"``), so a run asking
    for more (a timeline, more genres, another excerpt, another window budget) never reuses a
    result that lacks it. ``max_windows`` defaults to the budget ``predict`` uses by default.
    """
    options = {"max_windows": DEFAULT_MAX_WINDOWS, **options}
    if options.get("segments"):
        options["max_windows"] = 0  # a timeline is made of every window, whatever the budget
    changed = {key: value for key, value in options.items() if LIBRARY_OPTIONS.get(key, object()) != value}
    if not changed:
        return model.model_id
    return model.model_id + "?" + "&".join(f"{key}={value}" for key, value in sorted(changed.items()))


def predict_with_library(found, model, db, *, force: bool = False, stats: dict | None = None, **options) -> Iterator[dict]:
    """Like :func:`predict_found`, reusing and storing results in a library database.

    Parameters
    ----------
    found : iterable of (path, problem)
        From :func:`collect_audio_files`.
    db : genrekit.apps.library.db.LibraryDB
        Files already predicted by this model with these options (and unchanged since) are
        answered from it without decoding; new results are committed one by one, so an
        interrupted run keeps what it finished.
    force : bool
        Recompute every file.
    stats : dict, optional
        Receives ``"reused"``: how many records came from the database.
    **options
        :func:`predict_files` options (``workers``, ``batch_size``, ``top_k``, ...).

    Records come in a different order from :func:`predict_found`: stored results first.
    """
    files = []
    for path, problem in found:
        if problem:
            yield error_record(path, f"{path}: {problem}")
        else:
            files.append(path)
    options.setdefault("max_windows", DEFAULT_MAX_WINDOWS)
    key = library_result_key(model, **{k: v for k, v in options.items() if k in LIBRARY_OPTIONS})
    computing = []

    def compute(paths):
        computing.append(True)
        return predict_files(paths, model, **options)

    reused = 0
    for record in predict_with_cache(db, files, key, compute, force=force):
        reused += not computing
        yield record
    if stats is not None:
        stats["reused"] = reused


def predict_with_cache(
    db: LibraryDB,
    paths: Iterable[str | os.PathLike],
    model_id: str,
    predict: Callable[[list[Path]], Iterable[dict]],
    *,
    force: bool = False,
) -> Iterator[dict]:
    """Yield one prediction dict per path, computing only those not stored for ``model_id``.

    Stored results come first (without touching the audio), then ``predict(missing_paths)`` is
    called once and each dict it yields (``{"path", "genre", ...}`` or ``{"path", "error"}``) is
    committed to ``db`` before being passed on, so an interrupted run keeps all finished files.
    ``force`` recomputes everything.
    """
    missing: list[Path] = []
    for path in paths:
        stored = None if force else db.lookup(path, model_id)
        if stored is None:
            missing.append(Path(path))
        else:
            yield stored
    if not missing:
        return
    for result in predict(missing):
        try:
            if "error" in result:
                db.store_error(result["path"], model_id, str(result["error"]))
            else:
                db.store(result["path"], model_id, result)
        except FileNotFoundError:
            pass  # removed while it was being predicted: nothing to remember
        yield result


def library_predictions(
    db: LibraryDB,
    inputs: Iterable[str | os.PathLike],
    model,
    *,
    force: bool = False,
    predict: Callable[[list[Path]], Iterable[dict]] | None = None,
    styles: bool = False,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> Iterator[dict]:
    """Predictions for every audio file under ``inputs`` (files, folders, globs), reusing ``db``.

    ``model`` is a :class:`~genrekit.inference.model.GenreModel` (its ``model_id`` keys the stored
    results); ``predict`` defaults to ``genrekit.inference.batch.predict_files(paths, model)``. Inputs
    that cannot be read (missing file, symbolic link loop) come out as ``{"path", "error"}``.
    ``styles`` asks for each file's styles (stored under their own key, ``<model id>?styles=True``);
    ``max_windows`` is the window budget (in the key too, ``<model id>?max_windows=10``).
    """
    if predict is None:
        def predict(paths):
            return predict_files(paths, model, styles=styles, max_windows=max_windows)

    found = []
    for path, problem in collect_audio_files(inputs):
        if problem:
            yield error_record(path, f"{path}: {problem}")
        else:
            found.append(path)
    yield from predict_with_cache(db, found, library_result_key(model, styles=styles, max_windows=max_windows),
                                  predict, force=force)
