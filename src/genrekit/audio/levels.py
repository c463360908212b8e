"""Signal levels: RMS in dB relative to full scale, and the one silence threshold."""

from __future__ import annotations

import numpy as np

#: Segments quieter than this RMS level (dB relative to full scale) count as silence: they are
#: reported but not classified by ``genrekit predict``, and left out of training and evaluation,
#: because a model's answer on silence is noise.
SILENCE_DBFS = -60.0


def rms_dbfs(samples: np.ndarray) -> np.ndarray:
    """RMS level in dB re full scale of each row of ``samples`` ``(n, samples)``; ``(n,)`` float64.

    Digital silence gives -200 dB (the RMS is floored at 1e-10) rather than ``-inf``.
    """
    rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def is_silent(samples: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: rows of ``samples`` quieter than :data:`SILENCE_DBFS`."""
    return rms_dbfs(samples) < SILENCE_DBFS
