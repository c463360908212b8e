import multiprocessing
import os

import numpy as np
import pytest

from genrekit.apps.cli.main import main
from genrekit.data.cache import (
    FEATURE_VERSION,
    FeatureCache,
    default_cache_dir,
    file_identity,
)
from genrekit.errors import AudioMissingError

SPEC = {"name": "mfcc", "n_mfcc": 20, "sr": 22050}


class Counting:
    """A compute function that records how often it ran."""

    def __init__(self, value=None):
        self.calls = 0
        self.value = np.arange(12, dtype=np.float32).reshape(3, 4) if value is None else value

    def __call__(self):
        self.calls += 1
        return self.value + self.calls  # each run gives a different array: stale hits show up


@pytest.fixture
def audio(tmp_path):
    path = tmp_path / "song.wav"
    path.write_bytes(b"RIFF" + bytes(100))
    return path


@pytest.fixture
def cache(tmp_path):
    return FeatureCache(tmp_path / "cache")


def test_second_call_is_a_hit(cache, audio):
    compute = Counting()
    first = cache.get_or_compute(audio, SPEC, compute)
    second = cache.get_or_compute(audio, SPEC, compute)
    assert compute.calls == 1
    assert second.dtype == np.float32 and second.shape == (3, 4)
    np.testing.assert_array_equal(first, second)
    assert cache.info().entries == 1


def test_spec_key_order_does_not_matter_but_values_do(cache, audio):
    compute = Counting()
    cache.get_or_compute(audio, SPEC, compute)
    cache.get_or_compute(audio, dict(reversed(list(SPEC.items()))), compute)
    assert compute.calls == 1
    second = cache.get_or_compute(audio, {**SPEC, "n_mfcc": 13}, compute)
    assert compute.calls == 2 and second[0, 0] == 2
    cache.get_or_compute(audio, {**SPEC, "extra": None}, compute)
    assert compute.calls == 3


def test_feature_version_change_recomputes(tmp_path, audio):
    compute = Counting()
    FeatureCache(tmp_path / "c").get_or_compute(audio, SPEC, compute)
    FeatureCache(tmp_path / "c", version=FEATURE_VERSION + "-next").get_or_compute(audio, SPEC, compute)
    assert compute.calls == 2


def test_touch_invalidates(cache, audio):
    compute = Counting()
    cache.get_or_compute(audio, SPEC, compute)
    stat = audio.stat()
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache.get_or_compute(audio, SPEC, compute)[0, 0] == 2
    assert compute.calls == 2


def test_rewrite_invalidates(cache, audio):
    compute = Counting()
    cache.get_or_compute(audio, SPEC, compute)
    stat = audio.stat()
    audio.write_bytes(b"RIFF" + bytes(200))
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, new size
    cache.get_or_compute(audio, SPEC, compute)
    assert compute.calls == 2


def test_content_hash_mode(tmp_path, audio):
    cache = FeatureCache(tmp_path / "c", content_hash=True)
    compute = Counting()
    cache.get_or_compute(audio, SPEC, compute)
    stat = audio.stat()
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    moved = audio.rename(tmp_path / "moved.wav")
    cache.get_or_compute(moved, SPEC, compute)
    assert compute.calls == 1  # touch and move keep the content
    moved.write_bytes(b"RIFF" + bytes(99) + b"\x01")  # same size, same mtime, other bytes
    os.utime(moved, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    cache.get_or_compute(moved, SPEC, compute)
    assert compute.calls == 2
    assert "sha256" in file_identity(moved, content_hash=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "pickle"])
def test_corrupt_entry_is_recomputed(cache, audio, damage):
    compute = Counting()
    cache.get_or_compute(audio, SPEC, compute)
    entry = cache.entry_path(cache.key(audio, SPEC))
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[: len(data) - 8])
    elif damage == "garbage":
        entry.write_bytes(b"not an npy file at all" * 4)
    elif damage == "empty":
        entry.write_bytes(b"")
    else:  # an object array can only be loaded by unpickling, which the cache refuses
        np.save(entry, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    again = cache.get_or_compute(audio, SPEC, compute)
    assert compute.calls == 2 and again[0, 0] == 2
    np.testing.assert_array_equal(np.load(entry, allow_pickle=False), again)


def test_object_arrays_are_refused(cache, audio):
    with pytest.raises(TypeError, match="numeric"):
        cache.put(audio, SPEC, np.array([object()], dtype=object))


def test_missing_audio_file(cache, tmp_path):
    with pytest.raises(AudioMissingError):
        cache.get_or_compute(tmp_path / "nope.wav", SPEC, Counting())


def test_spec_must_be_json(cache, audio):
    with pytest.raises(TypeError, match="JSON"):
        cache.key(audio, {"window": np.hanning})


def test_file_changing_during_compute_is_not_stored(cache, audio):
    def compute():
        audio.write_bytes(b"RIFF" + bytes(300))
        return np.zeros(3)

    cache.get_or_compute(audio, SPEC, compute)
    assert cache.info().entries == 0


def test_unwritable_cache_still_computes(tmp_path, audio):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    cache = FeatureCache(blocker / "cache")
    compute = Counting()
    np.testing.assert_array_equal(cache.get_or_compute(audio, SPEC, compute), compute.value + 1)
    cache.get_or_compute(audio, SPEC, compute)
    assert compute.calls == 2


def test_info_and_clear_leave_foreign_files(cache, audio, tmp_path):
    for n in range(3):
        cache.put(audio, {**SPEC, "n": n}, np.zeros(n + 1))
    entry = cache.entry_path(cache.key(audio, {**SPEC, "n": 0}))
    (entry.parent / f".{entry.name}.abc.tmp").write_bytes(b"half")  # a crashed writer's leftover
    foreign = cache.root / "notes.txt"
    foreign.write_text("mine")
    info = cache.info()
    assert info.entries == 3
    assert info.size_bytes == sum(cache.entry_path(cache.key(audio, {**SPEC, "n": n})).stat().st_size for n in range(3))
    assert cache.clear() == 3
    assert cache.info().entries == 0
    assert foreign.read_text() == "mine"
    assert sorted(p.name for p in cache.root.iterdir()) == ["notes.txt"]


def test_default_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GENREKIT_CACHE_DIR", str(tmp_path / "gk"))
    assert default_cache_dir() == tmp_path / "gk" / "features"
    assert FeatureCache().root == tmp_path / "gk" / "features"


def test_cli_cache_info_and_clear(cache, audio, capsys):
    cache.put(audio, SPEC, np.zeros(1000))
    with pytest.raises(SystemExit) as exit_info:
        main(["cache", "info", "--cache-dir", str(cache.root)])
    assert exit_info.value.code == 0
    assert f"{cache.root}: 1 entries" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["cache", "clear", "--cache-dir", str(cache.root)])
    assert exit_info.value.code == 0
    assert cache.info().entries == 0


# --- several processes filling the same entry ------------------------------------------------


def _big_array():
    return np.sin(np.arange(300_000, dtype=np.float64))  # ~2.4 MB: writes take long enough to overlap


def _worker(args):
    root, audio, rounds = args
    cache = FeatureCache(root)
    sums = [float(cache.get_or_compute(audio, SPEC, _big_array).sum())]
    for _ in range(rounds):
        cache.put(audio, SPEC, _big_array())  # keep replacing the entry while others read it
        # once written the entry must always load: a reader meeting half a file would get None
        cached = cache.get(audio, SPEC)
        sums.append(None if cached is None else float(cached.sum()))
    return sums


def test_parallel_workers_always_read_whole_arrays(cache, audio):
    expected = float(_big_array().sum())
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_worker, [(cache.root, audio, 15)] * 4)
    assert [value for sums in results for value in sums] == [expected] * 64
    assert cache.info().entries == 1
    leftovers = [p for p in cache.root.rglob("*") if p.is_file() and not p.name.endswith(".npy")]
    assert leftovers == []
