"""Calibration: one softmax temperature fitted on held-out logits (Guo et al., 2017).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, dict]:
    """Temperature scaling (Guo et al., 2017): the ``T`` minimising the NLL of ``softmax(logits / T)``.

    Parameters
    ----------
    logits : Tensor
        ``(n, n_classes)`` validation logits.
    targets : Tensor, int
        ``(n,)`` true classes.

    Returns
    -------
    temperature : float
        In ``[0.05, 20]``; 1.0 when there is nothing to fit on.
    record : dict
        The model file's ``calibration`` entry: ``temperature``, ``method``, ``nll_before``,
        ``nll_after``, ``n``.
    """
    logits = logits.double()
    if len(logits) == 0:
        return 1.0, {"temperature": 1.0, "method": "none"}

    def nll(log_t: float) -> float:
        return float(nn.functional.cross_entropy(logits / math.exp(log_t), targets))

    temperature = minimize_temperature(nll)
    log_t = math.log(temperature)
    return temperature, {
        "temperature": round(temperature, 6),
        "method": "temperature-scaling",
        "fitted_on": "valid",
        "n": int(len(logits)),
        "nll_before": round(nll(0.0), 6),
        "nll_after": round(nll(log_t), 6),
    }


def minimize_temperature(nll, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature in ``[low, high]`` minimising ``nll(log T)``, any negative log-likelihood
    of the temperature's logarithm (of logits, or of tracks' averaged probabilities).

    The NLL is smooth and unimodal in log T for all practical purposes: a bounded 1-D search
    to 1e-4 in log T.

    Parameters
    ----------
    nll : callable
        ``nll(log_t) -> float``.
    low, high : float, default 0.05, 20.0
        Bounds of the temperature.

    Returns
    -------
    float
        The temperature ``T`` (not its logarithm).
    """
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(nll, bounds=(math.log(low), math.log(high)), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(result.x))
