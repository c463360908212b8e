"""musicnn embedding sequences: one vector per 3 s patch of a longer segment, in time order."""

import importlib.metadata

import numpy as np
import pytest
import torch

from genrekit.features.musicnn.embedding import (
    file_logmel,
    logmel_patches,
    musicnn_embeddings,
)
from genrekit.features.musicnn.network import HOP_1S_FRAMES
from genrekit.features.registry import build_feature, feature_spec


def _musicnn_installed() -> bool:
    try:
        importlib.metadata.distribution("musicnn")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _musicnn_installed(), reason="musicnn weights not installed")


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(0)
    t = np.arange(7 * 16000) / 16000
    chirp = 0.2 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.02 * rng.normal(size=t.size)
    return chirp.astype(np.float32)


@pytest.mark.parametrize("patch_hop, hop_frames", [(1.0, 62), (3.0, 187)])
def test_sequence_is_musicnn_on_each_patch(audio, patch_hop, hop_frames):
    module = build_feature({"name": "musicnn-sequence", "layer": "penultimate", "patch_hop": patch_hop})
    batch = torch.from_numpy(np.stack([audio, audio[::-1].copy()]))
    with torch.no_grad():
        sequence = module(batch)
    patches, _ = logmel_patches(file_logmel(audio), hop_frames)
    expected = musicnn_embeddings(patches.numpy(), "MSD_musicnn", "penultimate")
    assert sequence.shape == (2, 200, len(expected))
    np.testing.assert_allclose(sequence[0].numpy().T, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(sequence[0], sequence[1])  # rows are separate clips


def test_spec_round_trip_and_bad_hop():
    module = build_feature({"name": "musicnn-sequence", "model": "MSD_musicnn", "layer": "taggram", "patch_hop": 1.0})
    spec = feature_spec(module)
    assert spec["name"] == "musicnn-sequence" and spec["patch_hop"] == 1.0 and spec["layer"] == "taggram"
    assert feature_spec(build_feature(spec)) == spec
    assert module.hop_frames == HOP_1S_FRAMES + 1  # int(1 s * 16000 / 256) = 62; musicnn's own overlap uses 61
    with pytest.raises(Exception, match="patch_hop"):
        build_feature({"name": "musicnn-sequence", "patch_hop": 0.001})
