"""A child process with a log file, a readiness wait and a clean stop - even if its parent is killed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class StartupError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


WATCHDOG = r"""
import json, os, shutil, signal, sys, time
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)  # only the end of the parent ends the watch (see Watchdog)
watched, remove = {}, {}
for line in sys.stdin:
    order = json.loads(line)
    if "watch" in order:
        watched[order["watch"]] = order["signal"]
        if order.get("remove"):
            remove[order["watch"]] = order["remove"]
    elif "unwatch" in order:
        watched.pop(order["unwatch"], None)
        remove.pop(order["unwatch"], None)
for pgid, sig in watched.items():
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
left = dict(watched)
deadline = time.monotonic() + float(sys.argv[1])
while left and time.monotonic() < deadline:
    for pgid in list(left):
        try:
            os.killpg(pgid, 0)
        except OSError:
            del left[pgid]
    time.sleep(0.1)
for pgid in left:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
time.sleep(0.2 if left else 0)
for path in remove.values():
    shutil.rmtree(path, ignore_errors=True)
"""
"""The watchdog's program: the process groups it is told of (one JSON object a line) are stopped,
and their scratch folders removed, when its stdin reaches end of file."""


class Watchdog:
    """Stops this process's servers when this process dies, however it dies.

    Each :class:`ManagedProcess` runs in a session of its own (so that a Ctrl-C meant for
    its parent, or a stop of its group, reaches exactly it), so nothing stops it when its
    parent is killed with SIGKILL or crashes: an embedded PostgreSQL, NATS or service would
    run on, orphaned, holding its port and its data directory.  A parent-death signal
    (``PR_SET_PDEATHSIG``) does not fit: it fires when the *thread* that started the child
    exits, and is cleared when the child changes user (PostgreSQL runs as ``postgres``).

    So one small watchdog process per parent holds the read end of a pipe whose only write
    end is the parent's.  The parent tells it which process groups to watch and with which
    signal to stop each (PostgreSQL's fast shutdown is SIGINT) and which scratch folder to
    remove after it (a temporary database is 100 MB); when the pipe reaches end of file - the
    parent is gone, by any means - it sends those signals, waits, kills what is left and
    removes the folders.  A clean stop unwatches the group first, so the watchdog never touches a
    process id that may have been reused.  The watchdog ignores SIGTERM, SIGINT and SIGHUP: a
    ``pkill -f`` that matches it along with its parent (they run the same Python) must not
    take it away before its parent's death is what it acts on.
    """

    GRACE_SECONDS = 20.0
    """How long the servers get to stop cleanly after their parent died, before SIGKILL."""

    _lock = threading.Lock()
    _current: Watchdog | None = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", WATCHDOG, str(self.GRACE_SECONDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @classmethod
    def get(cls) -> Watchdog:
        """This process's watchdog (a fresh one in a forked child: the parent's pipe is not its own)."""
        with cls._lock:
            dog = cls._current
            if dog is None or dog.pid != os.getpid() or dog.proc.poll() is not None:
                dog = cls._current = Watchdog()
            return dog

    def _say(self, order: dict[str, object]) -> None:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(order).encode() + b"\n")
            self.proc.stdin.flush()

    def watch(self, pgid: int, stop_signal: int, remove: Path | None = None) -> None:
        self._say({"watch": pgid, "signal": int(stop_signal), "remove": None if remove is None else str(remove)})

    def unwatch(self, pgid: int) -> None:
        with contextlib.suppress(OSError, ValueError):  # the watchdog is gone: nothing watches it anyway
            self._say({"unwatch": pgid})


class ManagedProcess:
    """Start a server, wait for it, stop it; its output goes to ``log_path``.

    The child runs in its own process group so that stopping it also stops anything it
    spawned, and a test run that is interrupted leaves nothing behind; the :class:`Watchdog`
    stops it with ``stop_signal`` if this process dies without stopping it (and then removes
    ``scratch``, a folder only this process would have cleaned up).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        scratch: Path | None = None,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.scratch = scratch
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.user = user
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._watchdog: Watchdog | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            user=self.user,
            cwd=self.cwd,
            start_new_session=True,
        )
        try:
            self._watchdog = Watchdog.get()
            self._watchdog.watch(self.proc.pid, self.stop_signal, self.scratch)
        except BaseException:
            self.stop(timeout=5)
            raise

    def wait_ready(self, check: Callable[[], bool], timeout: float = 60.0, interval: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StartupError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(interval)
        raise StartupError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Ask the process group to stop; kill it if it has not within ``timeout``."""
        if self.proc is not None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.proc.wait(timeout)
            # Reap stragglers of the group (e.g. postgres backends) whatever the leader did.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self._watchdog is not None:
                self._watchdog.unwatch(self.proc.pid)
                self._watchdog = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Service:
    """A server this package starts: ``with Service() as s`` starts it and cleans up after."""

    def start(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
