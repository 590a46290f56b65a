-- Backtests requested through the API: one row per request, written by whoever runs it
-- (a Kubernetes Job on a cluster, the API process locally).

CREATE TABLE backtests (
  id           uuid        PRIMARY KEY,
  namespace    text        NOT NULL,
  strategy     text        NOT NULL,
  status       text        NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
  request      jsonb       NOT NULL,   -- period, costs, the strategy spec as it was when asked
  job          text,                   -- the Job's name on Kubernetes
  result       jsonb,                  -- metrics per symbol
  error        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  finished_at  timestamptz
);
CREATE INDEX backtests_strategy_idx ON backtests (namespace, strategy, created_at DESC);
