-- Market data: candles and alternative-data points.
--
-- On plain PostgreSQL `candles` is range-partitioned by month (partitions are created by
-- kubetrade.storage.candles.ensure_partitions before ingest; the DEFAULT partition only
-- catches what falls outside them).  When the timescaledb extension is available the table is
-- created unpartitioned instead, because a hypertable cannot be made from a partitioned
-- table; kubetrade.storage.timescale.setup then turns it into a hypertable and adds the
-- continuous aggregates, compression and retention.  No Timescale DDL runs here, so this file
-- applies unchanged on either server.

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
    CREATE TABLE candles (
      exchange  text             NOT NULL,
      symbol    text             NOT NULL,
      timeframe text             NOT NULL,
      time      timestamptz      NOT NULL,
      open      double precision NOT NULL,
      high      double precision NOT NULL,
      low       double precision NOT NULL,
      close     double precision NOT NULL,
      volume    double precision NOT NULL,
      PRIMARY KEY (exchange, symbol, timeframe, time)
    );
  ELSE
    CREATE TABLE candles (
      exchange  text             NOT NULL,
      symbol    text             NOT NULL,
      timeframe text             NOT NULL,
      time      timestamptz      NOT NULL,
      open      double precision NOT NULL,
      high      double precision NOT NULL,
      low       double precision NOT NULL,
      close     double precision NOT NULL,
      volume    double precision NOT NULL,
      PRIMARY KEY (exchange, symbol, timeframe, time)
    ) PARTITION BY RANGE (time);
    CREATE TABLE candles_default PARTITION OF candles DEFAULT;
  END IF;
END
$$;

COMMENT ON TABLE candles IS 'Closed OHLCV candles; time is the candle open time (UTC).';

-- One time-series shape for every alternative source (on-chain, social, macro).
CREATE TABLE alt_points (
  source    text             NOT NULL,   -- onchain | social | macro
  provider  text             NOT NULL,   -- moralis, glassnode, twitter, reddit, lunarcrush, stooq, yahoo
  topic     text             NOT NULL,   -- what was followed: a metric, subreddit, ticker, address
  metric    text             NOT NULL,   -- what was measured: value, mentions, sentiment, close, usd
  time      timestamptz      NOT NULL,
  value     double precision NOT NULL,
  attrs     jsonb            NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (source, provider, topic, metric, time)
);
