"""Many files at once: finding audio files below folders and globs, decoding them in worker
processes while the network runs on batches gathered across files, records in input order.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from genrekit.errors import GenrekitError
from genrekit.inference.predict import (
    DEFAULT_MAX_WINDOWS,
    _check_options,
    check_styles,
    classify_segments,
    error_record,
    predict_audio,
    summarize,
)


def collect_audio_files(inputs: Iterable[str | os.PathLike], recursive: bool = True) -> Iterator[tuple[str, str | None]]:
    """Expand files, folders (recursively) and glob patterns into ``(path, problem)`` pairs.

    Folders yield their audio files (by extension) in sorted order; symbolic-link loops are
    followed once and then reported, and so is a link that leads round in a loop whatever its
    name (what it stands for cannot be told). A missing input yields ``(input, "file not found")``
    so the caller can report it and go on.

    Parameters
    ----------
    inputs : iterable of str or path-like
        Files, folders and glob patterns (``**`` recurses).
    recursive : bool, default True
        Search folders below the folders given.

    Yields
    ------
    path : str
    problem : str or None
        Why it cannot be used (not found, no match, a link loop, an unreadable folder), or None.
    """
    import glob

    from genrekit.audio.decode import AUDIO_EXTENSIONS

    for item in inputs:
        item = str(item)
        if os.path.isdir(item):
            yield from _walk_folder(item, AUDIO_EXTENSIONS, recursive)
        elif os.path.exists(item):
            yield item, None
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                yield item, "no file matches this pattern"
            for match in matches:
                if os.path.isdir(match):
                    yield from _walk_folder(match, AUDIO_EXTENSIONS, recursive)
                else:
                    yield match, None
        else:
            yield item, "file not found"


def _walk_folder(root: str, extensions, recursive: bool) -> Iterator[tuple[str, str | None]]:
    seen_dirs: set[str] = set()
    unreadable: list[OSError] = []  # os.walk skips folders it cannot list; say so instead
    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unreadable.append):
        yield from _unreadable_folders(unreadable)
        real = os.path.realpath(folder)
        if real in seen_dirs:
            dirs[:] = []
            yield folder, "symbolic link loop (folder already visited)"
            continue
        seen_dirs.add(real)
        dirs.sort()
        if not recursive:
            dirs[:] = []
        for name in sorted(files):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in extensions:
                yield os.path.join(folder, name), None
            elif _is_link_loop(os.path.join(folder, name)):
                yield os.path.join(folder, name), "symbolic link loop (the link never reaches a file)"
    yield from _unreadable_folders(unreadable)


def _is_link_loop(path: str) -> bool:
    """Whether ``path`` is a symbolic link that never reaches a file (os.walk lists it as a file)."""
    import errno

    if not os.path.islink(path):
        return False
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _unreadable_folders(errors: list[OSError]) -> Iterator[tuple[str, str]]:
    while errors:
        error = errors.pop(0)
        yield str(error.filename), f"cannot read folder ({error.strerror or error})"


#: Files whose windows hold more than this (seconds) are streamed in the main process instead of
#: being decoded whole by a worker, so memory stays bounded whatever the input.
STREAM_LONGER_THAN = 600.0


def predict_files(
    paths: Iterable[str | os.PathLike],
    model,
    *,
    workers: int = 0,
    batch_size: int = 32,
    top_k: int = 3,
    aggregate: str = "mean",
    segments: bool = False,
    offset: float = 0.0,
    max_duration: float | None = None,
    recursive: bool = True,
    styles: bool = False,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> Iterator[dict]:
    """Classify many files; yield each file's JSON record in input order.

    Records are ``Prediction.to_dict()`` or ``{"path", "error"}`` for a file that failed, so
    one bad file never stops the batch. With ``workers > 0``, decoding, resampling and
    segmentation run in that many worker processes while this process runs the network on
    batches of ``batch_size`` segments gathered across files. ``recursive=False`` takes only
    the files directly inside folders given in ``paths``. ``styles`` adds each file's styles
    (models computing the MSD taggram only). ``max_windows`` is the window budget of
    :func:`~genrekit.inference.predict.predict_audio` (0: every window).

    Parameters
    ----------
    paths : iterable of str or path-like
        Files, folders and glob patterns (:func:`collect_audio_files`).
    model : GenreModel
    workers : int, default 0
        Decoding processes (0: decode in this process).
    batch_size : int, default 32
        Windows per network pass, gathered across files.
    top_k, aggregate, segments, offset, max_duration, styles, max_windows
        As :func:`~genrekit.inference.predict.predict_audio`.
    recursive : bool, default True
        Search folders below the folders given.

    Yields
    ------
    dict
        One record per file, in input order.
    """
    yield from predict_found(
        collect_audio_files(paths, recursive=recursive), model, workers=workers, batch_size=batch_size,
        top_k=top_k, aggregate=aggregate, segments=segments, offset=offset, max_duration=max_duration,
        styles=styles, max_windows=max_windows,
    )


def predict_found(
    found: Iterable[tuple[str, str | None]],
    model,
    *,
    workers: int = 0,
    batch_size: int = 32,
    top_k: int = 3,
    aggregate: str = "mean",
    segments: bool = False,
    offset: float = 0.0,
    max_duration: float | None = None,
    styles: bool = False,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> Iterator[dict]:
    """:func:`predict_files` on ``(path, problem)`` pairs from :func:`collect_audio_files`.

    For callers that list the files first (to show a progress total); a pair with a problem
    comes out as that file's error record.

    Parameters
    ----------
    found : iterable of (str, str or None)
        ``(path, problem)`` pairs from :func:`collect_audio_files`.
    model : GenreModel
    workers, batch_size, top_k, aggregate, segments, offset, max_duration, styles, max_windows
        As :func:`predict_files`.

    Yields
    ------
    dict
        One record per file, in input order.
    """
    _check_options(top_k, aggregate)
    check_styles(model, styles)
    options = dict(top_k=top_k, aggregate=aggregate, segments=segments, styles=styles)
    max_windows = 0 if segments else max_windows  # a timeline shows every window
    decode = partial(
        decode_segments, sr=model.sample_rate, window=model.window, hop=model.hop,
        last=model.segment.last, offset=offset, duration=max_duration, max_windows=max_windows,
    )
    decoded = _decode_in_workers(found, decode, workers)
    pending: list[tuple] = []  # (path, Segments, seconds, warnings) waiting for the network
    n_waiting = 0
    for path, result in decoded:
        if result == "stream":
            yield from classify_decoded(model, pending, options)
            pending, n_waiting = [], 0
            yield _predict_one_streamed(model, path, offset, max_duration, max_windows, options)
            continue
        if isinstance(result, str):
            if pending:  # keep input order: finish earlier files before reporting this one
                yield from classify_decoded(model, pending, options)
                pending, n_waiting = [], 0
            yield error_record(path, result)
            continue
        pending.append((path, *result))
        n_waiting += len(result[0].samples)
        if n_waiting >= batch_size:
            yield from classify_decoded(model, pending, options)
            pending, n_waiting = [], 0
    yield from classify_decoded(model, pending, options)


def decode_segments(path, *, sr, window, hop, last, offset, duration, max_windows=0):
    """Worker job: ``(Segments, seconds decoded, warnings)`` for ``path``, read by
    :func:`genrekit.audio.windows.read_windows`; ``"stream"`` when its windows would hold more
    than :data:`STREAM_LONGER_THAN` seconds of audio, or an error message.

    Parameters
    ----------
    path : str
        The file.
    sr : int
        The model's rate in Hz.
    window, hop : float
        Window length and hop in seconds.
    last : {"pad", "drop"}
        The model's tail rule.
    offset : float
        Seconds to skip.
    duration : float or None
        Seconds to read.
    max_windows : int, default 0
        The window budget (0: every window).

    Returns
    -------
    tuple, str
        ``(Segments, seconds decoded, warnings)``, ``"stream"``, or an error message.
    """
    from genrekit.audio.windows import read_windows

    try:
        windows = read_windows(path, sr, window=window, hop=hop, last=last, offset=offset, duration=duration,
                               max_windows=max_windows)
        if windows.count * window > STREAM_LONGER_THAN:
            return "stream"
        segs = windows.collect()
        if len(segs) == 0:
            return f"{path}: no audio in the requested range"
        warnings = [windows.repairs.describe()] if windows.repairs else []
        return segs, windows.duration, warnings
    except GenrekitError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not end the batch
        return f"{path}: cannot decode ({type(exc).__name__}: {exc})"


#: Decoded files waiting for the network, beyond two per worker: a batch of 32 windows is about
#: 4 clips of 30 s. Worst case 6 files of 10 min (38 MB each at 16 kHz) with one worker.
DECODE_AHEAD = 4


def _decode_in_workers(jobs, decode, workers: int):
    """Yield ``(path, decode(path) or problem)`` in input order, decoding ahead in worker processes."""
    if workers <= 0:
        for path, problem in jobs:
            yield path, (f"{path}: {problem}" if problem else decode(path))
        return
    from collections import deque

    pool = _DecoderPool(decode, workers)
    ahead = deque()
    try:
        for path, problem in jobs:
            ahead.append((path, problem if problem else pool.submit(path)))
            # a bounded look-ahead keeps memory flat on libraries of thousands of files; it must
            # exceed one network batch of files, or workers idle while the network runs
            while len(ahead) > 2 * workers + DECODE_AHEAD:
                yield pool.resolve(*ahead.popleft())
        while ahead:
            yield pool.resolve(*ahead.popleft())
    finally:
        pool.close()


#: Modules the decoding workers need. The fork server imports them once, so a worker starts in
#: milliseconds instead of importing them itself (a second or more on a busy machine).
WORKER_MODULES = ["genrekit.inference.batch", "genrekit.audio.decode", "genrekit.audio.windows"]


def start_decoders() -> None:
    """Start the fork server that decoding workers are forked from, with their modules loaded.

    Calling it early (``genrekit predict`` does, before loading the model) overlaps the server's
    start-up with other work; :func:`predict_files` starts it anyway when it has workers.
    """
    import multiprocessing
    from multiprocessing import forkserver

    # forkserver: workers must not inherit this process's torch threads
    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_MODULES)
    forkserver.ensure_running()


class _DecoderPool:
    """Worker processes running ``decode``; a pool broken by a crashed worker is replaced.

    When a worker dies (a decoder crashing on a damaged file, the out-of-memory killer), every
    job still in that pool fails with ``BrokenProcessPool`` without saying which file was to
    blame. Each such file is then decoded again, alone, in a fresh pool: the innocent ones
    succeed, and a file that breaks a pool on its own is reported as crashing the decoder.
    """

    def __init__(self, decode, workers: int):
        self.decode, self.workers = decode, workers
        self.pool = self._start()

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        start_decoders()
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_quiet_stderr)

    def _restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start()

    def submit(self, path):
        from concurrent.futures.process import BrokenProcessPool

        try:
            job = self.pool.submit(self.decode, path)
        except BrokenProcessPool:
            self._restart()
            job = self.pool.submit(self.decode, path)
        job.pool = self.pool
        return job

    def resolve(self, path, job):
        """``(path, decoded segments or one-line problem)`` for a job from :meth:`submit`."""
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(job, str):
            return path, f"{path}: {job}"
        try:
            return path, job.result()
        except BrokenProcessPool:
            pass
        except Exception as exc:  # noqa: BLE001 - a failed job is reported per file
            return path, f"{path}: cannot decode ({type(exc).__name__}: {exc})"
        if job.pool is self.pool:  # not replaced yet by an earlier job's failure
            self._restart()
        try:
            return path, self._alone(path)
        except BrokenProcessPool:
            return path, f"{path}: the audio decoder crashed on this file"

    def _alone(self, path):
        """Decode ``path`` with no other job in the pool, so a crash can only be its own."""
        alone = self._start()
        try:
            return alone.submit(self.decode, path).result()
        finally:
            alone.shutdown(wait=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _quiet_stderr() -> None:
    """Worker initializer: send the process's stderr to /dev/null.

    Workers report problems through their results; C decoders write chatter such as mpg123's
    "Note: Illegal Audio-MPEG-Header" straight to file descriptor 2, which would break the
    one line per failed file that the batch prints.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def classify_decoded(model, pending, options) -> Iterator[dict]:
    """Run the network once over decoded files and yield one record per file, in order.

    ``pending``: ``(path, Segments, duration in s, warnings)`` per file. A file that makes the
    model give non-finite probabilities is found (file by file) and gets an error record; the
    others are classified. Shared by the local batch and the Ray model actors.

    Parameters
    ----------
    model : GenreModel
    pending : list of tuple
        ``(path, Segments, seconds, warnings)`` per decoded file.
    options : dict
        ``top_k``, ``aggregate``, ``segments`` and ``styles`` for
        :func:`~genrekit.inference.predict.summarize`.

    Yields
    ------
    dict
        One JSON record per file, in order.
    """
    if not pending:
        return
    try:
        probabilities, silent, taggram = classify_segments(model, np.concatenate([segs.samples for _, segs, _, _ in pending]))
    except GenrekitError:  # one file made the model give NaN: find it, keep the others
        if len(pending) > 1:
            for one in pending:
                yield from classify_decoded(model, [one], options)
        else:
            yield error_record(pending[0][0], "the model gave non-finite probabilities (not classified)")
        return
    first = 0
    for path, segs, duration, warnings in pending:
        part = slice(first, first + len(segs.samples))
        first = part.stop
        yield summarize(model, str(path), starts=segs.starts, ends=segs.ends, duration=duration,
                        probabilities=probabilities[part], silent=silent[part], warnings=warnings,
                        taggram=None if taggram is None else taggram[part], **options).to_dict()


def _predict_one_streamed(model, path, offset, max_duration, max_windows, options) -> dict:
    try:
        return predict_audio(model, path, offset=offset, max_duration=max_duration, max_windows=max_windows,
                             **options).to_dict()
    except GenrekitError as exc:
        return error_record(path, exc)


def default_workers(n_files: int) -> int:
    """Decoding processes :func:`predict_files` should use for ``n_files`` files.

    None for a single file (starting a process costs more than it saves), else one per CPU
    core available to this process beyond the one that runs the network, at most 2: decoding
    is cheaper than inference, so more processes only compete with the network for cores.

    Parameters
    ----------
    n_files : int
        Files to classify.

    Returns
    -------
    int
        0 (decode in this process), 1 or 2.
    """
    if n_files <= 1:
        return 0
    return max(1, min(2, available_cores() - 1))


def default_threads(workers: int) -> int:
    """Threads for the network while ``workers`` processes decode: the cores they leave, at least 1.

    More threads than free cores make PyTorch's thread pool wait on the decoders (and on any
    other busy process): on a loaded machine that is several times slower than one thread.

    Parameters
    ----------
    workers : int
        Decoding processes.

    Returns
    -------
    int
    """
    return max(1, available_cores() - workers)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity on Linux, else the CPU count).

    Returns
    -------
    int
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
