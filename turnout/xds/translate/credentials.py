"""API keys as `ApiKeyAuth.credentials` on the wire, spliced from cached blocks.

Protobuf writes a repeated message field as concatenated (tag, length, bytes)
records, so the credential list (3.5 MB at 100,000 keys) is kept as blocks of
consecutive keys with their bytes. The next key tuple is cut at the same ids, and a
block whose keys are the same objects keeps its bytes: one new or revoked key
re-encodes one block of `_BLOCK` keys, and the rest is a join. A test holds the
result to protobuf's own deterministic serialization, step by step.
"""

import bisect
from dataclasses import dataclass
from itertools import pairwise
from operator import attrgetter

from turnout.models.key import ApiKey

_BLOCK = 512
"""Credentials per block when blocks are (re)cut: a new key re-encodes one block."""
_ID = attrgetter("id")


@dataclass(frozen=True)
class _Blocks:
    """The last credential list encoded, cut into consecutive blocks of the tuple."""

    keys: tuple[ApiKey, ...]
    bounds: list[str]
    """The first id of every block but the first: where a search cuts the next tuple."""
    blocks: list[tuple[tuple[ApiKey, ...], bytes]]
    """Each block's keys and their wire bytes."""
    data: bytes


_last: _Blocks | None = None


def forget_credentials() -> None:
    """Drop the encoded credential blocks (benchmarks timing a cold translation)."""
    global _last
    _last = None


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_credential(key: ApiKey) -> bytes:
    """`credentials { key: ..., client: ... }` (field 1 of ApiKeyAuth) on the wire.

    Byte for byte what protobuf's deterministic serializer writes for a Credential
    with both strings set (a test holds it to that).
    """
    k, c = key.key.encode(), key.consumer.encode()
    inner = b"\x0a" + _varint(len(k)) + k + b"\x12" + _varint(len(c)) + c
    return b"\x0a" + _varint(len(inner)) + inner


def _encode_block(keys: tuple[ApiKey, ...]) -> bytes:
    return b"".join(_encode_credential(key) for key in keys)


def _cut(keys: tuple[ApiKey, ...], previous: _Blocks | None) -> list[tuple[ApiKey, ...]]:
    """`keys` as consecutive slices: at the previous bounds (so unchanged blocks come out
    equal to the previous ones), or every `_BLOCK` keys. Whatever the order of `keys`,
    the slices are contiguous and cover it: only reuse depends on it being by id."""
    if previous is None:
        return [keys[at : at + _BLOCK] for at in range(0, len(keys), _BLOCK)]
    cuts = [0]
    for bound in previous.bounds:
        cuts.append(max(cuts[-1], bisect.bisect_left(keys, bound, key=_ID)))
    cuts.append(len(keys))
    slices = []
    for start, end in pairwise(cuts):
        if end - start > 2 * _BLOCK:  # grown: cut again, so no block gets large
            slices.extend(keys[at : min(at + _BLOCK, end)] for at in range(start, end, _BLOCK))
        elif end > start:
            slices.append(keys[start:end])
    return slices


def serialized_credentials(keys: tuple[ApiKey, ...]) -> bytes:
    """`ApiKeyAuth{credentials}` on the wire, in the order of `keys` (by id), reusing
    the bytes of every block whose keys are the same objects as last time (a C-speed
    tuple compare): a change re-encodes the blocks it touched, not 100,000 keys."""
    global _last
    previous = _last
    if previous is not None and previous.keys is keys:
        return previous.data
    old = {} if previous is None else {block[0][0].id: block for block in previous.blocks}
    blocks = []
    for part in _cut(keys, previous):
        same = old.get(part[0].id)
        blocks.append(same if same is not None and same[0] == part else (part, _encode_block(part)))
    data = b"".join(chunk for _part, chunk in blocks)
    _last = _Blocks(keys, [part[0].id for part, _chunk in blocks[1:]], blocks, data)
    return data


def field_head(field_number: int, length: int) -> bytes:
    """The tag and length of a length-delimited field of `length` bytes."""
    return _varint(field_number << 3 | 2) + _varint(length)
