"""musicnn port: layer-by-layer and end-to-end parity with the original TF models, plus the
fast formulation, the front end, weight caching, embeddings and ``genrekit tags``.

Parity tolerances. The network references (``network_<MODEL>.npz``) were computed by TF in
float32; summation order differs between TF and torch, so each layer is compared with an
absolute tolerance of ``2e-5 x max|reference layer|`` (observed worst case 7e-6 relative, on
``cnn3``, after three residual layers). In absolute terms: taggram ~1e-5, penultimate ~1e-4,
timbral/temporal ~1e-3, cnn1..3 and the pools up to ~3e-3 (the largest values are ~128).
End to end (audio file in) the resampling is the same soxr HQ as librosa's, and the rare
float16 rounding flips of the mel power move a log-mel value by ~4e-4; tolerance
``1e-4 x max|reference layer|`` (observed worst 3e-5 relative), and 5e-5 on probabilities.
"""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytest
import torch
from conftest import GTZAN_MINI, MUSICNN_FIXTURES

from genrekit.errors import ModelError, UsageError
from genrekit.features.musicnn import network
from genrekit.features.musicnn import weights as weight_files
from genrekit.features.musicnn.embedding import (
    MusicnnEmbedding,
    MusicnnFrontEnd,
    file_logmel,
    logmel_patches,
    musicnn_embeddings,
)
from genrekit.features.musicnn.network import (
    LAYERS,
    MODELS,
    PATCH_FRAMES,
    Musicnn,
    MusicnnVgg,
)
from genrekit.features.musicnn.weights import bundled_weights, convert_checkpoint, convert_installed, load_musicnn

MUSICNN_MODELS = ["MSD_musicnn", "MTT_musicnn"]  # the ones with TF reference outputs
NETWORK_LAYERS = ["taggram", "penultimate", "mean_pool", "max_pool", "timbral", "temporal", "cnn1", "cnn2", "cnn3"]
E2E_CLIPS = {
    "synthetic": MUSICNN_FIXTURES / "synthetic.flac",
    "blues.00000": GTZAN_MINI / "blues" / "blues.00000.flac",
    "classical.00000": GTZAN_MINI / "classical" / "classical.00000.flac",
    "hiphop.00000": GTZAN_MINI / "hiphop" / "hiphop.00000.flac",
}


def _musicnn_installed() -> bool:
    try:
        importlib.metadata.distribution("musicnn")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_weights = pytest.mark.skipif(
    not _musicnn_installed(), reason="musicnn weights not installed (pip install --no-deps musicnn==0.1.0)"
)
needs_fixtures = pytest.mark.skipif(
    not MUSICNN_FIXTURES.is_dir(), reason="../shared/fixtures/musicnn is not beside this checkout"
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("musicnn-cache")


@pytest.fixture(scope="module")
def models(cache_dir):
    """The musicnn models at hand: MSD_musicnn from the weights that ship with genrekit, and
    MTT_musicnn where the musicnn package is installed (a test needing it skips otherwise)."""

    class Available(dict):
        def __missing__(self, name):
            pytest.skip(f"{name}: musicnn weights not installed (pip install --no-deps musicnn==0.1.0)")

    installed = _musicnn_installed()
    return Available({name: load_musicnn(name, cache_dir=cache_dir) for name in MUSICNN_MODELS
                      if installed or bundled_weights(name) is not None})


def _assert_layer_close(name, actual, reference, relative):
    actual = actual.detach().numpy().reshape(reference.shape)
    tolerance = relative * float(np.abs(reference).max())
    error = float(np.abs(actual - reference).max())
    assert error <= tolerance, f"{name}: max abs error {error:.2e} > {tolerance:.2e}"


# --------------------------------------------------------------------------------------------
# network parity with the TF references


@needs_fixtures
@pytest.mark.parametrize("name", MUSICNN_MODELS)
@pytest.mark.parametrize("path", ["forward", "reference"])
def test_every_layer_matches_tensorflow(models, name, path):
    reference = np.load(MUSICNN_FIXTURES / f"network_{name}.npz")
    model = models[name]
    with torch.inference_mode():
        outputs = getattr(model, path)(torch.from_numpy(reference["input_logmel"]))
    for layer in NETWORK_LAYERS:
        _assert_layer_close(layer, outputs[layer], reference[layer], 2e-5)


@needs_fixtures
def test_cheap_tolerance_stays_close(cache_dir):
    if not _musicnn_installed():
        pytest.skip("musicnn weights not installed")
    reference = np.load(MUSICNN_FIXTURES / "network_MTT_musicnn.npz")
    model = load_musicnn("MTT_musicnn", tolerance=1e-2, cache_dir=cache_dir)
    with torch.inference_mode():
        outputs = model(torch.from_numpy(reference["input_logmel"]))
    # each skipped filter is within 1e-2 of its constant for any input: a bound, not the error
    assert np.abs(outputs["taggram"].numpy() - reference["taggram"]).max() < 1e-4
    _assert_layer_close("max_pool", outputs["max_pool"], reference["max_pool"], 1e-3)
    assert not np.array_equal(outputs["timbral"].numpy(), reference["timbral"])


@needs_weights
def test_tags_are_musicnn_configuration_order(models):
    assert models["MSD_musicnn"].tags[:3] == ("rock", "pop", "alternative")
    assert models["MTT_musicnn"].tags[:3] == ("guitar", "classical", "slow")
    assert all(len(model.tags) == 50 for model in models.values())


# --------------------------------------------------------------------------------------------
# end to end: audio file -> front end -> network, against musicnn's extractor()


@pytest.fixture(scope="module")
def clip_logmel():
    from genrekit.audio.decode import load_audio

    cache = {}

    def get(clip):
        if clip not in cache:
            if not E2E_CLIPS[clip].is_file():
                pytest.skip(f"{E2E_CLIPS[clip]} is not beside this checkout")
            cache[clip] = file_logmel(load_audio(E2E_CLIPS[clip], sr=16000).samples)
        return cache[clip]

    return get


E2E_CASES = [(clip, "no-overlap", PATCH_FRAMES) for clip in E2E_CLIPS] + [
    (clip, "overlap-1s", network.HOP_1S_FRAMES) for clip in ("synthetic", "blues.00000")
]


@needs_fixtures
@pytest.mark.slow
@pytest.mark.parametrize("clip, overlap, hop", E2E_CASES)
@pytest.mark.parametrize("name", MUSICNN_MODELS)
def test_end_to_end_matches_musicnn_extractor(models, clip_logmel, clip, name, overlap, hop):
    reference = np.load(MUSICNN_FIXTURES / f"e2e_{clip}_{name}_{overlap}.npz")
    patches, starts = logmel_patches(clip_logmel(clip), hop)
    with torch.inference_mode():
        outputs = models[name](patches)
    assert list(reference["tags"]) == list(models[name].tags)
    assert outputs["taggram"].shape == reference["taggram"].shape
    assert np.abs(outputs["taggram"].numpy() - reference["taggram"]).max() < 5e-5
    for layer in ("mean_pool", "max_pool"):
        _assert_layer_close(layer, outputs[layer], reference[layer], 1e-4)
    # musicnn's extractor() concatenates the first batch's `penultimate` for every later
    # batch (a bug in its loop): only the first row of the reference is the real one
    _assert_layer_close("penultimate", outputs["penultimate"][:1], reference["penultimate"][:1], 1e-4)
    np.testing.assert_allclose(starts[1] - starts[0] if len(starts) > 1 else hop * 0.016, hop * 0.016)


# --------------------------------------------------------------------------------------------
# the fast formulation against the literal port, on random weights (no musicnn needed)


def _random_musicnn(seed: int = 0, dead_fraction: float = 0.5) -> Musicnn:
    """Random weights with musicnn's quirks: negative and ~0 batch-norm scales."""
    generator = torch.Generator().manual_seed(seed)
    model = Musicnn([f"tag{i}" for i in range(7)], "random")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / fan_in**0.5)
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                gamma = torch.randn(n, generator=generator)
                gamma[torch.rand(n, generator=generator) < dead_fraction] = 1e-12
                module.weight.copy_(gamma)
                module.bias.copy_(torch.randn(n, generator=generator))
                module.running_mean.copy_(torch.rand(n, generator=generator))
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.1)
    return model.eval()


@pytest.mark.parametrize("frames", [187, 40])
def test_fast_forward_equals_reference(frames):
    model = _random_musicnn()
    patches = 3 * torch.rand(2, frames, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        fast, slow = model(patches), model.reference(patches)
    assert set(fast) == set(slow)
    for layer in NETWORK_LAYERS:
        _assert_layer_close(layer, fast[layer], slow[layer].numpy(), 1e-5)
    assert fast["timbral"].shape == (2, frames, 408) and fast["temporal"].shape == (2, frames, 153)


def test_dead_filters_are_constant_and_skipped():
    model = _random_musicnn(dead_fraction=0.5)
    scale, shift = network._bn_affine(model.input_bn)
    reach = network._input_bound(scale, shift) / model.tolerance
    with torch.no_grad():
        live = network._live_filters(model.timbral[0], reach)[0]
        dead_gamma = model.timbral[0]["bn"].weight.abs() < 1e-9
    assert 0 < len(live) < 204
    assert not dead_gamma[live].any()  # a filter whose batch norm scale is ~0 is never computed
    patches = torch.rand(1, 187, 96)
    with torch.inference_mode():
        timbral = model(patches)["timbral"][0, :, :204]
    dead = torch.nonzero(dead_gamma).flatten()
    assert torch.all(timbral[:, dead] == timbral[:1, dead])  # constant over time


def _tf_same_conv(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """1-D cross-correlation with TF's "same" padding: the extra zero goes at the end."""
    before = (len(kernel) - 1) // 2
    padded = np.pad(signal, (before, len(kernel) - 1 - before))
    return np.array([padded[t : t + len(kernel)] @ kernel for t in range(len(signal))])


@pytest.mark.parametrize("path", ["forward", "reference"])
def test_temporal_blocks_use_tensorflow_same_padding(path):
    model = _random_musicnn(dead_fraction=0.0)
    with torch.no_grad():
        model.input_bn.weight.fill_(1.0), model.input_bn.bias.fill_(0.0)
        model.input_bn.running_mean.fill_(0.0), model.input_bn.running_var.fill_(1.0 - 1e-3)
    patches = torch.zeros(1, 187, 96)
    patches[0, :, 5] = torch.rand(187, generator=torch.Generator().manual_seed(3)) + 1.0
    with torch.inference_mode():
        temporal = getattr(model, path)(patches)["temporal"][0].numpy()
    for block_index, block in enumerate(model.temporal):
        conv, (scale, shift) = block["conv"], network._bn_affine(block["bn"])
        kernel, bias = conv.weight[0, 0, :, 0].detach().numpy(), float(conv.bias[0].detach())
        band_values = []
        for band_signal in (patches[0, :, 5].numpy(), np.zeros(187)):  # only band 5 is not silent
            z = np.maximum(_tf_same_conv(band_signal, kernel) + bias, 0.0)
            band_values.append(float(scale[0].detach()) * z + float(shift[0].detach()))
        expected = np.maximum(*band_values)  # max over the 96 bands
        np.testing.assert_allclose(temporal[:, 51 * block_index], expected, rtol=1e-4, atol=1e-4)


def _as_tf_checkpoint(model: torch.nn.Module, name: str) -> dict[str, np.ndarray]:
    """The TF variables musicnn's models.py would hold for these weights (HWIO kernels...)."""
    state, weights = model.state_dict(), {}
    for tf, layer, kind in weight_files._tf_layers(name):
        if kind == "bn":
            for tf_field, field in weight_files._TF_BN_FIELDS.items():
                weights[f"{tf}/{tf_field}"] = state[f"{layer}.{field}"].numpy()
            continue
        kernel = state[f"{layer}.weight"].numpy()
        if kind == "conv1d":
            kernel = kernel.transpose(2, 1, 0)[:, :, None, :]
        elif kind == "conv2d":
            kernel = kernel.transpose(2, 3, 1, 0)
        else:
            kernel = kernel.T
        weights[f"{tf}/kernel"], weights[f"{tf}/bias"] = kernel, state[f"{layer}.bias"].numpy()
    return weights


def test_convert_checkpoint_layouts():
    source = _random_musicnn(dead_fraction=0.0)
    weights = _as_tf_checkpoint(source, "MSD_musicnn")
    weights["dense/kernel/Adam"] = np.ones((1506, 200), np.float32)  # optimizer slots are ignored
    assert weights["conv2d/kernel"].shape == (7, 38, 1, 204)  # TF HWIO
    assert weights["conv2d_2/kernel"].shape == (128, 1, 1, 51)
    assert weights["conv2d_5/kernel"].shape == (7, 561, 1, 64)
    assert weights["batch_normalization_10/gamma"].shape == (200,)
    converted = Musicnn(source.tags)
    converted.load_state_dict(convert_checkpoint(weights, "MSD_musicnn"))
    for key, value in source.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    del weights["dense_1/bias"]
    with pytest.raises(ModelError, match="dense_1/bias"):
        convert_checkpoint(weights, "MSD_musicnn")


def test_vgg_checkpoint_layout():
    source = MusicnnVgg(MODELS["MTT_vgg"], "MTT_vgg")
    weights = _as_tf_checkpoint(source, "MTT_vgg")
    assert weights["2CNN/kernel"].shape == (3, 3, 128, 128) and weights["dense/kernel"].shape == (256, 50)
    converted = MusicnnVgg(MODELS["MTT_vgg"], "MTT_vgg")
    converted.load_state_dict(convert_checkpoint(weights, "MTT_vgg"))
    with torch.inference_mode():
        outputs = converted(torch.rand(2, 187, 96))
    assert outputs["taggram"].shape == (2, 50)
    assert outputs["pool1"].shape == (2, 92, 48, 128) and outputs["pool5"].shape == (2, 2, 1, 128)
    with pytest.raises(ValueError, match="187 frames"):
        converted(torch.rand(1, 180, 96))


@needs_weights
@needs_fixtures
@pytest.mark.slow
def test_vgg_agrees_with_musicnn_reference(tmp_path, clip_logmel):
    """No TF outputs exist for the VGG models: check that MTT_vgg ranks tags like TF's MTT_musicnn.

    Measured correlation of the clips' mean taggrams: 0.96-0.98; flattening pool5 in torch's
    NCHW order instead of TF's NHWC gives 0.3-0.5.
    """
    model = load_musicnn("MTT_vgg", cache_dir=tmp_path)
    for clip in ("classical.00000", "hiphop.00000"):
        reference = np.load(MUSICNN_FIXTURES / f"e2e_{clip}_MTT_musicnn_no-overlap.npz")["taggram"].mean(axis=0)
        with torch.inference_mode():
            taggram = model(logmel_patches(clip_logmel(clip))[0])["taggram"].numpy().mean(axis=0)
        assert np.corrcoef(taggram, reference)[0, 1] > 0.9, clip
        assert np.argmax(taggram) == np.argmax(reference), clip


# --------------------------------------------------------------------------------------------
# front end and patches


def test_front_end_follows_musicnn_recipe():
    from genrekit.features.spectral import mel_filterbank

    t = np.arange(48000) / 16000
    rng = np.random.default_rng(0)
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(48000)).astype(np.float32)
    # librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96), by hand
    padded = np.pad(audio.astype(np.float64), 256)
    frames = np.lib.stride_tricks.sliding_window_view(padded, 512)[::256]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = (power @ mel_filterbank(16000, 512, 96).T.astype(np.float64)).astype(np.float32)
    expected = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    assert expected.shape == (188, 96)  # a genrekit 3 s segment: 188 frames, the last dropped
    patches = MusicnnFrontEnd()(torch.from_numpy(audio)[None])
    assert patches.shape == (1, 187, 96)
    error = np.abs(patches[0].numpy() - expected[:187])
    assert np.median(error) < 1e-6
    assert error.max() < 2e-3  # a float16 rounding flip: 1 ulp of 2**-10 relative -> ~4e-4


def test_front_end_clips_overloaded_audio_instead_of_inf():
    loud = 200.0 * torch.sin(torch.arange(48000) * 0.05)[None]  # far beyond full scale
    patches = MusicnnFrontEnd()(loud)
    assert torch.isfinite(patches).all()
    assert float(patches.max()) == pytest.approx(network.LOGMEL_MAX, abs=1e-4)


def test_front_end_rejects_short_rows():
    with pytest.raises(ValueError, match="47616 samples"):
        MusicnnFrontEnd()(torch.zeros(2, 40000))


def test_file_logmel_chunks_are_seamless():
    audio = np.random.default_rng(1).standard_normal(16000 * 4).astype(np.float32) * 0.1
    whole = MusicnnFrontEnd().logmel(torch.from_numpy(audio))
    assert torch.equal(file_logmel(audio, chunk_frames=37), whole)


def test_logmel_patches_follow_musicnn_batch_data():
    logmel = torch.arange(626 * 96, dtype=torch.float32).reshape(626, 96)  # 10 s at 16 kHz
    patches, starts = logmel_patches(logmel, 61)
    assert patches.shape == (len(range(0, 626 - 187 + 1, 61)), 187, 96)
    assert torch.equal(patches[2], logmel[122:309])
    np.testing.assert_allclose(starts[:3], [0.0, 61 * 0.016, 122 * 0.016])
    patches, _ = logmel_patches(logmel[:100], 187)  # shorter than a patch: padded with silence
    assert patches.shape == (1, 187, 96) and torch.all(patches[0, 100:] == 0)
    with pytest.raises(UsageError):
        logmel_patches(logmel, 0)


# --------------------------------------------------------------------------------------------
# weights cache


def test_unknown_model_name():
    with pytest.raises(UsageError, match="MSD_musicnn"):
        load_musicnn("MSD_vggish")


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_files, "_checkpoint_prefix", lambda name: None)
    for name in ("MTT_musicnn", "MSD_vgg", "MTT_vgg"):
        with pytest.raises(ModelError, match=rf"{name} not found: .*pip install --no-deps musicnn==0\.1\.0"):
            load_musicnn(name, cache_dir=tmp_path)
    with pytest.raises(ModelError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        convert_installed("MSD_musicnn")


def test_default_backbone_ships_with_genrekit(tmp_path, monkeypatch):
    """MSD_musicnn loads without the musicnn package and without converting or caching anything."""
    monkeypatch.setattr(weight_files, "_checkpoint_prefix", lambda name: None)
    shipped = bundled_weights("MSD_musicnn")
    assert shipped is not None and shipped.parent.name == "musicnn" and shipped.parent.parent.name == "assets"
    assert [bundled_weights(name) for name in ("MTT_musicnn", "MSD_vgg", "MTT_vgg")] == [None] * 3
    model = load_musicnn("MSD_musicnn", cache_dir=tmp_path)
    assert model.tags[:3] == ("rock", "pop", "alternative") and not model.training
    assert list(tmp_path.iterdir()) == []


@needs_weights
def test_shipped_weights_equal_a_fresh_conversion():
    """The shipped file is what scripts/bundle_musicnn_weights.py makes from the installed package."""
    from safetensors import safe_open

    state, metadata = convert_installed("MSD_musicnn")
    with safe_open(bundled_weights("MSD_musicnn"), "pt") as shipped:
        assert shipped.metadata() == metadata
        assert sorted(shipped.keys()) == sorted(state)
        for key, value in state.items():
            assert torch.equal(shipped.get_tensor(key), value), key


@needs_weights
def test_conversion_is_cached_and_refreshed(tmp_path, monkeypatch):
    model = load_musicnn("MTT_musicnn", cache_dir=tmp_path)
    weights, meta = tmp_path / "MTT_musicnn.safetensors", tmp_path / "MTT_musicnn.json"
    recorded = json.loads(meta.read_text())
    assert recorded["model"] == "MTT_musicnn" and len(recorded["source_sha256"]) == 64
    assert "ISC" in recorded["source"]

    def no_conversion(*args):
        raise AssertionError("converted again although the cache is current")

    with monkeypatch.context() as patch:
        patch.setattr(weight_files, "_convert_to_cache", no_conversion)
        again = load_musicnn("MTT_musicnn", cache_dir=tmp_path)
        # usable without the package once converted
        patch.setattr(weight_files, "_checkpoint_prefix", lambda name: None)
        load_musicnn("MTT_musicnn", cache_dir=tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)

    meta.write_text(json.dumps({**recorded, "source_sha256": "0" * 64}))  # package changed
    load_musicnn("MTT_musicnn", cache_dir=tmp_path)
    assert json.loads(meta.read_text())["source_sha256"] == recorded["source_sha256"]


@needs_weights
def test_corrupt_cached_weights_are_reported(tmp_path, monkeypatch):
    load_musicnn("MTT_musicnn", cache_dir=tmp_path)
    (tmp_path / "MTT_musicnn.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ModelError, match="unusable musicnn weights"):
        load_musicnn("MTT_musicnn", cache_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# embeddings as features


@pytest.fixture
def cached_models(models, monkeypatch):
    """Make the module-level model cache use this test module's converted models."""
    monkeypatch.setattr(weight_files, "_MODELS_IN_USE", dict(models))
    monkeypatch.setattr(weight_files, "load_musicnn", lambda name, **kw: models[name])


@needs_weights
def test_embeddings_from_audio_and_from_patches(cached_models, models):
    audio = np.random.default_rng(2).standard_normal((3, 48000)).astype(np.float32) * 0.1
    for kind, dim in LAYERS.items():
        from_audio = musicnn_embeddings(audio[:1], "MTT_musicnn", kind)
        assert from_audio.shape == (1, dim) and from_audio.dtype == np.float32
    patches = MusicnnFrontEnd()(torch.from_numpy(audio))
    from_patches = musicnn_embeddings(patches.numpy(), "MTT_musicnn", "penultimate")
    from_audio = musicnn_embeddings(audio, "MTT_musicnn", "penultimate", batch_size=2)
    np.testing.assert_allclose(from_patches, from_audio, atol=1e-5)
    with torch.inference_mode():
        direct = models["MTT_musicnn"](patches[1:2])["penultimate"].numpy()
    np.testing.assert_allclose(from_patches[1:2], direct, atol=1e-5)
    with pytest.raises(UsageError, match="penultimate"):
        musicnn_embeddings(audio, "MTT_musicnn", "logits")
    with pytest.raises(UsageError, match="taggram"):
        musicnn_embeddings(audio, "MTT_vgg", "penultimate")


@needs_weights
def test_embedding_module_is_a_frozen_feature(cached_models):
    from genrekit.features.registry import build_feature, feature_spec

    module = build_feature({"name": "musicnn", "model": "MSD_musicnn", "layer": "mean_pool"})
    assert isinstance(module, MusicnnEmbedding) and module.sr == 16000 and module.dim == 753
    assert feature_spec(module)["model"] == "MSD_musicnn"
    module.train()
    assert not module.network.training  # batch norms keep their running statistics
    audio = torch.randn(2, 48000) * 0.1
    features = module(audio)
    assert features.shape == (2, 753) and not features.requires_grad
    np.testing.assert_allclose(features.numpy(), musicnn_embeddings(audio.numpy(), "MSD_musicnn", "mean_pool"), atol=1e-5)


# --------------------------------------------------------------------------------------------
# genrekit tags


def _run_tags(capsys, *args) -> tuple[int, str, str]:
    from genrekit.apps.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["tags", *map(str, args)])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@needs_weights
@needs_fixtures
@pytest.mark.slow
def test_tags_command(cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("GENREKIT_CACHE_DIR", str(cache_dir.parent / "cli-cache"))
    monkeypatch.setattr(weight_files, "_MODELS_IN_USE", {})
    clip = MUSICNN_FIXTURES / "synthetic.flac"
    code, out, err = _run_tags(capsys, clip, "--model", "MTT_musicnn", "--top", "3", "--json")
    assert code == 0, err
    data = json.loads(out)
    reference = np.load(MUSICNN_FIXTURES / "e2e_synthetic_MTT_musicnn_no-overlap.npz")
    expected = [str(reference["tags"][i]) for i in np.argsort(-reference["taggram"].mean(axis=0))[:3]]
    assert [t["tag"] for t in data["tags"]] == expected
    assert len(data["segments"]) == len(reference["taggram"])
    for segment, row in zip(data["segments"], reference["taggram"]):
        assert segment["tags"][0]["tag"] == str(reference["tags"][np.argmax(row)])
    code, out, _ = _run_tags(capsys, clip, "-m", "MTT_musicnn", "-n", "2")
    assert code == 0 and f"whole file: {expected[0]}" in out
    assert len(out.splitlines()) == 2 + len(reference["taggram"])


def test_tags_command_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENREKIT_CACHE_DIR", str(tmp_path / "cache"))
    code, _, err = _run_tags(capsys, tmp_path / "nope.wav", "-m", "MSD_vggish")
    assert code == 2 and "unknown musicnn model" in err
    code, _, err = _run_tags(capsys, tmp_path / "nope.wav")
    assert code == 1 and "nope.wav" in err and "Traceback" not in err
