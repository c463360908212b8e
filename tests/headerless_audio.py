"""Audio files whose header states no length, for the tests of issue 13 (items 5 and 7).

- :func:`matroska_silence_without_duration`: FLAC-in-Matroska silence hours long, written to a
  sink that cannot seek, so that the muxer cannot go back to fill the duration in;
- :func:`flac_of_unknown_length`: a FLAC file whose STREAMINFO says 0 total samples ("unknown",
  as streaming encoders write).
"""

import av
import numpy as np
import soundfile as sf


class _NoSeek:
    """A write-only file object: FFmpeg's Matroska muxer then cannot write the duration back."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        return self.handle.write(data)


def matroska_silence_without_duration(path, seconds: float, sr: int = 8000):
    """FLAC-in-Matroska silence of ``seconds`` with no duration in the header (about 2.5 MB an hour).

    One FLAC frame of silence is encoded once and muxed again and again with advancing
    timestamps, which takes well under a second for an hour of audio.
    """
    with open(path, "wb") as handle:
        container = av.open(_NoSeek(handle), "w", format="matroska")
        stream = container.add_stream("flac", rate=sr, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4608), np.int16), format="s16", layout="mono")
        frame.sample_rate = sr
        frame.pts = 0
        template = stream.encode(frame)[0]
        payload, step = bytes(template), template.duration
        for index in range(int(seconds * sr / step)):
            packet = av.Packet(payload)
            packet.stream = stream
            packet.time_base = template.time_base
            packet.pts = packet.dts = index * step
            packet.duration = step
            container.mux(packet)
        container.close()
    return path


def flac_of_unknown_length(path, samples, sr):
    """A valid FLAC file whose STREAMINFO says 0 total samples and has no MD5 (both "unknown")."""
    known = path.with_name("known-length.flac")
    sf.write(known, samples, sr, format="FLAC", subtype="PCM_16")
    data = bytearray(known.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # the first block is STREAMINFO
    # bytes 18..25: 20 bits sample rate, 3 bits channels, 5 bits bits per sample, 36 bits samples
    packed = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = packed.to_bytes(8, "big")
    data[26:42] = bytes(16)
    path.write_bytes(bytes(data))
    return path
