"""Write TFRecord files of tf.train.Example records without importing TensorFlow.

Why not tf.io.TFRecordWriter: every sharding worker would import TensorFlow (~5 s and ~1 GB each)
only to frame bytes, and the fast tests would need TensorFlow to make a shard folder. The format
is small and stable: each record is

    uint64 length (little-endian) | uint32 masked CRC-32C of the length | data | uint32 masked CRC-32C of data

and an Example is a protobuf map from feature name to a bytes list or an int64 list. TensorFlow
itself reads these files in the job (and the slow tests check that it does).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence

CRC32C_POLYNOMIAL = 0x82F63B78  # Castagnoli, reflected
MASK_DELTA = 0xA282EAD8


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ CRC32C_POLYNOMIAL if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def pure_crc32c(data: bytes) -> int:
    """CRC-32C in pure Python: the fallback where the `crc32c` package is missing (~3-16 MB/s)."""
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _library_crc32c() -> Callable[[bytes], int] | None:
    # The `crc32c` package (ICRAR, hardware CRC instructions, GB/s) is a dependency of sweep; a
    # node or interpreter without it still writes valid records, only slower.
    try:
        from crc32c import crc32c as library
    except ImportError:
        return None
    return library


crc32c: Callable[[bytes], int] = _library_crc32c() or pure_crc32c


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# ---- protobuf wire format, just what tf.train.Example needs


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 fields encode negatives as ten-byte two's complement
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


FeatureValue = bytes | int | Sequence[int]


def _feature(value: FeatureValue) -> bytes:
    """A tf.train.Feature: bytes -> BytesList (field 1), ints -> packed Int64List (field 3)."""
    if isinstance(value, bytes):
        return _length_delimited(1, _length_delimited(1, value))
    numbers = [value] if isinstance(value, int) else list(value)
    packed = b"".join(_varint(int(n)) for n in numbers)
    return _length_delimited(3, _length_delimited(1, packed))


def encode_example(features: Mapping[str, FeatureValue]) -> bytes:
    """Serialize a tf.train.Example; features in name order so the bytes are deterministic."""
    entries = b"".join(
        _length_delimited(1, _length_delimited(1, name.encode()) + _length_delimited(2, _feature(value)))
        for name, value in sorted(features.items())
    )
    return _length_delimited(1, entries)
