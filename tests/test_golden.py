"""Recorded values: feature cache keys recorded before the package moved into subpackages (commit
a02983c) must not change (cached features stay valid), and the bundled default model must give
the answers recorded when it became the only bundled model (tests/data/golden-predictions.json)."""

import json
from pathlib import Path

import pytest

from genrekit.data.cache import FEATURE_VERSION, _digest
from genrekit.data.extract import feature_cache_key
from genrekit.features.registry import resolve_feature

DATA = Path(__file__).parent / "data"


def _cases():
    return json.loads((DATA / "golden-cache-keys.json").read_text())


@pytest.mark.parametrize("case", _cases()["cases"], ids=lambda c: f"{c['spec']['name']}-{c['segment']['hop']}")
def test_feature_cache_keys_are_unchanged(case):
    golden = _cases()
    assert FEATURE_VERSION == golden["feature_version"]
    resolved, _ = resolve_feature(case["spec"], case["sample_rate"])
    assert resolved == case["resolved"]
    key = feature_cache_key(resolved, case["sample_rate"], case["segment"])
    assert _digest(golden["identity"], key, FEATURE_VERSION) == case["digest"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default"])
def test_bundled_models_give_the_recorded_predictions(gtzan_mini, name):
    from genrekit import load_model

    recorded = json.loads((DATA / "golden-predictions.json").read_text())["models"][name]
    model = load_model(name)
    for clip, expected in recorded.items():
        result = model.predict(str(gtzan_mini / clip), segments=True, top_k=10).to_dict()
        assert result["genre"] == expected["genre"], clip
        got = {t["genre"]: t["probability"] for t in result["top"]}
        assert got == pytest.approx(expected["top"], abs=2e-5), clip
        assert [[s["start"], s["end"], s["genre"]] for s in result["segments"]] == expected["segments"], clip
