-- The risk manager's durable state per portfolio (environment x RiskPolicy): the equity peak
-- the drawdown is measured from, today's opening equity, and the circuit breaker.  Kept in
-- the database so that a restarted risk manager does not forget a tripped breaker or reset
-- the drawdown to zero.

CREATE TABLE risk_state (
  environment       text             NOT NULL CHECK (environment IN ('paper', 'live')),
  namespace         text             NOT NULL,
  policy            text             NOT NULL,
  peak_equity       double precision NOT NULL,
  day               date             NOT NULL,
  day_start_equity  double precision NOT NULL,
  breaker_open      boolean          NOT NULL DEFAULT false,
  breaker_reason    text,
  breaker_since     timestamptz,
  manual_reset      boolean          NOT NULL DEFAULT false,
  violations        bigint           NOT NULL DEFAULT 0,
  updated_at        timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (environment, namespace, policy)
);
