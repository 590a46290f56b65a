-- Alert history: every alert the platform raised, from user-defined conditions (source
-- 'rule') and from trading events sent to Alertmanager (source 'platform').  Created here
-- with IF NOT EXISTS so the observability migrations (0550-0599) may extend it.

CREATE TABLE IF NOT EXISTS alert_history (
  id         bigserial        PRIMARY KEY,
  time       timestamptz      NOT NULL DEFAULT now(),
  source     text             NOT NULL DEFAULT 'platform',
  rule_id    uuid,
  name       text             NOT NULL,
  severity   text             NOT NULL,
  status     text             NOT NULL DEFAULT 'firing' CHECK (status IN ('firing', 'resolved')),
  namespace  text,
  target     text,
  value      double precision,
  message    text             NOT NULL DEFAULT '',
  labels     jsonb            NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS alert_history_time_idx ON alert_history (time DESC);
