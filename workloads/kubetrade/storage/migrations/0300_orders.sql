-- Orders, fills, positions and per-strategy ledgers of the order executor (issue 5).
--
-- The database is the executor's source of truth: an order row exists before anything is
-- sent to an exchange (client_order_id UNIQUE is the last line of defence against doubles),
-- and a fill is recorded once per exchange trade id, whatever replays it.

CREATE TABLE ledgers (
  environment      text             NOT NULL CHECK (environment IN ('paper', 'live')),
  namespace        text             NOT NULL DEFAULT 'default',
  strategy         text             NOT NULL,
  risk_policy      text,
  currency         text             NOT NULL DEFAULT 'USDT',
  capital          double precision NOT NULL CHECK (capital > 0),
  cash             double precision NOT NULL,
  realised_pnl     double precision NOT NULL DEFAULT 0,
  fees             double precision NOT NULL DEFAULT 0,
  updated_at       timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (environment, namespace, strategy)
);

CREATE TABLE orders (
  id                bigserial        PRIMARY KEY,
  client_order_id   text             NOT NULL UNIQUE CHECK (client_order_id ~ '^[A-Za-z0-9_-]{1,36}$'),
  environment       text             NOT NULL CHECK (environment IN ('paper', 'live')),
  namespace         text             NOT NULL,
  strategy          text             NOT NULL,
  exchange          text             NOT NULL,
  symbol            text             NOT NULL,
  side              text             NOT NULL CHECK (side IN ('buy', 'sell')),
  type              text             NOT NULL CHECK (type IN ('market', 'limit')),
  quantity          double precision NOT NULL CHECK (quantity > 0),
  price             double precision NOT NULL CHECK (price > 0),
  stop_price        double precision,
  trailing_pct      double precision,
  reduce_only       boolean          NOT NULL DEFAULT false,
  fee_rate          double precision NOT NULL DEFAULT 0.001,
  slippage_bps      double precision NOT NULL DEFAULT 0,
  status            text             NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired')),
  filled_quantity   double precision NOT NULL DEFAULT 0 CHECK (filled_quantity >= 0),
  average_price     double precision,
  fee               double precision NOT NULL DEFAULT 0,
  exchange_order_id text,
  submit_attempts   integer          NOT NULL DEFAULT 0,
  cancel_requested  boolean          NOT NULL DEFAULT false,
  reason            text,
  decided_at        timestamptz      NOT NULL,
  expires_at        timestamptz,
  created_at        timestamptz      NOT NULL DEFAULT now(),
  updated_at        timestamptz      NOT NULL DEFAULT now(),
  FOREIGN KEY (environment, namespace, strategy) REFERENCES ledgers (environment, namespace, strategy)
);
CREATE INDEX orders_live_idx ON orders (environment, status) WHERE status IN ('pending', 'open', 'partially_filled');
CREATE INDEX orders_strategy_idx ON orders (environment, namespace, strategy, created_at DESC);

CREATE TABLE fills (
  id               bigserial        PRIMARY KEY,
  order_id         bigint           NOT NULL REFERENCES orders (id),
  client_order_id  text             NOT NULL,
  environment      text             NOT NULL,
  namespace        text             NOT NULL,
  strategy         text             NOT NULL,
  exchange         text             NOT NULL,
  symbol           text             NOT NULL,
  side             text             NOT NULL,
  trade_id         text             NOT NULL,
  quantity         double precision NOT NULL CHECK (quantity > 0),
  price            double precision NOT NULL CHECK (price > 0),
  fee              double precision NOT NULL DEFAULT 0,
  fee_currency     text             NOT NULL DEFAULT '',
  realised_pnl     double precision NOT NULL DEFAULT 0,
  time             timestamptz      NOT NULL,
  UNIQUE (environment, exchange, symbol, trade_id)
);
CREATE INDEX fills_strategy_idx ON fills (environment, namespace, strategy, time DESC);
CREATE INDEX fills_order_idx ON fills (order_id);

CREATE TABLE positions (
  environment      text             NOT NULL,
  namespace        text             NOT NULL,
  strategy         text             NOT NULL,
  symbol           text             NOT NULL,
  exchange         text             NOT NULL,
  quantity         double precision NOT NULL DEFAULT 0,
  average_price    double precision NOT NULL DEFAULT 0,
  realised_pnl     double precision NOT NULL DEFAULT 0,
  fees             double precision NOT NULL DEFAULT 0,
  mark_price       double precision,
  stop_price       double precision,
  trailing_pct     double precision,
  best_price       double precision,
  stop_generation  integer          NOT NULL DEFAULT 0,
  updated_at       timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (environment, namespace, strategy, symbol)
);

CREATE TABLE order_events (
  id               bigserial        PRIMARY KEY,
  client_order_id  text             NOT NULL,
  environment      text             NOT NULL,
  status           text             NOT NULL,
  detail           text,
  time             timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order_idx ON order_events (client_order_id, id);

CREATE TABLE reconciliations (
  id               bigserial        PRIMARY KEY,
  environment      text             NOT NULL,
  started_at       timestamptz      NOT NULL,
  finished_at      timestamptz      NOT NULL DEFAULT now(),
  orders_checked   integer          NOT NULL,
  differences      jsonb            NOT NULL DEFAULT '[]'::jsonb
);
