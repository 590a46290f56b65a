"""The logs of ``kubetrade up`` under ``.kubetrade/logs``: each run starts fresh files, a few runs are kept.

Every service appends to its log (a restarted service continues the same file within a run),
so without this the files grew with every run.  At the start of a run each ``NAME.log`` moves
to ``NAME.log.1`` (and ``.1`` to ``.2`` ...); generations beyond ``keep`` are deleted.  The run's
own log (kubetrade-up.log) also rolls over within a run past ``max_bytes``.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

KEEP = 3
"""Earlier runs kept beside the current one."""
MAX_BYTES = 50 * 1024 * 1024


def rotate(log_dir: Path, keep: int = KEEP) -> list[Path]:
    """Shift every ``*.log`` of ``log_dir`` one generation back; returns the files deleted."""
    deleted: list[Path] = []
    if not log_dir.is_dir():
        return deleted
    for current in sorted(log_dir.glob("*.log")):
        for n in range(keep, 0, -1):
            older = current.with_name(f"{current.name}.{n}")
            if not older.exists():
                continue
            if n == keep:
                older.unlink()
                deleted.append(older)
            else:
                older.rename(current.with_name(f"{current.name}.{n + 1}"))
        current.rename(current.with_name(f"{current.name}.1"))
    for stale in sorted(log_dir.glob("*.log.*")):  # generations past keep (a smaller keep than before)
        suffix = stale.name.rsplit(".", 1)[-1]
        if suffix.isdigit() and int(suffix) > keep:
            stale.unlink()
            deleted.append(stale)
    return deleted


def run_handler(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> logging.Handler:
    """The handler of the run's own log: rolled over within the run past ``max_bytes``."""
    return logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=keep)
