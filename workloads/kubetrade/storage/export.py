"""Streaming encoders for bulk exports: CSV and Parquet, one chunk of rows at a time.

Each encoder takes an async iterator of row chunks (from a server-side cursor, see
:func:`kubetrade.storage.history.stream`) and yields bytes as soon as a chunk is encoded,
so an export of years of 1m candles never holds more than one chunk in memory.  Parquet
gets one row group per chunk, written through a sink that hands its bytes on and forgets them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

HEADER = ("time", "open", "high", "low", "close", "volume")


async def csv_chunks(chunks: AsyncIterator[list[tuple[Any, ...]]], symbol: str) -> AsyncIterator[bytes]:
    """``symbol,time,open,high,low,close,volume`` with time in UTC ms, as the bundled files have it."""
    yield ("symbol," + ",".join(HEADER) + "\n").encode()
    async for rows in chunks:
        yield "".join(f"{symbol},{r[0]},{r[1]!r},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r}\n" for r in rows).encode()


class _Drain:
    """A write-only file that keeps only what was written since the last :meth:`take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


async def parquet_chunks(chunks: AsyncIterator[list[tuple[Any, ...]]], symbol: str) -> AsyncIterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("symbol", pa.string()), ("time", pa.timestamp("ms", tz="UTC")), ("open", pa.float64()),
                        ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()),
                        ("volume", pa.float64())])
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        async for rows in chunks:
            cols = list(zip(*rows, strict=True))
            table = pa.Table.from_arrays(
                [pa.array([symbol] * len(rows)), pa.array(cols[0], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                 *(pa.array(c, pa.float64()) for c in cols[1:6])], schema=schema)
            writer.write_table(table)
            if data := sink.take():
                yield data
    finally:
        writer.close()
    yield sink.take()
