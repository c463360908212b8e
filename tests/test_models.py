import json

import pytest
import torch

from genrekit.errors import ModelError
from genrekit.models.registry import (
    MODELS,
    build_model,
    count_parameters,
    model_summary,
)

N_CLASSES = 3


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- synthetic, separable data: the class decides where the energy is ----------------------


def band_patches(n, n_bins=16, n_frames=24, seed=0):
    """Spectrogram-like patches; class c has a loud band of rows at c * n_bins / N_CLASSES."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    x = torch.randn(n, n_bins, n_frames, generator=g)
    width = n_bins // N_CLASSES
    for i, c in enumerate(y.tolist()):
        x[i, c * width : (c + 1) * width] += 2.0
    return x, y


def sequences(n, n_features=8, n_steps=12, seed=0):
    """Feature sequences; class c raises feature c over the second half of the sequence."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    x = torch.randn(n, n_features, n_steps, generator=g)
    for i, c in enumerate(y.tolist()):
        x[i, c, n_steps // 2 :] += 2.0
    return x, y


def vectors(n, n_features=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    x = torch.randn(n, n_features, generator=g)
    x[torch.arange(n), y] += 3.0
    return x, y


def tones(n, n_samples=729, seed=0):
    """Waveforms: class c is a sine at a different frequency, random phase and gain, noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    t = torch.arange(n_samples, dtype=torch.float32)
    freq = torch.tensor([0.02, 0.09, 0.3])[y]
    phase = torch.rand(n, 1, generator=g) * 6.28
    gain = 0.5 + torch.rand(n, 1, generator=g)
    x = gain * torch.sin(freq[:, None] * t * 3.14159 + phase)
    return x + 0.1 * torch.randn(n, n_samples, generator=g), y


def pairs(n, seed=0):
    """Two inputs; the class is readable only from both (c = a + 2 * b, a in {0,1}, b in {0,1})."""
    (va, a), (vb, b) = vectors(n, 4, seed), vectors(n, 4, seed + 1)
    a, b = a % 2, b % 2
    va, vb = torch.randn(n, 4), torch.randn(n, 4)
    va[torch.arange(n), a] += 3.0
    vb[torch.arange(n), b] += 3.0
    y = a + 2 * b
    return [va, vb], y


CASES = {
    # name: (spec, data maker, n_classes)
    "cnn2d": ({"name": "cnn2d", "channels": [8, 8, 8], "hidden": 16, "dropout": 0.1}, band_patches, 3),
    "cnn2d-deep": ({"name": "cnn2d-deep", "channels": [8, 8, 16, 16, 16], "hidden": 16, "dropout": 0.1}, band_patches, 3),
    "lstm": ({"name": "lstm", "hidden_size": 16, "hidden": 16, "dropout": 0.1}, sequences, 3),
    "cnn1d": ({"name": "cnn1d", "channels": [16, 16], "hidden": 16, "dropout": 0.1}, sequences, 3),
    "mlp": ({"name": "mlp", "hidden": 32, "dropout": 0.1}, vectors, 3),
    "samplecnn": ({"name": "samplecnn", "channels": [8, 8, 8, 16, 16], "hidden": 16, "dropout": 0.1}, tones, 3),
    "parallel": (
        {"name": "parallel", "branches": [{"name": "mlp"}, {"name": "mlp"}], "hidden": 16, "dropout": 0.1},
        pairs,
        4,
    ),
}


def input_shape(x):
    return [list(t.shape[1:]) for t in x] if isinstance(x, list) else list(x.shape[1:])


def subset(x, index):
    return [t[index] for t in x] if isinstance(x, list) else x[index]


def fit(model, x, y, epochs, lr=0.01, batch_size=32):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    n = len(y)
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(n, generator=g).split(batch_size):
            loss = torch.nn.functional.cross_entropy(model(subset(x, index)), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_shape_and_rebuild(name):
    spec, make, n_classes = CASES[name]
    x, _ = make(5)
    torch.manual_seed(0)
    model = build_model(spec, n_classes, input_shape(x)).eval()
    logits = model(x)
    assert logits.shape == (5, n_classes)
    assert torch.isfinite(logits).all()
    assert count_parameters(model) > 0
    # the recorded spec is JSON-able and rebuilds a network that accepts the same weights
    rebuilt = build_model(json.loads(json.dumps(model.spec)), n_classes).eval()
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(x), logits)


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_learns_separable_data(name):
    spec, make, n_classes = CASES[name]
    x, y = make(192, seed=1)
    x_test, y_test = make(96, seed=2)
    torch.manual_seed(0)
    model = build_model(spec, n_classes, input_shape(x))
    fit(model, x, y, epochs=8)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    chance = 1 / n_classes
    assert accuracy > chance + 0.4, f"{name}: held-out accuracy {accuracy:.2f}"


def test_every_registered_network_is_tested():
    networks = {name for name in MODELS if not name.startswith("sklearn-")}
    assert networks == set(CASES)


def test_samplecnn_on_3s_segments_at_22050():
    model = build_model({"name": "samplecnn"}, 10).eval()
    assert model(torch.zeros(2, 66150)).shape == (2, 10)


def test_cnn2d_accepts_any_number_of_frames():
    model = build_model({"name": "cnn2d"}, 4, [20, 130]).eval()
    assert model(torch.randn(2, 20, 130)).shape == (2, 4)
    assert model(torch.randn(2, 20, 9)).shape == (2, 4)


def test_parameter_count_matches_layers():
    model = build_model({"name": "mlp", "hidden": 8}, 3, [5])
    # batch norm (5 + 5) + dense (5*8 + 8) + output (8*3 + 3)
    assert count_parameters(model) == 10 + 48 + 27
    assert model_summary(model) == "mlp (85 parameters)"


def test_default_model_spec_on_penultimate_features():
    model = build_model({"name": "mlp", "hidden": 256, "dropout": 0.3}, 10, [200]).eval()
    assert model(torch.randn(3, 200)).shape == (3, 10)
    assert model.spec == {"name": "mlp", "hidden": 256, "dropout": 0.3, "input_shape": [200]}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "transformer"}, "unknown architecture"),
        ({"hidden": 3}, "'name'"),
        ({"name": "mlp", "hiden": 3, "input_shape": [4]}, "hiden"),
        ({"name": "mlp"}, "input_shape"),
    ],
)
def test_bad_specs_raise_model_error(spec, message):
    with pytest.raises(ModelError, match=message):
        build_model(spec, 3)


def test_parallel_checks_number_of_inputs():
    model = build_model({"name": "parallel", "branches": [{"name": "mlp"}] * 2}, 3, [[4], [4]]).eval()
    with pytest.raises(ModelError, match="expects 2 inputs"):
        model([torch.randn(2, 4)])
