"""The histogram blob: how a rollup row stores its latency and token histograms.

Apart from rollup.py because three places speak it and need nothing else: the writer's upsert
(as the SQL function `llmtop_hist_merge`, store/db.py), the PostgreSQL sink's merge, and the
sliding-window engine's reads.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

import numpy as np


def encode_keys(keys: np.ndarray, counts: np.ndarray) -> bytes:
    """Keys ascending and their counts (all > 0) as a blob: a flag byte, n uint16 keys, then n
    counts, uint8 when all fit (the usual case in hour buckets), else uint32. About 3 bytes per
    non-empty bucket."""
    if not len(keys):
        return b""
    k = keys.astype("<u2").tobytes()
    if counts.max() < 256:
        return b"\x01" + k + counts.astype("u1").tobytes()
    return b"\x00" + k + counts.astype("<u4").tobytes()


def encode_hist(h: Mapping[int, int]) -> bytes:
    """A histogram as a blob (the layout is `encode_keys`'s)."""
    items = sorted((k, n) for k, n in h.items() if n > 0)
    return encode_keys(
        np.fromiter((k for k, _ in items), np.int64, len(items)),
        np.fromiter((n for _, n in items), np.int64, len(items)),
    )


def decode_hist(blob: bytes) -> Iterable[tuple[int, int]]:
    if not blob:
        return ()
    if blob[0] == 1:
        n = (len(blob) - 1) // 3
        counts = struct.unpack_from(f"<{n}B", blob, 1 + 2 * n)
    else:
        n = (len(blob) - 1) // 6
        counts = struct.unpack_from(f"<{n}I", blob, 1 + 2 * n)
    return zip(struct.unpack_from(f"<{n}H", blob, 1), counts, strict=True)


def merge_hist_blobs(a: bytes | None, b: bytes | None) -> bytes:
    """SQL function `llmtop_hist_merge`: the upsert's way to add two histograms."""
    if not a:
        return b or b""
    if not b:
        return a
    h: dict[int, int] = dict(decode_hist(a))
    for k, n in decode_hist(b):
        h[k] = h.get(k, 0) + n
    return encode_hist(h)
