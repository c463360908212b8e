"""Pictures: the audio figure of `genrekit plot` and the data report of `genrekit data report`."""

import re

import numpy as np
import pytest
import soundfile as sf
from tones import GENRES, SR, make_tone_dataset, tone_track

from genrekit.apps.cli.main import main
from genrekit.evaluation import plots
from genrekit.experiments.data_report import (
    clip_statistics,
    data_report,
    embedding_maps,
    neighbour_agreement,
)


def _musicnn_installed() -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution("musicnn")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_musicnn = pytest.mark.skipif(not _musicnn_installed(), reason="musicnn weights not installed")


pytestmark = pytest.mark.usefixtures("quiet_single_thread")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """Tone clips of 1 s with 'artists' (two clips each) in a manifest."""
    folder = tmp_path_factory.mktemp("tones")
    make_tone_dataset(folder / "audio", tracks_per_genre=4, seconds=1.0)
    lines = ["path,label,artist"] + [f"audio/{g}/{g}-{i}.wav,{g},{g}-{i // 2}" for g in GENRES for i in range(4)]
    (folder / "tracks.csv").write_text("\n".join(lines) + "\n")
    return folder / "tracks.csv"


@pytest.fixture
def captured(monkeypatch):
    """Figures handed to plots._save, kept open for inspection (the PNG is still written)."""
    figures = []
    real_save = plots._save

    def keep(fig, path, **options):
        figures.append({"axes": [(ax.get_ylabel(), [t.get_text() for t in ax.get_yticklabels()])
                                 for ax in fig.axes if ax.get_visible()],
                        "title": fig.axes[0].get_title()})
        return real_save(fig, path, **options)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_audio_figure_has_its_panels_and_top_tags(tmp_path, captured):
    rng = np.random.default_rng(0)
    samples = tone_track(440.0, 2.0, rng)
    taggram = np.zeros((4, 5), np.float32)
    taggram[:, 3], taggram[:, 1], taggram[:, 4] = 0.9, 0.5, 0.1
    path = plots.plot_audio(samples, SR, tmp_path / "a.png", logmel=rng.normal(size=(32, 20)),
                            mfcc=rng.normal(size=(13, 20)), hop_length=800, taggram=taggram,
                            tags=["a", "b", "c", "d", "e"], tag_times=np.arange(4) * 0.5, tag_hop=0.5, top_tags=3,
                            title="clip")
    assert path.stat().st_size > 5000
    labels = [ylabel for ylabel, _ in captured[0]["axes"]]
    assert labels[:4] == ["amplitude", "mel band", "MFCC", "musicnn tags"]
    tags_axis = captured[0]["axes"][3][1]
    assert tags_axis == ["d", "b", "e"]  # the three tags with the highest mean, best first
    assert captured[0]["title"] == "clip"


def test_plot_file_command_draws_a_png(tmp_path, captured):
    clip = tmp_path / "tone.wav"
    sf.write(clip, tone_track(700.0, 2.0, np.random.default_rng(1)), SR)
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "plot", str(clip), "--out", str(tmp_path / "tone.png"), "--no-tags"])
    assert exit_info.value.code == 0
    assert (tmp_path / "tone.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [label for label, _ in captured[0]["axes"]][:3] == ["amplitude", "log-mel (Hz)", "MFCC"]
    assert "tone.wav" in captured[0]["title"]
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(tmp_path / "missing.wav")])
    assert exit_info.value.code == 1


@pytest.mark.slow
@needs_musicnn
def test_plot_file_with_taggram(tmp_path, captured):
    clip = tmp_path / "tone.wav"
    sf.write(clip, tone_track(300.0, 4.0, np.random.default_rng(2)), SR)
    plots.plot_file(clip, tmp_path / "tone.png")
    ylabel, tags = captured[0]["axes"][3]
    assert ylabel == "musicnn tags" and len(tags) == 10


def test_clip_statistics_measure_duration_and_level(tmp_path):
    from genrekit.data.datasets import Track

    path = tmp_path / "sine.wav"
    t = np.arange(int(1.5 * 22050)) / 22050
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), 22050)
    stats = clip_statistics([Track(path, "x", "sine")], n_mels=32)
    assert stats.duration[0] == pytest.approx(1.5, abs=1e-3)
    assert stats.level[0] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    assert stats.peak[0] == pytest.approx(20 * np.log10(0.5), abs=0.05)
    # the loudest mel band of the mean spectrum is the one around 1 kHz
    assert 700 < stats.frequencies[stats.spectrum[0].argmax()] < 1400


def test_neighbour_agreement_separates_artist_from_genre():
    # clips 0 and 1: one artist, genre a, identical; clip 2: another artist, genre b, close to them
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1]])
    result = neighbour_agreement(x, ["a", "a", "b"], ["p", "p", None])
    assert result["any"] == pytest.approx(2 / 3)  # 0 and 1 find each other; 2 finds genre a
    assert result["other_artist"] == 0.0  # without their artist, 0 and 1 find clip 2 (genre b)
    assert result["any_clips"] == result["other_artist_clips"] == 3
    lonely = neighbour_agreement(x[:2], ["a", "a"], ["p", "p"])
    assert np.isnan(lonely["other_artist"]) and lonely["other_artist_clips"] == 0


def test_embedding_maps_shapes():
    x = np.random.default_rng(0).normal(size=(12, 6))
    maps, notes = embedding_maps(x)
    assert maps["PCA"].shape == (12, 2) and maps["t-SNE"].shape == (12, 2)
    assert 0 < notes["pca_variance"] <= 1 and notes["perplexity"] < 12


def test_data_report_without_embeddings(tones, tmp_path):
    page = data_report(tones, tmp_path / "docs", embeddings=False, command="genrekit data report x")
    text = page.read_text()
    assert page == tmp_path / "docs" / "data-report.md"
    rows = {m[1]: m for m in re.finditer(r"^\| (\w+) \| (\d+) \| ([\d.]+) \| (\d+) ", text, re.M)}
    assert set(rows) == set(GENRES)
    for match in rows.values():
        assert match[2] == "4" and match[3] == "0.1" and match[4] == "2"  # 4 clips, 4 s, 2 artists
    for name in ("counts", "durations", "levels", "spectra"):
        image = tmp_path / "docs" / "images" / f"tracks-{name}.png"
        assert image.is_file() and f"(images/tracks-{name}.png)" in text
    assert "musicnn" not in text
    assert "genrekit data report x" in text


@pytest.mark.slow
@needs_musicnn
def test_data_report_with_embedding_map(tones, tmp_path):
    page = data_report(tones, tmp_path, cache_dir="")
    text = page.read_text()
    assert "(images/tracks-musicnn-map.png)" in text
    assert (tmp_path / "images" / "tracks-musicnn-map.png").is_file()
    assert re.search(r"Nearest neighbour \(cosine\) of the same genre: \d+% of 12 clips", text)


def test_data_report_command(tones, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "data", "report", str(tones), "--out", str(tmp_path), "--no-embeddings"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "data-report.md")
