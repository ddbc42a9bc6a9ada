"""Just enough of the protobuf wire format to edit a sentencepiece ``ModelProto`` without the protobuf package.

A field is kept as ``(number, wire_type, value)``: value is an int for varints, raw bytes for the other wire
types (length-delimited payload without its length, or the 4/8 little-endian bytes of fixed32/fixed64), so
``encode(decode(b)) == b`` for canonical input. ModelProto fields used here: 1 = pieces (repeated
SentencePiece: 1 piece string, 2 score float, 3 type enum), 2 = trainer_spec, 3 = normalizer_spec.
"""

from __future__ import annotations

import struct

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
USER_DEFINED = 4  # SentencePiece.Type


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _write_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32/int64 negatives are 10-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Split a serialized message into its fields, in order."""
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == BYTES:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire in (FIXED32, FIXED64):
            size = 4 if wire == FIXED32 else 8
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number}); not a sentencepiece model?")
        fields.append((number, wire, value))
    return fields


def encode(fields: list[tuple[int, int, int | bytes]]) -> bytes:
    """Inverse of :func:`decode`."""
    out = bytearray()
    for number, wire, value in fields:
        out += _write_varint(number << 3 | wire)
        if wire == VARINT:
            out += _write_varint(value)
        elif wire == BYTES:
            out += _write_varint(len(value)) + value
        else:
            out += value
    return bytes(out)


def piece(text: str, score: float = 0.0, piece_type: int = USER_DEFINED) -> bytes:
    """A serialized SentencePiece message."""
    return encode([(1, BYTES, text.encode()), (2, FIXED32, struct.pack("<f", score)), (3, VARINT, piece_type)])


def append_pieces(model: bytes, pieces: list[str], piece_type: int = USER_DEFINED) -> bytes:
    """Return ``model`` with ``pieces`` added after its last piece (they get the next ids)."""
    fields = decode(model)
    last = max(i for i, f in enumerate(fields) if f[0] == 1)
    new = [(1, BYTES, piece(p, 0.0, piece_type)) for p in pieces]
    return encode(fields[: last + 1] + new + fields[last + 1 :])


def insert_pieces(model: bytes, index: int, pieces: list[str], piece_type: int = USER_DEFINED) -> bytes:
    """Return ``model`` with ``pieces`` inserted before its piece ``index`` (they get ids ``index`` on; the
    pieces from ``index`` on move up by ``len(pieces)``)."""
    fields = decode(model)
    at = [i for i, f in enumerate(fields) if f[0] == 1]
    if not 0 <= index < len(at):
        raise ValueError(f"piece index {index} out of range: the model has {len(at)} pieces")
    new = [(1, BYTES, piece(p, 0.0, piece_type)) for p in pieces]
    return encode(fields[: at[index]] + new + fields[at[index] :])


def set_trainer_string(model: bytes, number: int, value: str) -> bytes:
    """Set a string field of trainer_spec (e.g. 2 = model_prefix), keeping fields in number order."""
    fields = decode(model)
    i = next(i for i, f in enumerate(fields) if f[0] == 2)
    spec = [f for f in decode(fields[i][2]) if f[0] != number]
    spec.append((number, BYTES, value.encode()))
    spec.sort(key=lambda f: f[0])  # stable: repeated fields keep their order
    fields[i] = (2, BYTES, encode(spec))
    return encode(fields)


def pieces_of(model: bytes) -> list[tuple[str, float, int]]:
    """(piece, score, type) of every piece, in id order (type defaults to 1 = NORMAL when absent)."""
    out = []
    for number, _, value in decode(model):
        if number == 1:
            d = {n: v for n, _, v in decode(value)}
            score = struct.unpack("<f", d[2])[0] if 2 in d else 0.0
            out.append((d[1].decode(), score, d.get(3, 1)))
    return out


def trainer_spec(model: bytes) -> dict[int, int | bytes]:
    """trainer_spec fields by number (last value wins), for checking training flags."""
    spec = next(v for n, _, v in decode(model) if n == 2)
    return {n: v for n, _, v in decode(spec)}


def normalizer_spec(model: bytes) -> dict[int, int | bytes]:
    """normalizer_spec fields by number."""
    spec = next(v for n, _, v in decode(model) if n == 3)
    return {n: v for n, _, v in decode(spec)}
