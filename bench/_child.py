"""Run one side of a benchmark in a child process and read its peak memory (max RSS) from wait4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_child(script: Path, *args: str, env_drop: tuple[str, ...] = ()) -> tuple[dict[str, Any], float]:
    """(the JSON the child printed on its last line, its peak RSS in MB)."""
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed with exit code {proc.returncode}:\n{out}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024
