"""The order path's garbage-collector settings, checked in a fresh interpreter (they are process-wide)."""

from __future__ import annotations

import subprocess
import sys


def test_settle_freezes_start_up_objects_and_spaces_out_young_collections() -> None:
    program = (
        "import gc\n"
        "from kubetrade.observability import heap\n"
        "state = [[i] for i in range(50_000)]  # what a process loads at start (lists are tracked)\n"
        "heap.settle()\n"
        "assert gc.get_freeze_count() > 50_000, gc.get_freeze_count()\n"
        "assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD\n"
        "tracked = len(gc.get_objects())\n"
        "assert tracked < 1_000, tracked  # the collector no longer walks the start-up state\n"
        "junk = []\n"
        "for _ in range(3):\n"
        "    a = {}; a['self'] = a  # a cycle: still collected\n"
        "    junk.append(a)\n"
        "del junk, a\n"
        "assert gc.collect() >= 3\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
