"""The services' event loop choice: uvloop by default, asyncio on request, a clear error otherwise."""

from __future__ import annotations

import asyncio

import pytest

from kubetrade import eventloop


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_services_run_on_uvloop_unless_told_otherwise(monkeypatch) -> None:
    monkeypatch.delenv("KUBETRADE_EVENT_LOOP", raising=False)
    assert eventloop.run(_loop_type()).startswith("uvloop")
    monkeypatch.setenv("KUBETRADE_EVENT_LOOP", "asyncio")
    assert eventloop.run(_loop_type()).startswith("asyncio")
    monkeypatch.setenv("KUBETRADE_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="KUBETRADE_EVENT_LOOP"):
        eventloop.loop_factory()
