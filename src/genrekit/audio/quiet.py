"""Silencing what C decoders write straight to the process's standard error.

libsndfile's MP3 decoder (libmpg123) prints lines such as ``Note: Illegal Audio-MPEG-Header``
or ``skip_junk()`` notes to file descriptor 2 while it probes a file that is not MPEG audio.
Python cannot catch them; they would break the one line per failed file that genrekit prints.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None


@contextlib.contextmanager
def c_stderr_silenced():
    """Send file descriptor 2 to the null device while the block runs, then put it back.

    Meant for short calls into C libraries (probing a file's header). The descriptor is
    process-wide: nested and concurrent blocks share one redirection, which ends when the last
    of them does; anything else written to stderr meanwhile is lost, so keep the blocks short.
    Where the descriptor cannot be redirected the block runs as it is.

    Yields
    ------
    None
        Once, while descriptor 2 points to the null device.
    """
    global _depth, _saved_fd
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()  # what Python printed before goes out, not to the null device
            except (OSError, ValueError, AttributeError):
                pass
            try:
                _saved_fd = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError:
                _saved_fd = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None
