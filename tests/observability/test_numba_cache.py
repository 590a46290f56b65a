"""The image's numba cache: built by ``kubetrade warmup``, seeded into a pod's writable cache, used as is.

What the Dockerfile does at build time and every pod does at start, run for real in
subprocesses: after seeding, warming up compiles nothing (numba's own cache debug output
says every kernel was loaded, none saved) and leaves the seeded files untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _kubetrade(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubetrade.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_seeded_cache_loads_every_kernel_without_compiling(tmp_path: Path) -> None:
    image_cache = tmp_path / "image-cache"  # what the Dockerfile bakes in
    pod_cache = tmp_path / "pod-cache"  # the pod's emptyDir
    build = _kubetrade("warmup", env={"NUMBA_CACHE_DIR": str(image_cache), "NUMBA_CPU_NAME": "generic",
                                      "NUMBA_DEBUG_CACHE": "1"})
    assert build.returncode == 0, build.stderr
    built = _snapshot(image_cache)
    assert any(name.endswith(".nbc") for name in built), "warmup compiled nothing into the cache"
    assert "data saved" in build.stdout

    env = {"NUMBA_CACHE_DIR": str(pod_cache), "KUBETRADE_NUMBA_CACHE_SEED": str(image_cache),
           "NUMBA_CPU_NAME": "generic", "NUMBA_DEBUG_CACHE": "1"}
    seeded = subprocess.run([sys.executable, "-c", "from kubetrade.engine.warmcache import seed_from_image as s; "
                             "print(s())"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    assert int(seeded.stdout.strip()) == len(built)
    before = _snapshot(pod_cache)

    run = _kubetrade("warmup", env=env)
    assert run.returncode == 0, run.stderr
    assert "data loaded" in run.stdout
    assert "data saved" not in run.stdout, "a kernel was compiled despite the seeded cache"
    assert _snapshot(pod_cache) == before
    assert _snapshot(image_cache) == built  # the seed itself is only read


def test_a_fresh_pod_seeds_before_numba_looks(tmp_path: Path) -> None:
    """The pod's own path: one `kubetrade` process, an empty emptyDir, the image's seed.

    Importing the command modules makes numba create its (empty) cache folders; the seed must
    be copied before that, or the process compiles every kernel although the image has them.
    """
    image_cache = tmp_path / "image-cache"
    build = _kubetrade("warmup", env={"NUMBA_CACHE_DIR": str(image_cache), "NUMBA_CPU_NAME": "generic"})
    assert build.returncode == 0, build.stderr
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "pod-cache"), "KUBETRADE_NUMBA_CACHE_SEED": str(image_cache),
           "NUMBA_CPU_NAME": "generic", "NUMBA_DEBUG_CACHE": "1"}
    run = _kubetrade("warmup", env=env)
    assert run.returncode == 0, run.stderr
    assert "data loaded" in run.stdout
    assert "data saved" not in run.stdout, "the pod compiled kernels the image holds"
