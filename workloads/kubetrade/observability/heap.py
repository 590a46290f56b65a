"""Garbage-collector settings for the processes on the order path (risk manager, executor, runner).

CPython's cyclic collector stops the process while it walks the objects it tracks.  A young
collection is cheap; a full one walks everything ever allocated and still alive - imported
modules, pydantic schemas, numpy, ccxt, the state loaded at start - and took 15-110 ms in
these processes under load (measured with ``gc.callbacks`` during ``bench/run.py
order_path``): a pause every order arriving meanwhile waits out.  So, once a process has
started and loaded its state, :func:`settle` collects once and *freezes* what exists (moves
it to a generation the collector never walks), and the young-generation threshold is raised
so that the thousand short-lived messages a second are swept in fewer, still small, passes.
Long-lived caches on the hot path hold bytes (not tracked) rather than objects, for the same
reason.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("kubetrade.observability.heap")

YOUNG_THRESHOLD = 20_000
"""Allocations (minus deallocations) of tracked objects between young collections (CPython's default: 700)."""


def settle() -> None:
    """Collect once, freeze everything alive, and space out young collections; idempotent."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    log.info("heap settled", extra={"frozen_objects": gc.get_freeze_count(), "young_threshold": YOUNG_THRESHOLD})
