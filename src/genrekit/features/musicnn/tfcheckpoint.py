"""Read TensorFlow checkpoints (the "tensor bundle" format) without TensorFlow.

A checkpoint with prefix ``P`` is two files: ``P.index``, a LevelDB table ("SSTable") that maps
each tensor name to a ``BundleEntryProto`` (dtype, shape, shard, byte offset, size, checksum),
and one or more data shards ``P.data-00000-of-00001`` holding the raw little-endian tensor
bytes. The empty key holds the ``BundleHeaderProto`` (number of shards, byte order).

Only what TF 1.x/2.x ``tf.train.Saver`` writes for dense numeric tensors is supported:
uncompressed table blocks, unpartitioned variables, numeric dtypes. Anything else raises
:class:`~genrekit.errors.ModelError` naming the file and the cause. Block and tensor CRC32C
checksums are verified (a vectorised NumPy CRC32C; about 0.1 s for a 10 MB shard).

Examples
--------
>>> weights = read_checkpoint("musicnn/MSD_musicnn/")      # doctest: +SKIP
>>> list_checkpoint("musicnn/MSD_musicnn/")["dense/kernel"]  # doctest: +SKIP
('float32', (1506, 200))
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from genrekit.errors import ModelError

__all__ = ["read_checkpoint", "list_checkpoint", "crc32c"]


_TABLE_MAGIC = 0xDB4775248B80FB57


_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic


_BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked crc32c


_CRC_MASK_DELTA = 0xA282EAD8


# TensorFlow DataType enum (tensorflow/core/framework/types.proto) -> little-endian NumPy dtype.
_DTYPES = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    8: np.dtype("<c8"),  # DT_COMPLEX64
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}


_DT_BFLOAT16 = 14  # no NumPy dtype: widened to float32 on read


_DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}


class _Entry(NamedTuple):
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool


def _make_crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
    return table.astype(np.uint32)


_CRC_TABLE = _make_crc_table()


_CRC_TABLE_LIST = _CRC_TABLE.tolist()


def _crc_raw_scalar(register: int, data: bytes) -> int:
    table = _CRC_TABLE_LIST
    for byte in data:
        register = (register >> 8) ^ table[(register ^ byte) & 0xFF]
    return register


def _zero_shift_tables(length: int) -> list[list[int]]:
    """Byte lookup tables of the linear map "run the CRC register over ``length`` zero bytes"."""
    columns = np.uint32(1) << np.arange(32, dtype=np.uint32)
    for _ in range(length):
        columns = (columns >> 8) ^ _CRC_TABLE[columns & 0xFF]
    tables = []
    for byte in range(4):
        table = np.zeros(256, dtype=np.uint32)
        for bit in range(8):
            table[(np.arange(256) >> bit) & 1 == 1] ^= columns[8 * byte + bit]
        tables.append(table.tolist())
    return tables


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC32C (Castagnoli) checksum of ``data``, as ``crc32c::Value`` in LevelDB and TensorFlow.

    Long inputs are cut into equal chunks whose CRC registers advance together in NumPy; the
    chunk registers are then chained with a precomputed "shift by one chunk" map. That works
    because the CRC register update is linear over GF(2).

    Parameters
    ----------
    data : bytes, bytearray, memoryview or np.ndarray
        The bytes to check (an array is read as its raw bytes).

    Returns
    -------
    int
        The unmasked checksum, 0 <= value < 2**32.

    Examples
    --------
    >>> hex(crc32c(b"123456789"))  # the standard check value
    '0xe3069283'
    """
    buffer = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    n = buffer.size
    if n < 4096:
        return _crc_raw_scalar(0xFFFFFFFF, buffer.tobytes()) ^ 0xFFFFFFFF
    chunk = max(256, int(np.sqrt(n)))
    n_chunks = -(-n // chunk)
    padded = np.zeros(n_chunks * chunk, dtype=np.uint8)
    start = padded.size - n  # leading zeros leave a zero register unchanged
    padded[start:] = buffer
    # the initial register 0xFFFFFFFF is the same as complementing the first four bytes
    padded[start : start + 4] ^= 0xFF
    chunks = padded.reshape(n_chunks, chunk)
    registers = np.zeros(n_chunks, dtype=np.uint32)
    for column in chunks.T:
        registers = (registers >> 8) ^ _CRC_TABLE[(registers ^ column) & 0xFF]
    t0, t1, t2, t3 = _zero_shift_tables(chunk)
    value = 0
    for register in registers.tolist():
        value = (
            t0[value & 0xFF] ^ t1[(value >> 8) & 0xFF] ^ t2[(value >> 16) & 0xFF] ^ t3[value >> 24]
        ) ^ register
    return value ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rotated = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _proto_fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Decode one protobuf message into ``(field number, wire type, value)`` triples."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", data, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = bytes(data[pos : pos + length]), pos + length
            if pos > len(data):
                raise ValueError("truncated length-delimited field")
        elif wire == 5:
            value, pos = struct.unpack_from("<I", data, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _parse_shape(data: bytes) -> tuple[int, ...]:
    dims = []
    for number, _, value in _proto_fields(data):
        if number == 2:  # TensorShapeProto.dim
            size = 0
            for dim_number, _, dim_value in _proto_fields(value):
                if dim_number == 1:
                    size = _signed64(dim_value)
            dims.append(size)
        elif number == 3 and value:  # unknown_rank
            raise ValueError("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(data: bytes) -> _Entry:
    dtype, shape, shard, offset, size, crc, sliced = 0, (), 0, 0, 0, None, False
    for number, _, value in _proto_fields(data):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _parse_shape(value)
        elif number == 3:
            shard = value
        elif number == 4:
            offset = _signed64(value)
        elif number == 5:
            size = _signed64(value)
        elif number == 6:
            crc = value
        elif number == 7:
            sliced = True
    return _Entry(dtype, shape, shard, offset, size, crc, sliced)


def _read_block(table: bytes, handle: bytes, pos: int = 0) -> bytes:
    offset, pos = _varint(handle, pos)
    size, pos = _varint(handle, pos)
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(table):
        raise ValueError("block handle points past the end of the file")
    compression = table[end]
    if compression == 1:
        raise ValueError("snappy-compressed table blocks are not supported")
    if compression != 0:
        raise ValueError(f"unknown block compression type {compression}")
    stored = struct.unpack_from("<I", table, end + 1)[0]
    if crc32c(table[offset : end + 1]) != _unmask(stored):
        raise ValueError(f"block checksum mismatch at byte {offset}")
    return table[offset:end]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (keys are prefix-compressed against the previous one)."""
    if len(block) < 4:
        raise ValueError("table block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise ValueError("corrupt restart array in table block")
    entries, pos, key = [], 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_length, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_length > limit:
            raise ValueError("corrupt entry in table block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_length]))
        pos += value_length
    return entries


def _table_items(table: bytes) -> list[tuple[bytes, bytes]]:
    if len(table) < _FOOTER_SIZE:
        raise ValueError("file too short for a table footer")
    footer = table[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise ValueError("bad table magic number (not a TensorFlow checkpoint index)")
    _, pos = _varint(footer, 0)  # metaindex handle: offset
    _, pos = _varint(footer, pos)  # metaindex handle: size (the bundle writes no meta blocks)
    index = _read_block(table, footer, pos)
    items = []
    for _, handle in _block_entries(index):
        items.extend(_block_entries(_read_block(table, handle)))
    return items


def _index_path(prefix: str | os.PathLike) -> tuple[str, Path]:
    """The string prefix of a checkpoint and its ``.index`` file.

    A folder holding ``.index`` (a checkpoint saved with prefix ``"folder/"``, as musicnn's are)
    is accepted as well as the usual ``folder/model.ckpt`` prefix.
    """
    text = os.fspath(prefix)
    if os.path.isdir(text) and os.path.isfile(os.path.join(text, ".index")):
        text = os.path.join(text, "")
    index = Path(text + ".index")
    if not index.is_file():
        raise ModelError(f"{index}: checkpoint index not found")
    return text, index


def _read_index(prefix: str | os.PathLike) -> tuple[str, Path, int, dict[str, _Entry]]:
    text, index = _index_path(prefix)
    try:
        items = _table_items(index.read_bytes())
        n_shards, entries = 1, {}
        for key, value in items:
            if key == b"":
                for number, _, field in _proto_fields(value):
                    if number == 1:
                        n_shards = field
                    elif number == 2 and field != 0:
                        raise ValueError("big-endian checkpoints are not supported")
            else:
                entries[key.decode("utf-8")] = _parse_entry(value)
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelError(f"{index}: not a readable TensorFlow checkpoint index ({exc})") from None
    return text, index, n_shards, entries


def _dtype_name(code: int) -> str:
    if code in _DTYPES:
        return "bool" if code == 10 else _DTYPES[code].name
    return _DTYPE_NAMES.get(code, f"dtype#{code}")


def list_checkpoint(prefix: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Names, dtypes and shapes of the tensors in a checkpoint, without reading the data.

    Parameters
    ----------
    prefix : str or path
        Checkpoint prefix: ``P`` for ``P.index`` + ``P.data-*``, or a folder holding ``.index``.

    Returns
    -------
    dict
        ``{name: (dtype name, shape)}`` in the sorted order of the index, e.g.
        ``{"dense/kernel": ("float32", (1506, 200)), ...}``.
    """
    _, _, _, entries = _read_index(prefix)
    return {name: (_dtype_name(entry.dtype), entry.shape) for name, entry in entries.items()}


def read_checkpoint(
    prefix: str | os.PathLike, names: list[str] | None = None, *, verify: bool = True
) -> dict[str, np.ndarray]:
    """Read tensors from a TensorFlow checkpoint as NumPy arrays.

    Parameters
    ----------
    prefix : str or path
        Checkpoint prefix: ``P`` for ``P.index`` + ``P.data-*``, or a folder holding ``.index``.
    names : list of str, optional
        Tensors to read; default all (optimizer slots such as ``.../Adam`` included).
    verify : bool
        Check each tensor's CRC32C against the index (default True).

    Returns
    -------
    dict
        ``{name: array}`` with the stored shape and native-endian dtype (``bfloat16`` is
        widened to ``float32``).

    Raises
    ------
    ModelError
        Missing files, a corrupt index or shard, a checksum mismatch, an unknown name, or an
        unsupported tensor (string, partitioned, bfloat16 excepted above).
    """
    text, index, n_shards, entries = _read_index(prefix)
    wanted = list(entries) if names is None else list(names)
    missing = [name for name in wanted if name not in entries]
    if missing:
        raise ModelError(f"{index}: no tensor named {missing[0]!r} in the checkpoint")
    shards: dict[int, np.memmap] = {}
    tensors = {}
    for name in wanted:
        entry = entries[name]
        shard_path = f"{text}.data-{entry.shard_id:05d}-of-{n_shards:05d}"
        if entry.shard_id not in shards:
            try:
                shards[entry.shard_id] = np.memmap(shard_path, dtype=np.uint8, mode="r")
            except (FileNotFoundError, ValueError) as exc:
                raise ModelError(f"{shard_path}: cannot open checkpoint shard ({exc})") from None
        tensors[name] = _read_tensor(name, entry, shards[entry.shard_id], shard_path, verify)
    return tensors


def _read_tensor(name: str, entry: _Entry, shard: np.ndarray, path: str, verify: bool) -> np.ndarray:
    if entry.sliced:
        raise ModelError(f"{path}: {name} is a partitioned variable (not supported)")
    if entry.dtype not in _DTYPES and entry.dtype != _DT_BFLOAT16:
        raise ModelError(f"{path}: {name} has unsupported dtype {_dtype_name(entry.dtype)}")
    dtype = np.dtype("<u2") if entry.dtype == _DT_BFLOAT16 else _DTYPES[entry.dtype]
    count = int(np.prod(entry.shape, dtype=np.int64))
    if entry.size != count * dtype.itemsize or entry.offset + entry.size > shard.size:
        raise ModelError(f"{path}: {name} has an inconsistent size or lies past the end")
    raw = np.asarray(shard[entry.offset : entry.offset + entry.size])
    if verify and entry.crc32c is not None and crc32c(raw) != _unmask(entry.crc32c):
        raise ModelError(f"{path}: checksum mismatch for {name} (corrupt checkpoint)")
    array = raw.view(dtype).reshape(entry.shape)
    if entry.dtype == _DT_BFLOAT16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(dtype.newbyteorder("="), copy=True)
