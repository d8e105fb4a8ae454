"""How many interpolated rows go through the model at once: the measured-probe rule.

The backend runs a first block of at most ``PROBE_ROWS`` rows while counting the bytes its
autograd saves for backward; :func:`rows_for` turns that into the block size for
the rest of the run, and :func:`blocks` tiles examples x steps with it.
"""

from __future__ import annotations

import math
from typing import Iterator


# Block sizes, from the sweep in benchmarks/bench_core.py --sweep-target (docs/benchmarks.md):
# - problems with at most SMALL_BYTES of interpolated points run as one block, unmeasured
#   (per-call overhead is all there is);
# - otherwise a first block of at most PROBE_ROWS rows is measured: the bytes autograd
#   saves per row decide the rest;
# - rows that are light (at least _MIN_CACHE_ROWS of them fit in _CACHE_BYTES) get blocks
#   that stay cache-resident: a 30-256-256 MLP ran 1.4x slower in one 6 MiB block than in
#   0.8 MiB ones;
# - heavy rows (convolutions, attention) get blocks near _TARGET_SAVED_BYTES: larger ones
#   fault fresh pages on every block, smaller ones starve the kernels, but never fewer than
#   _MIN_ROWS unless max_memory says so (EfficientNet-Lite0 at 224 px: 67 s at 1 row per
#   block, 15 s at 16). Measured 2026-12-02 (bench_core.py --sweep-target, bench_text_blocks.py):
#   CNN (1.7 MiB/row) flat from 42 to 167 MiB per block, 1.45x slower at 334 MiB; transformer
#   (1.3 MiB/row) best at 126 MiB, 1.15x slower at 40 MiB; MiniLM sentiment (1.45 MiB/row,
#   16 tokens) 1.02x at 93 MiB and 1.00x at 186 MiB against 1.12x at 48 MiB, the old target.
SMALL_BYTES = 64 << 10
PROBE_ROWS = 256
PROBE_BYTES = 1 << 20
_CACHE_BYTES = 1 << 20
_MIN_CACHE_ROWS = 256
_TARGET_SAVED_BYTES = 96 << 20
_MIN_ROWS = 8


# A JAX or TensorFlow model's points are copied into the framework and its gradients back, and
# the engine's float64 bookkeeping scales with them, so its blocks hold at most
# FOREIGN_POINT_BYTES of points. Measured 2026-12-02 (docs/benchmarks_frameworks.md): a Keras
# Embedding(5000, 64) text model, 32 x 128 tokens (32 KiB of points per row), took 464 / 238 /
# 185 / 194 / 255 / 300 ms at 32 / 100 / 200 / 400 / 800 / 1600 rows per block, and peaked at
# 527 MB in one block of 1600 rows against 65 MB at 100; the cap gives 256 rows there.
FOREIGN_POINT_BYTES = 8 << 20


def foreign_rows(point_bytes: float) -> int:
    """Rows per block for a foreign framework's model, from the bytes of one row's points."""
    return max(_MIN_ROWS, int(FOREIGN_POINT_BYTES // max(point_bytes, 1.0)))


def rows_for(per_row: float, max_memory: int | None) -> int:
    """Rows per block from the bytes autograd saved per row of the probe."""
    per_row = max(per_row, 1.0)
    rows = _CACHE_BYTES // per_row
    if rows < _MIN_CACHE_ROWS:
        rows = max(_TARGET_SAVED_BYTES // per_row, _MIN_ROWS)
    if max_memory is not None:
        rows = min(rows, max_memory // per_row)
    return max(1, int(rows))


def blocks(batch: int, n: int, rows: int, e_start: int, k_start: int) -> Iterator[tuple[int, int, int, int]]:
    """Blocks (e0, e1, k0, k1) covering examples x steps from (e_start, k_start) onwards.

    A block is either whole examples with all ``n`` steps, or one example with a window of
    steps; windows of an example are split evenly so no block is a tiny remainder.
    """
    e = e_start
    if k_start or rows < n:
        last = e_start + 1 if rows >= n else batch
        for e in range(e_start, last):
            k0 = k_start if e == e_start else 0
            windows = math.ceil((n - k0) / rows)
            cuts = [k0 + round(i * (n - k0) / windows) for i in range(windows + 1)]
            for a, b in zip(cuts, cuts[1:]):
                yield e, e + 1, a, b
        e = last
    per = max(1, rows // n)
    for e0 in range(e, batch, per):
        yield e0, min(batch, e0 + per), 0, n
