"""The TensorFlow tensor-bundle reader, on bundles built here byte by byte and on musicnn's."""

from __future__ import annotations

import importlib.metadata
import struct

import numpy as np
import pytest

from genrekit.errors import ModelError
from genrekit.features.musicnn.tfcheckpoint import (
    crc32c,
    list_checkpoint,
    read_checkpoint,
)

# --------------------------------------------------------------------------------------------
# a minimal writer of the format, independent of the reader's code


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> ten-byte two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: int | bytes, wire: int | None = None) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    if wire == 5:
        return _varint(number << 3 | 5) + struct.pack("<I", value)
    return _varint(number << 3) + _varint(value)


def _entry_proto(dtype: int, shape: tuple[int, ...], offset: int, data: bytes) -> bytes:
    shape_proto = b"".join(_field(2, _field(1, size)) for size in shape)
    return (
        _field(1, dtype)
        + _field(2, shape_proto)
        + (_field(4, offset) if offset else b"")
        + _field(5, len(data))
        + _field(6, _mask(_crc32c_bitwise(data)), wire=5)
    )


def _block(items: list[tuple[bytes, bytes]], restart_interval: int = 2) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        previous = key
    for restart in restarts:
        out += struct.pack("<I", restart)
    return bytes(out + struct.pack("<I", len(restarts)))


def _write_bundle(prefix: str, tensors: dict[str, tuple[int, np.ndarray]], compression: int = 0) -> None:
    """Write ``{name: (tf dtype code, array)}`` as ``prefix.index`` + one data shard."""
    data, items = bytearray(), [(b"", _field(1, 1) + _field(3, _field(1, 1)))]
    for name in sorted(tensors):
        dtype, array = tensors[name]
        raw = np.ascontiguousarray(array).tobytes()
        items.append((name.encode(), _entry_proto(dtype, array.shape, len(data), raw)))
        data += raw
    with open(f"{prefix}.data-00000-of-00001", "wb") as handle:
        handle.write(data)

    table = bytearray()

    def add_block(contents: bytes) -> bytes:
        handle = _varint(len(table)) + _varint(len(contents))
        trailer = bytes([compression])
        table.extend(contents + trailer + struct.pack("<I", _mask(_crc32c_bitwise(contents + trailer))))
        return handle

    # two data blocks so that the index block has more than one entry
    half = len(items) // 2
    index_items = []
    for chunk in (items[:half], items[half:]):
        index_items.append((chunk[-1][0], add_block(_block(chunk))))
    meta_handle = add_block(_block([]))
    index_handle = add_block(_block(index_items, restart_interval=1))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    with open(f"{prefix}.index", "wb") as handle:
        handle.write(bytes(table) + footer)


@pytest.fixture
def tensors() -> dict[str, tuple[int, np.ndarray]]:
    rng = np.random.default_rng(7)
    return {
        "model/conv2d/kernel": (1, rng.standard_normal((7, 5, 1, 3)).astype(np.float32)),
        "model/conv2d/bias": (1, rng.standard_normal(3).astype(np.float32)),
        "model/conv2d/kernel/Adam": (1, np.zeros((7, 5, 1, 3), np.float32)),
        "global_step": (9, np.array(-123456789012, dtype=np.int64)),
        "counts": (3, np.array([[1, -2], [3, 4]], dtype=np.int32)),
        "half": (19, np.array([0.5, -2.25, 65504.0], dtype=np.float16)),
        "double": (2, np.array([np.pi], dtype=np.float64)),
        "mask": (10, np.array([True, False, True])),
        "empty": (1, np.zeros((0, 4), np.float32)),
    }


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 9, 4095, 4096, 70_001])
def test_crc32c_matches_bitwise_reference(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert crc32c(data) == _crc32c_bitwise(data)


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C catalogue check value


def test_reads_every_tensor_with_dtype_and_shape(tmp_path, tensors):
    prefix = str(tmp_path / "model.ckpt")
    _write_bundle(prefix, tensors)
    loaded = read_checkpoint(prefix)
    assert sorted(loaded) == sorted(tensors)
    for name, (_, expected) in tensors.items():
        assert loaded[name].dtype == expected.dtype, name
        assert loaded[name].shape == expected.shape, name
        np.testing.assert_array_equal(loaded[name], expected)


def test_list_checkpoint_reads_only_the_index(tmp_path, tensors):
    prefix = str(tmp_path / "model.ckpt")
    _write_bundle(prefix, tensors)
    (tmp_path / "model.ckpt.data-00000-of-00001").unlink()
    listing = list_checkpoint(prefix)
    assert listing["model/conv2d/kernel"] == ("float32", (7, 5, 1, 3))
    assert listing["global_step"] == ("int64", ())
    assert listing["half"] == ("float16", (3,))
    assert listing["mask"] == ("bool", (3,))
    assert list(listing) == sorted(tensors)


def test_folder_prefix_like_musicnn(tmp_path, tensors):
    folder = tmp_path / "MSD_musicnn"
    folder.mkdir()
    _write_bundle(str(folder) + "/", tensors)
    assert set(read_checkpoint(folder, ["counts"])) == {"counts"}


def test_corrupt_tensor_bytes_fail_the_checksum(tmp_path, tensors):
    prefix = str(tmp_path / "model.ckpt")
    _write_bundle(prefix, tensors)
    shard = tmp_path / "model.ckpt.data-00000-of-00001"
    data = bytearray(shard.read_bytes())
    data[5] ^= 0x10  # inside the first tensor in key order ("counts")
    shard.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch for counts"):
        read_checkpoint(prefix)
    assert read_checkpoint(prefix, ["counts"], verify=False)["counts"].shape == (2, 2)


def test_corrupt_index_block_is_reported(tmp_path, tensors):
    prefix = str(tmp_path / "model.ckpt")
    _write_bundle(prefix, tensors)
    index = tmp_path / "model.ckpt.index"
    data = bytearray(index.read_bytes())
    data[3] ^= 0x01
    index.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="block checksum mismatch"):
        list_checkpoint(prefix)


def test_snappy_blocks_are_refused_clearly(tmp_path, tensors):
    prefix = str(tmp_path / "model.ckpt")
    _write_bundle(prefix, tensors, compression=1)
    with pytest.raises(ModelError, match="snappy"):
        list_checkpoint(prefix)


def test_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "x.index"
    bogus.write_bytes(b"\0" * 100)
    with pytest.raises(ModelError, match="magic"):
        list_checkpoint(tmp_path / "x")
    with pytest.raises(ModelError, match="not found"):
        list_checkpoint(tmp_path / "missing")


def test_unknown_name_and_missing_shard(tmp_path, tensors):
    prefix = str(tmp_path / "model.ckpt")
    _write_bundle(prefix, tensors)
    with pytest.raises(ModelError, match="no tensor named 'nope'"):
        read_checkpoint(prefix, ["nope"])
    (tmp_path / "model.ckpt.data-00000-of-00001").unlink()
    with pytest.raises(ModelError, match="cannot open checkpoint shard"):
        read_checkpoint(prefix, ["counts"])


# --------------------------------------------------------------------------------------------
# the real musicnn 0.1.0 checkpoints


def _musicnn_folder(model: str):
    try:
        distribution = importlib.metadata.distribution("musicnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("musicnn is not installed (pip install --no-deps musicnn==0.1.0)")
    return distribution.locate_file(f"musicnn/{model}")


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn"])
def test_musicnn_checkpoint_variables(model):
    listing = list_checkpoint(_musicnn_folder(model))
    weights = {name: spec for name, spec in listing.items() if "Adam" not in name}
    assert weights["conv2d/kernel"] == ("float32", (7, 38, 1, 204))  # timbral 7 x 0.4*96
    assert weights["conv2d_1/kernel"] == ("float32", (7, 67, 1, 204))  # timbral 7 x 0.7*96
    assert weights["conv2d_2/kernel"] == ("float32", (128, 1, 1, 51))  # temporal
    assert weights["conv2d_5/kernel"] == ("float32", (7, 561, 1, 64))  # mid-end, 408 + 153 in
    assert weights["dense/kernel"] == ("float32", (1506, 200))  # 2 x 753 pooled
    assert weights["dense_1/kernel"] == ("float32", (200, 50))
    assert sum(name.startswith("batch_normalization") for name in weights) == 11 * 4
    assert sum(name.startswith("conv2d") for name in weights) == 8 * 2


def test_musicnn_checkpoint_values_are_sane():
    folder = _musicnn_folder("MSD_musicnn")
    names = ["batch_normalization_9/moving_variance", "dense_1/kernel", "beta1_power"]
    weights = read_checkpoint(folder, names)
    assert weights["dense_1/kernel"].dtype == np.float32
    assert np.all(np.isfinite(weights["dense_1/kernel"]))
    assert np.all(weights["batch_normalization_9/moving_variance"] > 0)
    assert weights["beta1_power"].shape == ()  # Adam's beta1 ** step, a scalar
