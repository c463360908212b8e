"""Signal levels: RMS in dB relative to full scale, and the one silence threshold."""

from __future__ import annotations

import numpy as np

#: Segments quieter than this RMS level (dB relative to full scale) count as silence: they are
#: reported but not classified by ``genrekit predict``, and left out of training and evaluation,
#: because a model's answer on silence is noise.
SILENCE_DBFS = -60.0


def rms_dbfs(samples: np.ndarray) -> np.ndarray:
    """RMS level of each row of ``samples`` in dB relative to full scale.

    Parameters
    ----------
    samples : np.ndarray
        Audio windows in [-1, 1], shape ``(n, samples)``.

    Returns
    -------
    np.ndarray
        float64, shape ``(n,)``, in dBFS; digital silence gives -200 dB (the RMS is floored at
        1e-10) rather than ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> rms_dbfs(np.array([[1.0, -1.0], [0.1, -0.1], [0.0, 0.0]])).round(1)
    array([   0.,  -20., -200.])
    """
    rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def is_silent(samples: np.ndarray) -> np.ndarray:
    """Which rows of ``samples`` are quieter than :data:`SILENCE_DBFS` (-60 dBFS RMS).

    Parameters
    ----------
    samples : np.ndarray
        Audio windows in [-1, 1], shape ``(n, samples)``.

    Returns
    -------
    np.ndarray
        bool, shape ``(n,)``.
    """
    return rms_dbfs(samples) < SILENCE_DBFS
