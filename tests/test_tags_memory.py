"""``genrekit tags`` streams a long file like ``genrekit predict``: its memory does not grow with
the file's length (issue 13, item 8).

The musicnn network is replaced by a cheap stand-in in the measured process, so that the test
measures decoding, log-mel frames and patching (what grew with the file) without needing the
weights or minutes of inference; the stand-in sees the same patches the network would.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from genrekit.features.musicnn.tags import stream_logmel, tag_samples, tag_stream

RUN_TAGS = textwrap.dedent("""
    import json, resource, sys

    import torch

    import genrekit.features.musicnn.tags as tags
    from genrekit.apps.cli.main import main

    class StandIn(torch.nn.Module):
        tags = [f"tag{i}" for i in range(50)]

        def forward(self, patches):  # (batch, 187, 96) -> 50 "probabilities" per patch
            return {"taggram": torch.sigmoid(patches.mean(dim=1)[:, :50])}

    tags._cached_model = lambda name: StandIn()
    try:
        main(["tags", sys.argv[1], "--json"])
    except SystemExit as exit_:
        code = exit_.code
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(sys.argv[2], "w") as out:
        json.dump({"code": code, "peak": peak}, out)
""")


def run_tags(audio, tmp_path):
    """(exit code, peak resident memory in bytes, JSON output) of ``genrekit tags`` in a fresh process."""
    report = tmp_path / f"{audio.stem}.rss.json"
    done = subprocess.run([sys.executable, "-c", RUN_TAGS, str(audio), str(report)],
                          capture_output=True, text=True, timeout=600)
    measured = json.loads(report.read_text())
    return measured["code"], measured["peak"], done.stdout, done.stderr


@pytest.mark.slow
def test_long_file_is_tagged_in_bounded_memory(tmp_path):
    """40 minutes at 22.05 kHz: decoded whole at 16 kHz it is 154 MB, and the old whole-file
    path held it two or three times over (blocks, their concatenation, the padded copy)."""
    sr, minutes = 22050, 40
    long = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(long, "w", sr, 1, subtype="PCM_16") as handle:
        minute = (0.05 * rng.standard_normal(60 * sr)).astype(np.float32)
        for _ in range(minutes):  # written block by block: the test itself stays small
            handle.write(minute)
    short = tmp_path / "short.wav"
    sf.write(short, minute[: 10 * sr], sr)

    code, baseline, _, err = run_tags(short, tmp_path)
    assert code is None or code == 0, err
    code, peak, out, err = run_tags(long, tmp_path)
    assert code is None or code == 0, err
    result = json.loads(out)
    assert result["duration"] == pytest.approx(minutes * 60, abs=1e-3)
    assert len(result["segments"]) == int((minutes * 60 * 16000 // 256 + 1 - 187) // 187) + 1
    decoded_whole = minutes * 60 * 16000 * 4
    assert peak - baseline < decoded_whole * 0.75, (
        f"peak RSS {peak / 2**20:.0f} MiB, {(peak - baseline) / 2**20:.0f} MiB above a 10 s file")


@pytest.mark.parametrize("block", [700, 16000, 48000 * 3 + 1])
@pytest.mark.parametrize("hop", [187, 61])
def test_streamed_patches_are_those_of_the_whole_signal(block, hop):
    class StandIn(torch.nn.Module):
        tags = ["a", "b", "c"]

        def forward(self, patches):
            return {"taggram": patches.mean(dim=1)[:, :3]}

    samples = (0.1 * np.random.default_rng(1).standard_normal(16000 * 20 + 123)).astype(np.float32)
    whole, starts = tag_samples(samples, StandIn(), hop_frames=hop)
    streamed, streamed_starts = tag_stream(
        (samples[i:i + block] for i in range(0, len(samples), block)), StandIn(), hop_frames=hop, batch_size=7)
    np.testing.assert_array_equal(streamed_starts, starts)
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    frames = torch.cat(list(stream_logmel(samples[i:i + block] for i in range(0, len(samples), block))))
    assert frames.shape == (1 + len(samples) // 256, 96)


def test_file_shorter_than_one_patch_gives_one_padded_patch():
    class StandIn(torch.nn.Module):
        tags = ["a"]

        def forward(self, patches):
            return {"taggram": patches.mean(dim=(1, 2))[:, None]}

    samples = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32)
    whole, starts = tag_samples(samples, StandIn())
    streamed, streamed_starts = tag_stream([samples[:5000], samples[5000:]], StandIn())
    assert len(streamed) == 1 and list(streamed_starts) == list(starts) == [0.0]
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
