from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GTZAN_MINI = SHARED / "data" / "gtzan-mini"
MUSICNN_FIXTURES = SHARED / "fixtures" / "musicnn"


@pytest.fixture(scope="session")
def gtzan_mini() -> Path:
    if not GTZAN_MINI.is_dir():
        pytest.skip("../shared/data/gtzan-mini is not beside this checkout")
    return GTZAN_MINI
