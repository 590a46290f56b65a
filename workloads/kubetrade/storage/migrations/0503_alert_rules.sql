-- User-defined alert conditions (issue 9): a threshold on a value the platform observes.
-- `firing` and `last_fired_at` are the evaluator's memory, so a restart neither repeats
-- an alert nor forgets one is active.

CREATE TABLE alert_rules (
  id               uuid             PRIMARY KEY,
  name             text             NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  namespace        text             NOT NULL,
  metric           text             NOT NULL CHECK (metric IN ('pnl', 'drawdown', 'equity', 'price', 'goal_progress')),
  target           text             NOT NULL,   -- strategy or goal name, or exchange:symbol for price
  operator         text             NOT NULL CHECK (operator IN ('>', '>=', '<', '<=')),
  threshold        double precision NOT NULL,
  severity         text             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  cooldown_seconds integer          NOT NULL DEFAULT 300 CHECK (cooldown_seconds >= 0),
  enabled          boolean          NOT NULL DEFAULT true,
  firing           boolean          NOT NULL DEFAULT false,
  last_value       double precision,
  last_fired_at    timestamptz,
  created_at       timestamptz      NOT NULL DEFAULT now(),
  updated_at       timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX alert_rules_lookup_idx ON alert_rules (metric, target) WHERE enabled;
