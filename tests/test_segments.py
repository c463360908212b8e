"""genrekit.segments: window positions, padding policy, and streaming equal to in-memory cutting."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from genrekit.audio.decode import load_audio
from genrekit.audio.segments import MIN_TAIL, Segments, segment_samples
from genrekit.audio.windows import read_windows
from genrekit.errors import AudioMissingError, UsageError


def reference_windows(n, width, step, last):
    """Window (start, real length) pairs by walking the clip, independent of the module's arithmetic."""
    windows, start = [], 0
    while start < n:
        if start + width <= n:
            windows.append((start, width))
        else:
            covered = windows[-1][0] + width if windows else 0
            if not windows or (last == "pad" and n - covered >= MIN_TAIL * width):
                windows.append((start, n - start))
            break
        start += step
    return windows


def concatenate(batches):
    return Segments(
        samples=np.concatenate([b.samples for b in batches]),
        starts=np.concatenate([b.starts for b in batches]),
        ends=np.concatenate([b.ends for b in batches]),
        padded=np.concatenate([b.padded for b in batches]),
    )


def assert_same_segments(actual, expected, time_shift=0.0):
    np.testing.assert_array_equal(actual.samples, expected.samples)
    np.testing.assert_allclose(actual.starts, expected.starts + time_shift, rtol=0, atol=1e-9)
    np.testing.assert_allclose(actual.ends, expected.ends + time_shift, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(actual.padded, expected.padded)


def test_seven_seconds_in_three_second_windows():
    sr = 100
    samples = np.arange(7 * sr, dtype=np.float32)
    segments = segment_samples(samples, sr)
    assert len(segments) == 3 and segments.samples.shape == (3, 300)
    assert segments.samples.dtype == np.float32
    np.testing.assert_array_equal(segments.starts, [0.0, 3.0, 6.0])
    np.testing.assert_array_equal(segments.ends, [3.0, 6.0, 7.0])
    np.testing.assert_array_equal(segments.padded, [False, False, True])
    np.testing.assert_array_equal(segments.samples[1], samples[300:600])
    np.testing.assert_array_equal(segments.samples[2, :100], samples[600:])
    assert not segments.samples[2, 100:].any()


def test_drop_discards_the_short_tail():
    segments = segment_samples(np.ones(700, np.float32), 100, last="drop")
    np.testing.assert_array_equal(segments.starts, [0.0, 3.0])
    assert not segments.padded.any()


def test_a_sliver_after_the_last_window_is_not_padded_into_a_window():
    # GTZAN clips last 30.01 s: the 0.01 s left over must not become a 99.7 % silent window
    segments = segment_samples(np.ones(int(30.01 * 100), np.float32), 100, window=3.0)
    assert len(segments) == 10 and not segments.padded.any()
    kept = segment_samples(np.ones(int(30.9 * 100), np.float32), 100, window=3.0)
    assert len(kept) == 11 and kept.padded[-1] and kept.ends[-1] == pytest.approx(30.9)


def test_an_exact_multiple_has_no_padded_window():
    segments = segment_samples(np.ones(900, np.float32), 100)
    assert len(segments) == 3 and not segments.padded.any()
    assert segments.ends[-1] == 9.0


@pytest.mark.parametrize("last", ["pad", "drop"])
def test_a_clip_shorter_than_a_window_is_always_padded(last):
    segments = segment_samples(np.full(120, 0.5, np.float32), 100, window=3.0, last=last)
    assert len(segments) == 1 and segments.padded[0]
    assert (segments.starts[0], segments.ends[0]) == (0.0, 1.2)
    assert segments.samples[0, :120].tolist() == [0.5] * 120 and not segments.samples[0, 120:].any()


def test_overlapping_windows():
    samples = np.arange(700, dtype=np.float32)
    segments = segment_samples(samples, 100, window=3.0, hop=1.5)
    np.testing.assert_array_equal(segments.starts, [0.0, 1.5, 3.0, 4.5])
    np.testing.assert_array_equal(segments.ends, [3.0, 4.5, 6.0, 7.0])
    np.testing.assert_array_equal(segments.padded, [False, False, False, True])
    np.testing.assert_array_equal(segments.samples[1], samples[150:450])


def test_a_hop_longer_than_the_window_skips_audio():
    segments = segment_samples(np.arange(10, dtype=np.float32), 1, window=2, hop=4)
    np.testing.assert_array_equal(segments.samples, [[0, 1], [4, 5], [8, 9]])
    assert not segments.padded.any()


def test_no_samples_give_no_windows():
    segments = segment_samples(np.zeros(0, np.float32), 22050)
    assert len(segments) == 0 and segments.samples.shape == (0, 66150)


def test_windows_match_a_walk_over_the_clip():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, width, step = int(rng.integers(0, 60)), int(rng.integers(1, 12)), int(rng.integers(1, 15))
        last = str(rng.choice(["pad", "drop"]))
        samples = rng.standard_normal(n).astype(np.float32)
        segments = segment_samples(samples, 1, window=width, hop=step, last=last)
        expected = reference_windows(n, width, step, last)
        assert [(int(s), int(round(e - s))) for s, e in zip(segments.starts, segments.ends)] == expected
        for row, (start, length), padded in zip(segments.samples, expected, segments.padded):
            np.testing.assert_array_equal(row[:length], samples[start: start + length])
            assert not row[length:].any()
            assert padded == (length < width)


@pytest.mark.parametrize("options", [{"window": 0.0}, {"window": -1.0}, {"hop": 0.0}, {"last": "keep"},
                                     {"window": 0.001}])
def test_bad_options_are_usage_errors(options):
    with pytest.raises(UsageError):
        segment_samples(np.ones(1000, np.float32), 100, **options)


def test_two_dimensional_samples_are_rejected():
    with pytest.raises(ValueError, match="mono"):
        segment_samples(np.ones((2, 1000), np.float32), 100)


# --- streaming ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory):
    """20.4 s of stereo noise at 44.1 kHz: many 1.3 s decode blocks."""
    path = tmp_path_factory.mktemp("stream") / "long.flac"
    rng = np.random.default_rng(5)
    sf.write(path, rng.uniform(-0.5, 0.5, (int(44100 * 20.4), 2)).astype(np.float32), 44100)
    return path


@pytest.mark.parametrize("options", [
    {},
    {"hop": 1.0},
    {"window": 2.5, "hop": 0.7, "last": "drop"},
    {"window": 1.0, "hop": 2.2},
    {"last": "drop"},
])
def test_read_windows_equal_segment_samples_of_load_audio(long_flac, options):
    expected = segment_samples(load_audio(long_flac, 22050).samples, 22050, **options)
    batches = list(read_windows(long_flac, 22050, block_duration=1.3, batch_size=4, **options))
    assert all(len(batch) == 4 for batch in batches[:-1]) and 1 <= len(batches[-1]) <= 4
    assert_same_segments(concatenate(batches), expected)


def test_read_windows_count_time_from_the_start_of_the_file(long_flac):
    excerpt = load_audio(long_flac, 16000, offset=2.25, duration=10.0).samples
    expected = segment_samples(excerpt, 16000, hop=2.0)
    batches = list(read_windows(long_flac, 16000, hop=2.0, offset=2.25, duration=10.0, block_duration=0.9))
    assert_same_segments(concatenate(batches), expected, time_shift=2.25)
    assert batches[0].starts[0] == 2.25 and batches[-1].ends[-1] == pytest.approx(12.25)


@pytest.mark.parametrize("last", ["pad", "drop"])
def test_streaming_a_clip_shorter_than_a_window(tmp_path, last):
    path = tmp_path / "short.wav"
    sf.write(path, np.full(4410, 0.25, np.float32), 44100)
    (batch,) = list(read_windows(path, 22050, last=last, block_duration=0.03))
    assert len(batch) == 1 and batch.padded[0]
    assert batch.ends[0] == pytest.approx(0.1)


def test_read_windows_report_a_missing_file_at_once(tmp_path):
    with pytest.raises(AudioMissingError):
        read_windows(tmp_path / "missing.flac", 22050)
    with pytest.raises(UsageError):
        read_windows(tmp_path / "missing.flac", 22050, batch_size=0)


def write_sparse_hour(path, sr=44100, channels=2, seconds=3600):
    """A 16-bit WAV header plus an hour of zeros left as a sparse hole, with a few noise patches.

    Costs almost nothing on disk and in time, yet decodes like any other hour-long file.
    """
    with sf.SoundFile(path, "w", sr, channels, subtype="PCM_16") as handle:
        handle.write(np.zeros((1, channels), np.int16))
    header = path.read_bytes()[:-channels * 2]
    data_bytes = sr * channels * 2 * seconds
    riff = bytearray(header)
    riff[4:8] = (len(header) - 8 + data_bytes).to_bytes(4, "little")
    riff[-4:] = data_bytes.to_bytes(4, "little")  # the data chunk's size is the header's last field
    noise = (np.random.default_rng(0).uniform(-0.3, 0.3, (2 * sr, channels)) * 32767).astype("<i2").tobytes()
    with open(path, "wb") as handle:
        handle.write(riff)
        for at_second in (0, seconds // 2, seconds - 2):
            handle.seek(len(riff) + at_second * sr * channels * 2)
            handle.write(noise)
        handle.truncate(len(riff) + data_bytes)


@pytest.mark.slow
def test_an_hour_of_stereo_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "hour.wav"
    write_sparse_hour(path)
    assert sf.info(path).frames == 3600 * 44100
    script = textwrap.dedent(f"""
        import json, resource
        import numpy as np
        from genrekit.audio.windows import read_windows

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        count, loud, last_end = 0, [], None
        for batch in read_windows({str(path)!r}, 22050, batch_size=32):
            count += len(batch)
            loud += [float(s) for s, rows in zip(batch.starts, batch.samples) if np.abs(rows).max() > 0.1]
            last_end = float(batch.ends[-1])
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"count": count, "loud": loud, "last_end": last_end, "growth_kib": after - before}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["count"] == 1200
    assert report["last_end"] == pytest.approx(3600.0)
    assert report["loud"] == [0.0, 1800.0, 3597.0]
    # A whole-file load would hold > 600 MB (samples at 22050 Hz plus the decoded blocks).
    assert report["growth_kib"] < 250 * 1024, f"peak RSS grew by {report['growth_kib'] / 1024:.0f} MiB"
