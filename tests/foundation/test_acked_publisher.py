"""AckedPublisher against a real JetStream: stored, deduplicated, refused, no stream, no answer."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kubetrade.messaging.acked import AckedPublisher, NoStream, Refused


async def test_publishes_are_stored_once_and_every_failure_is_told_apart(nats_client) -> None:
    from nats.js.api import StreamConfig

    nc = nats_client
    js = nc.jetstream()
    name = f"ACKED_{uuid.uuid4().hex[:8].upper()}"
    subject = f"acked.{name.lower()}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{subject}.>"], duplicate_window=60.0))
    pub = AckedPublisher(nc)
    with pytest.raises(RuntimeError, match="start"):
        await pub.publish(f"{subject}.x", b"early")
    await pub.start()
    try:
        # many at once, as the risk manager publishes: each call returns once its message is stored
        await asyncio.gather(
            *(pub.publish(f"{subject}.x", f"m{i}".encode(), headers={"Nats-Msg-Id": f"id-{i}"}) for i in range(200))
        )
        assert (await js.stream_info(name)).state.messages == 200
        # a re-send with a known id is acknowledged (it is in the stream) and not stored again
        await pub.publish(f"{subject}.x", b"m7 again", headers={"Nats-Msg-Id": "id-7"})
        assert (await js.stream_info(name)).state.messages == 200
        # an error the stream answers is a Refused with JetStream's description
        with pytest.raises(Refused, match="expected stream"):
            await pub.publish(f"{subject}.x", b"wrong", headers={"Nats-Expected-Stream": "SOMETHING_ELSE"})
        # nobody stores the subject: NoStream, at once rather than after the wait
        with pytest.raises(NoStream):
            await pub.publish("acked.nowhere.x", b"lost", ack_wait=5.0)
        # something that is not a stream takes the message and never answers: a timeout, and
        # nothing is left pending
        silent = await nc.subscribe("acked.silent.x", cb=_ignore)
        with pytest.raises(TimeoutError):
            await pub.publish("acked.silent.x", b"?", ack_wait=0.2)
        await silent.unsubscribe()
        assert pub.pending == 0
    finally:
        await pub.stop()
        await js.delete_stream(name)


async def _ignore(msg: object) -> None:
    return None
