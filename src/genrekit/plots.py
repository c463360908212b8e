"""Figures for reports: training curves and confusion matrices, written as PNG files.

matplotlib runs on its non-interactive Agg backend (no display needed); files are written
atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_training_curves", "plot_confusion_matrix", "plot_experiment_results"]


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from .utils import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_training_curves(histories: Sequence[Sequence[dict]], path: str | Path) -> Path:
    """Loss and accuracy per epoch, train and validation, one line per run (e.g. per fold).

    Parameters
    ----------
    histories : sequence of histories
        Each a list of per-epoch dicts as recorded in a model file's ``training.history``
        (``epoch``, ``train_loss``, ``train_accuracy``, optionally ``valid_loss``,
        ``valid_accuracy``, ``valid_track_accuracy``).
    path : path
        PNG file to write.
    """
    fig, (loss_ax, acc_ax) = _figure(1, 2, figsize=(10, 3.8))
    several = len(histories) > 1
    for run, history in enumerate(histories):
        if not history:
            continue
        epochs = [row["epoch"] for row in history]
        suffix = f" (fold {run})" if several else ""
        alpha = 0.6 if several else 1.0
        for key, ax, style in (
            ("train_loss", loss_ax, "-"), ("valid_loss", loss_ax, "--"),
            ("train_accuracy", acc_ax, "-"), ("valid_accuracy", acc_ax, "--"),
            ("valid_track_accuracy", acc_ax, ":"),
        ):
            values = [row.get(key) for row in history]
            if all(v is not None for v in values):
                color = f"C{run}" if several else None
                ax.plot(epochs, values, style, color=color, alpha=alpha, label=key.replace("_", " ") + suffix)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        if not several:
            ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: str | Path,
                          title: str = "confusion matrix (tracks)") -> Path:
    """Confusion matrix as a heat map: rows true labels, columns predictions.

    Cells show counts; colour is the share of the row (recall per class), so classes of
    different sizes read alike.
    """
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = 1.2 + 0.55 * len(labels)
    fig, ax = _figure(figsize=(size + 1.5, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    return _save(fig, path)


def plot_experiment_results(rows: Sequence[dict], path: str | Path, *, metric: str = "track_accuracy",
                            chance: float | None = None) -> Path:
    """Horizontal bars of a metric's mean (± std over folds) per run, one colour per protocol.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`genrekit.experiment.run_experiments`: ``input``, ``model``, ``protocol``,
        ``<metric>_mean`` and ``<metric>_std`` (NaN: no error bar).
    path : path
        PNG file to write.
    metric : str
        ``track_accuracy``, ``segment_accuracy``, ``track_macro_f1``, ...
    chance : float, optional
        Draws a dashed line at this value (uniform guessing).
    """
    variants = list(dict.fromkeys((row["input"], row["model"]) for row in rows))
    protocols = list(dict.fromkeys(row["protocol"] for row in rows))
    height = 0.8 / len(protocols)
    fig, ax = _figure(figsize=(8, 1.2 + 0.42 * len(variants) * max(1, len(protocols) / 1.5)))
    for k, protocol in enumerate(protocols):
        chosen = {(row["input"], row["model"]): row for row in rows if row["protocol"] == protocol}
        positions = [i + (k - (len(protocols) - 1) / 2) * height for i, v in enumerate(variants) if v in chosen]
        means = [chosen[v][f"{metric}_mean"] for v in variants if v in chosen]
        stds = [chosen[v][f"{metric}_std"] for v in variants if v in chosen]
        errors = [0.0 if s is None or np.isnan(s) else s for s in stds]
        ax.barh(positions, means, height=height * 0.92, xerr=errors, capsize=2, color=f"C{k}", label=protocol,
                error_kw={"elinewidth": 0.8, "alpha": 0.7})
    if chance:
        ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.0%})")
    ax.set_yticks(range(len(variants)), [f"{model} on {feature}" for feature, model in variants])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel=metric.replace("_", " ") + " (mean ± std over folds)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
