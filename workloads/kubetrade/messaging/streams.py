"""Create or update the JetStream streams of :data:`kubetrade.messaging.subjects.STREAMS`.

Every process that publishes to a stream may call :func:`ensure_streams` at start: it is
idempotent, and it converges an existing stream's subjects to the declared ones.
"""

from __future__ import annotations

from typing import Any

from kubetrade.messaging.subjects import STREAMS

DUPLICATE_WINDOW_SECONDS = 2 * 3600
"""How long JetStream remembers a Nats-Msg-Id: re-sends within it are dropped as duplicates."""


async def ensure_streams(js: Any) -> None:
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    for name, subjects in STREAMS.items():
        config = StreamConfig(name=name, subjects=subjects, duplicate_window=DUPLICATE_WINDOW_SECONDS)
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(config)
            continue
        if sorted(info.config.subjects or []) != sorted(subjects):
            info.config.subjects = subjects
            await js.update_stream(info.config)
