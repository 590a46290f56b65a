"""Why a runner stops for good, in one line a person can act on - and where Kubernetes reads it.

A runner that cannot run exits: its Strategy does not compile, its model is missing or has the
wrong hash (exit 2, :class:`~kubetrade.runner.config.RunnerConfigError`), or its database cannot
be reached or used (exit 1).  Before it does, it writes why to the container's termination log
(``/dev/termination-log``, which the kubelet makes; ``KUBETRADE_TERMINATION_LOG`` names another
file).  The kubelet puts that text on the pod (``lastState.terminated.message``): ``kubectl
describe pod`` shows it, and the operator carries it into the Strategy's ``RunnerReady``
condition.  The operator's pods use ``terminationMessagePolicy: FallbackToLogsOnError``, so a
death with nothing written (a segfault, a kill) still shows the end of the log.

No secret reaches the message: a database error is described by its class and psycopg's own
text (which names the host, never the password), a URL only without its user part.  The runner's
database work runs in a process of its own (:mod:`kubetrade.runner.store`), which describes its
error here and hands the words over; the runner's process never imports psycopg.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from kubetrade.runner.store import StoreError

TERMINATION_LOG = Path("/dev/termination-log")
ENV = "KUBETRADE_TERMINATION_LOG"
LIMIT = 4096
"""The kubelet keeps at most 4096 bytes of a termination message."""

_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def _scrub(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://host``: credentials never leave in a message."""
    return _USERINFO.sub(r"\1", text)


def why(exc: BaseException) -> str:
    """What went wrong, for a person: the kind of failure first, then the library's own words."""
    first = _scrub(" ".join(str(exc).split()))[:1500] or type(exc).__name__
    if isinstance(exc, StoreError):  # said by the process that did the database work, in these words
        return first
    psycopg = sys.modules.get("psycopg")  # not loaded (a runner never imports it): no psycopg error to name
    if psycopg is not None and isinstance(exc, psycopg.Error):
        if isinstance(exc, psycopg.OperationalError):
            return f"database unreachable: {first}"
        if isinstance(exc, psycopg.errors.UndefinedTable):
            return f"database schema missing (not migrated yet?): {first}"
        return f"database error ({type(exc).__name__}): {first}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {first}"
    return f"unexpected {type(exc).__name__}: {first}"


def record(message: str, path: Path | None = None) -> bool:
    """Write ``message`` where the kubelet reads it; False when there is no such file (not in a pod).

    The file is never created here: outside a container ``/dev/termination-log`` does not exist,
    and a process on a laptop must not write into ``/dev``.
    """
    target = path or Path(os.environ.get(ENV) or TERMINATION_LOG)
    if not target.exists():
        return False
    data = message.encode()[:LIMIT].decode("utf-8", "ignore").encode()  # never half a character
    try:
        with target.open("wb") as f:
            f.write(data)
    except OSError:
        return False
    return True
