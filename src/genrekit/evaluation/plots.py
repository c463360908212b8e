"""Figures for reports: training curves and confusion matrices, written as PNG files.

matplotlib runs on its non-interactive Agg backend (no display needed); files are written
atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "plot_training_curves",
    "plot_confusion_matrix",
    "plot_experiment_results",
    "plot_audio",
    "plot_file",
    "plot_genre_counts",
    "plot_genre_histogram",
    "plot_mean_spectra",
    "plot_embedding_map",
]


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(fig, path: str | Path, dpi: int = 120) -> Path:
    import matplotlib.pyplot as plt

    from genrekit.utils import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
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

    Returns
    -------
    Path
        ``path``, written atomically.
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

    Parameters
    ----------
    matrix : np.ndarray
        Counts, int, shape ``(n_labels, n_labels)``: ``matrix[i, j]`` tracks of label ``i``
        predicted as ``j``.
    labels : sequence of str
        Label names, in the order of the rows.
    path : str or Path
        PNG file to write.
    title : str, default "confusion matrix (tracks)"
        Figure title.

    Returns
    -------
    Path
        ``path``, written atomically.
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

    A dotted line per protocol marks ``reachable_track_accuracy`` when below 1: the share of
    test tracks whose genre had training tracks in their fold.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`genrekit.experiments.experiment.run_experiments`: ``input``, ``model``, ``protocol``,
        ``<metric>_mean`` and ``<metric>_std`` (NaN: no error bar).
    path : str or Path
        PNG file to write.
    metric : str, default "track_accuracy"
        ``track_accuracy``, ``segment_accuracy``, ``track_macro_f1``, ...
    chance : float, optional
        Draws a dashed line at this value (uniform guessing).

    Returns
    -------
    Path
        ``path``, written atomically.
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
    for k, protocol in enumerate(protocols):
        # test tracks of a genre absent from a fold's training side cannot be right
        ceiling = min((row.get("reachable_track_accuracy", 1.0) for row in rows if row["protocol"] == protocol),
                      default=1.0)
        if metric == "track_accuracy" and ceiling < 1.0:
            ax.axvline(ceiling, color=f"C{k}", linestyle=":", linewidth=1.2,
                       label=f"{protocol}: reachable ({ceiling:.0%})")
    ax.set_yticks(range(len(variants)), [f"{model} on {feature}" for feature, model in variants])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel=metric.replace("_", " ") + " (mean ± std over folds)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.6 / fig.get_figheight()), ncol=2,
              frameon=False)
    return _save(fig, path)


def plot_audio(
    samples: np.ndarray,
    sr: int,
    path: str | Path,
    *,
    logmel: np.ndarray,
    mfcc: np.ndarray,
    hop_length: int,
    taggram: np.ndarray | None = None,
    tags: Sequence[str] = (),
    tag_times: np.ndarray | None = None,
    tag_hop: float = 1.0,
    top_tags: int = 10,
    offset: float = 0.0,
    title: str | None = None,
    band_frequencies: np.ndarray | None = None,
) -> Path:
    """Waveform, log-mel spectrogram, MFCC and musicnn taggram of one clip, stacked on one time axis.

    The MFCC panel shows each coefficient standardised over time (z-scores).

    Parameters
    ----------
    samples : np.ndarray
        Mono audio ``(n,)`` at ``sr`` Hz.
    sr : int
        Sample rate in Hz.
    path : str or Path
        PNG file to write.
    logmel : np.ndarray
        ``(n_mels, frames)`` in dB.
    mfcc : np.ndarray
        ``(n_mfcc, frames)``.
    hop_length : int
        Samples between the frames of ``logmel`` and ``mfcc``.
    taggram : np.ndarray, optional
        ``(n_patches, n_tags)`` tag probabilities; the ``top_tags`` tags with the highest mean
        are drawn, best first.
    tags : sequence of str
        Tag names, the columns of ``taggram``.
    tag_times : np.ndarray, optional
        ``(n_patches,)`` centre of each patch in seconds from the start of ``samples``.
    tag_hop : float, default 1.0
        Seconds between patches (the width of a taggram cell).
    top_tags : int, default 10
        Number of tags drawn.
    offset : float, default 0.0
        Time of the first sample in the file, for the axis labels (seconds).
    title : str, optional
        Figure title.
    band_frequencies : np.ndarray, optional
        ``(n_mels,)`` centre frequency of each log-mel band in Hz, for the axis labels.

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    panels = 4 if taggram is not None else 3
    fig, axes = _figure(panels, 1, figsize=(11, 2.1 * panels + 0.6), sharex=True,
                        gridspec_kw={"height_ratios": [0.7, 1.2, 0.9, 1.1][:panels]})
    duration = len(samples) / sr
    times = offset + np.arange(len(samples)) / sr
    low, high, centres = _envelope(samples, times)
    axes[0].fill_between(centres, low, high, color="C0", linewidth=0)
    axes[0].set(ylabel="amplitude", ylim=(-1.02, 1.02), title=title or "")
    frame_extent = (offset, offset + mfcc.shape[1] * hop_length / sr)
    image = axes[1].imshow(logmel, origin="lower", aspect="auto", cmap="magma",
                           extent=(*frame_extent, 0, logmel.shape[0]))
    if band_frequencies is not None:
        ticks = np.linspace(0, logmel.shape[0] - 1, 5).round().astype(int)
        axes[1].set_yticks(ticks + 0.5, [_hz(band_frequencies[i]) for i in ticks])
    axes[1].set(ylabel="log-mel (Hz)" if band_frequencies is not None else "mel band")
    fig.colorbar(image, ax=axes[1], pad=0.01, label="dB")
    # each coefficient standardised over time: c0 (the level) would otherwise swamp the colours
    spread = mfcc.std(axis=1, keepdims=True)
    standardised = (mfcc - mfcc.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0)
    image = axes[2].imshow(standardised, origin="lower", aspect="auto", cmap="coolwarm", vmin=-3, vmax=3,
                           extent=(*frame_extent, 0, mfcc.shape[0]))
    axes[2].set(ylabel="MFCC")
    fig.colorbar(image, ax=axes[2], pad=0.01, label="z-score")
    if taggram is not None:
        order = np.argsort(-taggram.mean(axis=0), kind="stable")[:top_tags]
        start = offset + (tag_times[0] if tag_times is not None and len(tag_times) else 0.0) - tag_hop / 2
        image = axes[3].imshow(taggram[:, order].T, aspect="auto", cmap="Greens", vmin=0, vmax=1,
                               interpolation="nearest",
                               extent=(start, start + tag_hop * len(taggram), len(order) - 0.5, -0.5))
        axes[3].set_yticks(range(len(order)), [tags[i] for i in order], fontsize=8)
        axes[3].set(ylabel="musicnn tags")
        fig.colorbar(image, ax=axes[3], pad=0.01, label="probability")
    fig.colorbar(image, ax=axes[0], pad=0.01).ax.set_visible(False)  # as wide as the panels below
    axes[-1].set(xlabel="time (s)", xlim=(offset, offset + duration))
    return _save(fig, path, dpi=90)  # spectrograms compress poorly: keep the file small


def plot_file(
    audio_path: str | Path,
    path: str | Path,
    *,
    offset: float = 0.0,
    duration: float | None = 30.0,
    sr: int = 22050,
    n_mels: int = 128,
    n_mfcc: int = 20,
    musicnn: str | None = "MSD_musicnn",
) -> Path:
    """:func:`plot_audio` of an audio file: decodes it and computes every panel.

    Parameters
    ----------
    audio_path : path
        Any file :func:`genrekit.audio.load_audio` reads.
    path : path
        PNG file to write.
    offset, duration : float
        Seconds to show (default: the first 30 s; ``duration=None``: to the end).
    sr : int
        Rate for the waveform, log-mel (``n_mels`` bands) and MFCC (``n_mfcc``), hop 512.
    musicnn : str or None
        Pretrained tagger for the taggram (1 s hop, musicnn's own overlap); None leaves it out.

    Returns
    -------
    Path
        ``path``, written atomically.

    Raises
    ------
    AudioError
        The file cannot be decoded.
    """
    import torch

    from genrekit.audio.decode import load_audio
    from genrekit.features.spectral import MFCC, LogMel, mel_frequencies

    audio = load_audio(audio_path, sr, offset=offset, duration=duration)
    batch = torch.from_numpy(audio.samples)[None]
    hop_length = 512
    with torch.inference_mode():
        logmel = LogMel(sr=sr, n_mels=n_mels, hop_length=hop_length)(batch)[0].numpy()
        mfcc = MFCC(sr=sr, n_mfcc=n_mfcc, hop_length=hop_length)(batch)[0].numpy()
    taggram = tags = times = None
    if musicnn:
        from genrekit.features.musicnn.embedding import HOP_LENGTH, SAMPLE_RATE
        from genrekit.features.musicnn.network import HOP_1S_FRAMES
        from genrekit.features.musicnn.tags import tag_samples
        from genrekit.features.musicnn.weights import load_musicnn

        model = load_musicnn(musicnn)
        samples_16k = load_audio(audio_path, SAMPLE_RATE, offset=offset, duration=duration).samples
        taggram, starts = tag_samples(samples_16k, model, hop_frames=HOP_1S_FRAMES)
        tags, times = list(model.tags), starts + 1.5  # patch centres: each patch spans 3 s
    name = Path(audio_path).name
    shown = f"{offset:g}-{offset + audio.duration:g} s" if offset else f"first {audio.duration:.1f} s"
    tag_hop = HOP_1S_FRAMES * HOP_LENGTH / SAMPLE_RATE if musicnn else 1.0
    return plot_audio(audio.samples, sr, path, logmel=logmel, mfcc=mfcc, hop_length=hop_length, taggram=taggram,
                      tags=tags or (), tag_times=times, tag_hop=tag_hop, offset=offset, title=f"{name} ({shown})",
                      band_frequencies=mel_frequencies(n_mels + 2, 0.0, sr / 2)[1:-1])  # band centres


def _hz(frequency: float) -> str:
    return f"{frequency / 1000:.1f}k" if frequency >= 1000 else f"{frequency:.0f}"


def _envelope(samples: np.ndarray, times: np.ndarray, bins: int = 2000):
    """Min and max of the samples in ``bins`` time bins: draws long signals quickly."""
    if len(samples) <= 2 * bins:
        return samples, samples, times
    edges = np.linspace(0, len(samples), bins + 1).astype(int)
    low = np.minimum.reduceat(samples, edges[:-1])
    high = np.maximum.reduceat(samples, edges[:-1])
    return low, high, times[(edges[:-1] + edges[1:]) // 2]


def plot_genre_counts(labels: Sequence[str], clips: Sequence[int], minutes: Sequence[float],
                      path: str | Path) -> Path:
    """Clips and minutes of audio per genre, side by side.

    Parameters
    ----------
    labels : sequence of str
        Genres, one bar each, top to bottom.
    clips : sequence of int
        Number of clips of each genre.
    minutes : sequence of float
        Minutes of audio of each genre.
    path : str or Path
        PNG file to write.

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    fig, (left, right) = _figure(1, 2, figsize=(10, 0.6 + 0.32 * len(labels)), sharey=True)
    positions = np.arange(len(labels))
    left.barh(positions, clips, color="C0")
    right.barh(positions, minutes, color="C1")
    left.set_yticks(positions, labels)
    left.invert_yaxis()
    left.set(xlabel="clips", title="clips per genre")
    right.set(xlabel="minutes", title="minutes of audio per genre")
    for ax, values in ((left, clips), (right, minutes)):
        ax.grid(axis="x", alpha=0.3)
        for y, value in zip(positions, values):
            ax.text(value, y, f" {value:g}" if isinstance(value, int) else f" {value:.1f}", va="center", fontsize=8)
    return _save(fig, path)


def plot_genre_histogram(values_by_genre: dict, path: str | Path, *, xlabel: str, title: str,
                         bins: int = 30) -> Path:
    """Histogram of one value per clip (duration, level, ...), stacked and coloured by genre.

    Parameters
    ----------
    values_by_genre : dict of str to sequence of float
        Genre -> the value of each of its clips.
    path : str or Path
        PNG file to write.
    xlabel, title : str
        Axis label (with the unit) and figure title.
    bins : int, default 30
        Number of bins between the smallest and the largest value.

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    fig, ax = _figure(figsize=(9, 3.6))
    genres = list(values_by_genre)
    values = [np.asarray(values_by_genre[g], dtype=np.float64) for g in genres]
    everything = np.concatenate(values) if values else np.zeros(0)
    low, high = (everything.min(), everything.max()) if everything.size else (0.0, 1.0)
    if high - low < 1e-6:  # all equal (GTZAN durations): a narrow range around the value
        low, high = low - 0.5, high + 0.5
    colours = [_genre_colour(i) for i in range(len(genres))]
    ax.hist(values, bins=np.linspace(low, high, bins + 1), stacked=True, label=genres, color=colours)
    ax.set(xlabel=xlabel, ylabel="clips", title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_mean_spectra(spectra: dict, frequencies: np.ndarray, path: str | Path) -> Path:
    """Mean log-mel spectrum of each genre: one line per genre over the mel band frequencies.

    Parameters
    ----------
    spectra : dict of str to np.ndarray
        Genre -> mean spectrum ``(n_mels,)`` in dB.
    frequencies : np.ndarray
        ``(n_mels,)`` band centres in Hz (log-scaled axis).
    path : str or Path
        PNG file to write.

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    fig, ax = _figure(figsize=(9, 4))
    for i, (genre, spectrum) in enumerate(spectra.items()):
        ax.plot(frequencies, spectrum, color=_genre_colour(i), label=genre, linewidth=1.4)
    ax.set_xscale("log")
    ax.set(xlabel="frequency (Hz, mel band centres)", ylabel="mean level (dB)",
           title="mean log-mel spectrum per genre")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_embedding_map(maps: dict, labels: Sequence[str], path: str | Path, *, title: str) -> Path:
    """2-D maps of embeddings, one panel per method, points coloured by genre.

    Parameters
    ----------
    maps : dict of str to np.ndarray
        Method name (``"PCA"``, ``"t-SNE"``) -> ``(n, 2)`` coordinates.
    labels : sequence of str
        Genre of each of the ``n`` points.
    path : str or Path
        PNG file to write.
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    genres = sorted(set(labels))
    labels = np.asarray(labels)
    fig, axes = _figure(1, len(maps), figsize=(5.2 * len(maps) + 1.6, 4.8), squeeze=False)
    for ax, (method, points) in zip(axes[0], maps.items()):
        for i, genre in enumerate(genres):
            chosen = labels == genre
            ax.scatter(points[chosen, 0], points[chosen, 1], s=18, color=_genre_colour(i), label=genre,
                       alpha=0.85, edgecolors="none")
        ax.set(title=method, xticks=[], yticks=[])
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    return _save(fig, path)


def _genre_colour(index: int):
    import matplotlib

    return matplotlib.colormaps["tab10" if index < 10 else "tab20"](index % 20)
