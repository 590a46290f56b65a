"""``kubetrade warmup``: compile every numba kernel into the cache, and seed a pod's cache from the image.

numba only uses a cache directory it can write to (it probes with a temporary file), so
the cache built into the image at ``$KUBETRADE_NUMBA_CACHE_SEED`` cannot be used in place on
a read-only root filesystem.  Instead each process copies it, once, into its writable
``$NUMBA_CACHE_DIR`` (an ``emptyDir``) before anything is compiled: a copy of a few
megabytes instead of tens of seconds of compilation, and never a compile on a hot path.
The image builds the cache with ``NUMBA_CPU_NAME=generic`` so it is valid on any x86-64 node.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("kubetrade.engine.warmcache")

SEED_ENV = "KUBETRADE_NUMBA_CACHE_SEED"


def seed_from_image() -> int:
    """Copy the image's prebuilt numba cache into ``$NUMBA_CACHE_DIR``; returns files copied."""
    seed = os.environ.get(SEED_ENV, "")
    target = os.environ.get("NUMBA_CACHE_DIR", "")
    if not seed or not target or Path(seed).resolve() == Path(target).resolve() or not Path(seed).is_dir():
        return 0
    dest = Path(target)
    # Already seeded when it holds files (a restarted container keeps its emptyDir).  Folders alone
    # do not count: numba makes its cache folders (empty) as soon as a module with a cached kernel
    # is imported, before anything is compiled.
    if dest.is_dir() and any(files for _, _, files in os.walk(dest)):
        return 0
    try:
        shutil.copytree(seed, dest, dirs_exist_ok=True)
    except OSError as exc:  # a cold cache is slow, not broken
        log.warning("numba cache not seeded", extra={"error": type(exc).__name__, "target": target})
        return 0
    return sum(len(files) for _, _, files in os.walk(dest))


def register(sub: Any) -> None:
    parser = sub.add_parser("warmup", help="compile every numba kernel into $NUMBA_CACHE_DIR (image build)")
    parser.set_defaults(func=_warmup)


def _warmup(args: argparse.Namespace) -> int:
    from kubetrade.engine import warmup

    started = time.perf_counter()
    warmup()
    cache = os.environ.get("NUMBA_CACHE_DIR", "(next to the sources)")
    files = sum(len(f) for _, _, f in os.walk(cache)) if os.path.isdir(cache) else 0
    print(f"numba kernels compiled in {time.perf_counter() - started:.1f}s; cache {cache}: {files} files")
    return 0
