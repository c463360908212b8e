"""Exploratory data report: what a labelled dataset holds, as a Markdown page with figures.

:func:`data_report` decodes every clip once and writes ``OUT/data-report.md`` with figures in
``OUT/images/<dataset>-*.png``: clips, minutes and artists per genre, histograms of duration and
level, the mean log-mel spectrum of each genre, and a 2-D map (PCA and t-SNE) of the clips'
pretrained musicnn embeddings coloured by genre, with how often a clip's nearest neighbour in
that space shares its genre, with and without neighbours by the same artist.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from genrekit.utils import atomic_write_text, track

logger = logging.getLogger(__name__)

__all__ = ["ClipStatistics", "clip_statistics", "clip_embeddings", "embedding_maps", "neighbour_agreement",
           "data_report"]


#: The embedding of the map: MSD musicnn's penultimate layer, 3 s segments, mean per clip.
EMBEDDING_SPEC = {"name": "musicnn", "model": "MSD_musicnn", "layer": "penultimate"}


EMBEDDING_SEGMENT = {"window": 3.0, "hop": 3.0, "last": "pad"}


@dataclass
class ClipStatistics:
    """Per-clip numbers of a dataset.

    Attributes
    ----------
    tracks : list of Track
        The clips that could be decoded, in the order of the arrays.
    duration : np.ndarray
        ``(n_clips,)`` seconds.
    level, peak : np.ndarray
        ``(n_clips,)`` RMS and peak level in dBFS.
    spectrum : np.ndarray
        ``(n_clips, n_mels)`` mean log-mel level in dB.
    frequencies : np.ndarray
        ``(n_mels,)`` the bands' centres in Hz.
    failed : list of (Track, str)
        Clips that could not be decoded, and why.
    """

    tracks: list
    duration: np.ndarray
    level: np.ndarray
    peak: np.ndarray
    spectrum: np.ndarray
    frequencies: np.ndarray
    failed: list


def clip_statistics(tracks: Sequence, *, sr: int = 22050, n_mels: int = 64) -> ClipStatistics:
    """Decode each clip and measure duration, RMS and peak level and mean log-mel spectrum.

    Parameters
    ----------
    tracks : sequence of Track
    sr : int, default 22050
        Decoding rate in Hz.
    n_mels : int, default 64
        Mel bands of the spectrum.

    Returns
    -------
    ClipStatistics
    """
    import torch

    from genrekit.audio.decode import load_audio
    from genrekit.errors import AudioError
    from genrekit.features.spectral import LogMel, mel_frequencies

    logmel = LogMel(sr=sr, n_mels=n_mels)
    kept, rows, spectra, failed = [], [], [], []
    for item in track(tracks, "decoding clips", total=len(tracks)):
        try:
            audio = load_audio(item.path, sr)
        except AudioError as exc:
            failed.append((item, str(exc)))
            continue
        samples = audio.samples.astype(np.float64)
        rms = np.sqrt(np.mean(samples**2)) if samples.size else 0.0
        peak = np.max(np.abs(samples)) if samples.size else 0.0
        with torch.inference_mode():
            spectra.append(logmel(torch.from_numpy(audio.samples)[None])[0].mean(dim=1).numpy())
        rows.append((audio.duration, _dbfs(rms), _dbfs(peak)))
        kept.append(item)
    values = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return ClipStatistics(kept, values[:, 0], values[:, 1], values[:, 2],
                          np.array(spectra).reshape(len(kept), n_mels),
                          mel_frequencies(n_mels + 2, 0.0, sr / 2)[1:-1], failed)


def _dbfs(value: float) -> float:
    return float(20 * np.log10(max(value, 1e-10)))


def clip_embeddings(tracks: Sequence, *, cache_dir: str | None = None) -> tuple[list, np.ndarray]:
    """Mean musicnn penultimate embedding of each clip's 3 s segments, from the feature cache.

    Uses the same spec, rate and segmentation as training on musicnn features, so clips already
    seen by ``genrekit train`` or ``genrekit experiment run`` are not recomputed.

    Parameters
    ----------
    tracks : sequence of Track
    cache_dir : str or None
        Feature cache (``None``: the default, ``""``: none).

    Returns
    -------
    tracks : list of Track
        The decodable tracks.
    embeddings : np.ndarray
        float64, shape ``(n, 200)``.
    """
    from genrekit.data.extract import extract_features, open_cache
    from genrekit.evaluation.metrics import voiced_mask
    from genrekit.features.registry import resolve_feature

    spec, module = resolve_feature(EMBEDDING_SPEC, 16000)
    features = extract_features(tracks, [spec], sample_rate=16000, segment=EMBEDDING_SEGMENT,
                                cache=open_cache(cache_dir), modules=[module], description="musicnn embeddings")
    features = features.select(voiced_mask(features.silent, features.track_index))
    vectors = features.inputs[0]
    sums = np.zeros((len(features.tracks), vectors.shape[1]))
    np.add.at(sums, features.track_index, vectors)
    counts = np.bincount(features.track_index, minlength=len(features.tracks))[:, None]
    return features.tracks, sums / np.maximum(counts, 1)


def embedding_maps(embeddings: np.ndarray, seed: int = 0) -> tuple[dict, dict]:
    """2-D PCA and t-SNE coordinates of standardised embeddings, and notes on each.

    Parameters
    ----------
    embeddings : np.ndarray
        Shape ``(n, dim)``.
    seed : int, default 0
        Seeds PCA's solver and t-SNE.

    Returns
    -------
    maps : dict
        ``{"PCA": (n, 2), "t-SNE": (n, 2)}``; t-SNE is left out below 5 points.
    notes : dict
        ``pca_variance`` (share of variance the two components keep) and ``perplexity`` (t-SNE's).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(embeddings)
    pca = PCA(n_components=2, random_state=seed).fit(x)
    maps = {"PCA": pca.transform(x)}
    notes = {"pca_variance": float(pca.explained_variance_ratio_.sum())}
    if len(x) >= 5:
        perplexity = float(min(30.0, (len(x) - 1) / 3))
        maps["t-SNE"] = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        notes["perplexity"] = perplexity
    return maps, notes


def neighbour_agreement(embeddings: np.ndarray, labels: Sequence[str], groups: Sequence[str | None]) -> dict:
    """Share of clips whose nearest other clip (cosine) has the same label.

    ``"any"`` lets the neighbour be by the same artist; ``"other_artist"`` only takes neighbours
    by another artist (clips of unknown artist count as their own); the gap shows how much of
    the similarity is the artist's (or the recording's) rather than the genre's.

    Parameters
    ----------
    embeddings : np.ndarray
        Shape ``(n, dim)``.
    labels : sequence of str
        Genre of each clip.
    groups : sequence of str or None
        Artist of each clip (None: unknown).

    Returns
    -------
    dict
        ``any`` and ``other_artist`` shares (NaN when no clip has an eligible neighbour), and
        ``any_clips``, ``other_artist_clips``: how many clips had one.
    """
    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    labels = np.asarray(labels)
    keys = np.array([g if g is not None else f"\0{i}" for i, g in enumerate(groups)], dtype=object)
    same_artist = keys[:, None] == keys[None, :]
    result = {}
    for name, mask in (("any", np.zeros_like(same_artist)), ("other_artist", same_artist)):
        masked = np.where(mask, -np.inf, similarity)
        eligible = np.isfinite(masked).any(axis=1)
        nearest = masked.argmax(axis=1)
        agree = labels[nearest] == labels
        result[name] = float(agree[eligible].mean()) if eligible.any() else float("nan")
        result[f"{name}_clips"] = int(eligible.sum())
    return result


def data_report(
    dataset,
    out: str | Path,
    *,
    kind: str = "auto",
    cache_dir: str | None = None,
    limit_per_label: int | None = None,
    embeddings: bool = True,
    seed: int = 0,
    command: str | None = None,
) -> Path:
    """Write ``out/data-report.md`` and its figures (``out/images/<name>-*.png``); returns the page.

    Parameters
    ----------
    dataset : Dataset or path
        Opened with :func:`genrekit.data.datasets.open_dataset` (``kind``) when a path.
    out : path
        Output folder.
    cache_dir : str, optional
        Feature cache for the musicnn embeddings (``""``: none).
    limit_per_label : int, optional
        Look at no more than this many clips per genre (large datasets).
    embeddings : bool
        Compute the musicnn map (the slow part: about a second per clip on one CPU core when
        not cached).
    command : str, optional
        Recorded on the page.

    Returns
    -------
    Path
        ``out/data-report.md``.

    Raises
    ------
    DatasetError
        The dataset has no tracks.
    """
    from genrekit.data.datasets import Dataset, open_dataset
    from genrekit.data.splits import limit_tracks
    from genrekit.errors import DatasetError
    from genrekit.evaluation.plots import (
        plot_embedding_map,
        plot_genre_counts,
        plot_genre_histogram,
        plot_mean_spectra,
    )

    if not isinstance(dataset, Dataset):
        dataset = open_dataset(dataset, kind)
    tracks = limit_tracks(dataset.tracks, limit_per_label)
    if not tracks:
        raise DatasetError(f"{dataset.root}: no tracks to report on")
    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.name).strip("-") or "dataset"

    def figure(name: str) -> Path:
        return images / f"{slug}-{name}.png"

    stats = clip_statistics(tracks)
    if not stats.tracks:
        raise DatasetError(f"{dataset.root}: none of the {len(tracks)} clips could be decoded")
    labels = sorted({t.label for t in stats.tracks})
    by_label = {label: np.array([t.label == label for t in stats.tracks]) for label in labels}
    table = _genre_table(stats, labels, by_label)
    plot_genre_counts(labels, [row["clips"] for row in table], [row["minutes"] for row in table], figure("counts"))
    plot_genre_histogram({l: stats.duration[m] for l, m in by_label.items()}, figure("durations"),
                         xlabel="duration (s)", title="clip durations")
    plot_genre_histogram({l: stats.level[m] for l, m in by_label.items()}, figure("levels"),
                         xlabel="RMS level (dBFS)", title="clip loudness (RMS level of the whole clip)")
    plot_mean_spectra({l: stats.spectrum[m].mean(axis=0) for l, m in by_label.items()}, stats.frequencies,
                      figure("spectra"))
    embedding_section = []
    if embeddings:
        embedded, vectors = clip_embeddings(stats.tracks, cache_dir=cache_dir)
        maps, notes = embedding_maps(vectors, seed)
        genres = [t.label for t in embedded]
        plot_embedding_map(maps, genres, figure("musicnn-map"),
                           title="clips in musicnn (MSD) embedding space, coloured by genre")
        agreement = neighbour_agreement(vectors, genres, [t.group for t in embedded])
        embedding_section = _embedding_markdown(figure("musicnn-map"), out, notes, agreement, len(embedded))
    page = out / "data-report.md"
    atomic_write_text(page, _markdown(dataset, stats, table, labels, figure, out, embedding_section, tracks,
                                      limit_per_label, command))
    logger.info(f"wrote {page} and {len(list(images.glob(slug + '-*.png')))} figures in {images}")
    if stats.failed:
        logger.warning(f"{len(stats.failed)} clips could not be decoded (first: {stats.failed[0][1]})")
    return page


def _genre_table(stats: ClipStatistics, labels: Sequence[str], by_label: dict) -> list[dict]:
    rows = []
    for label in labels:
        chosen = [t for t, keep in zip(stats.tracks, by_label[label]) if keep]
        artists = Counter(t.group for t in chosen if t.group is not None)
        rows.append({
            "genre": label,
            "clips": len(chosen),
            "minutes": float(stats.duration[by_label[label]].sum() / 60),
            "artists": len(artists),
            "unknown_artist": sum(t.group is None for t in chosen),
            "top_artist": artists.most_common(1)[0] if artists else None,
            "level": float(np.median(stats.level[by_label[label]])),
        })
    return rows


def _markdown(dataset, stats, table, labels, figure, out, embedding_section, tracks, limit, command) -> str:
    def rel(path: Path) -> str:
        return path.relative_to(out).as_posix()

    total_minutes = stats.duration.sum() / 60
    known = sum(t.group is not None for t in stats.tracks)
    lines = [
        f"# Data report: {dataset.name}",
        "",
        *([f"```sh\n{command}\n```", ""] if command else []),
        f"- Dataset: `{dataset.root}` ({dataset.kind}), {len(stats.tracks)} clips"
        + (f" (at most {limit} per genre, of {len(dataset.tracks)})" if limit else "")
        + f", {len(labels)} genres, {total_minutes:.1f} minutes of audio",
        f"- Artist known for {known} of {len(stats.tracks)} clips"
        + (f", {len({t.group for t in stats.tracks if t.group is not None})} artists" if known else ""),
    ]
    if stats.failed:
        lines.append(f"- {len(stats.failed)} clips could not be decoded (first: {stats.failed[0][1]})")
    problems = [p for p in dataset.problems if p.severity != "info"]
    if problems:
        lines.append(f"- {len(problems)} problems reported by `genrekit data check` (first: {problems[0]})")
    lines += [
        "",
        "## Clips per genre",
        "",
        "| genre | clips | minutes | artists | most clips by one artist | median level (dBFS) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for row in table:
        top = f"{row['top_artist'][0]} ({row['top_artist'][1]})" if row["top_artist"] else "-"
        artists = f"{row['artists']}" + (f" (+{row['unknown_artist']} unknown)" if row["unknown_artist"] else "")
        lines.append(f"| {row['genre']} | {row['clips']} | {row['minutes']:.1f} | {artists} | {top} "
                     f"| {row['level']:.1f} |")
    single = [row["genre"] for row in table if row["artists"] == 1 and not row["unknown_artist"]]
    if single:
        lines += ["", f"**{len(single)} genres come from a single artist** ({', '.join(single)}): a model can learn "
                  "the artist (voice, production, recording chain) instead of the genre, and artist-disjoint "
                  "splits leave these genres with no training clip at all when their artist is tested."]
    lines += [
        "", f"![clips and minutes per genre]({rel(figure('counts'))})", "",
        "## Durations and levels", "",
        f"Durations: min {stats.duration.min():.2f} s, median {np.median(stats.duration):.2f} s, "
        f"max {stats.duration.max():.2f} s. RMS level of whole clips: median {np.median(stats.level):.1f} dBFS "
        f"(range {stats.level.min():.1f} to {stats.level.max():.1f}); peaks reach {stats.peak.max():.1f} dBFS"
        + (f"; {int((stats.peak >= -0.1).sum())} clips peak within 0.1 dB of full scale" if (stats.peak >= -0.1).any()
           else "") + ".",
        "", f"![durations]({rel(figure('durations'))})", "", f"![levels]({rel(figure('levels'))})", "",
        "## Mean spectrum per genre", "",
        "The log-mel spectrum (64 bands, 22 050 Hz) averaged over time and over each genre's clips. Level "
        "differences between genres are partly production and recording era, which a model can exploit.",
        "", f"![mean log-mel spectrum per genre]({rel(figure('spectra'))})", "",
        *embedding_section,
    ]
    return "\n".join(lines) + "\n"


def _embedding_markdown(path: Path, out: Path, notes: dict, agreement: dict, n: int) -> list[str]:
    methods = "PCA" + (f" and t-SNE (perplexity {notes['perplexity']:.0f})" if "perplexity" in notes else "")
    lines = [
        "## musicnn embeddings", "",
        f"Each point is a clip: the mean of MSD musicnn's 200-dimensional penultimate layer over its 3 s "
        f"segments, standardised and mapped to 2-D by {methods}. The two PCA components keep "
        f"{notes['pca_variance']:.0%} of the variance.", "",
        f"![musicnn embedding map]({path.relative_to(out).as_posix()})", "",
        f"Nearest neighbour (cosine) of the same genre: {agreement['any']:.0%} of {agreement['any_clips']} clips; "
        f"counting only neighbours by another artist: {_pct(agreement['other_artist'])} of "
        f"{agreement['other_artist_clips']} clips.",
    ]
    if agreement["other_artist_clips"] and agreement["any"] - agreement["other_artist"] > 0.05:
        lines.append("The gap is the artist effect: clips of one artist sit together, so splits that put an "
                     "artist on both sides flatter a classifier.")
    return lines + [""]


def _pct(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.0%}"
