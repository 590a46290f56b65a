-- One delivery path for every alert (kubetrade.alerts): user rules, platform events and
-- Prometheus' own alerts all reach Alertmanager, and what each channel was sent is kept.
--
-- alert_rules: the channels a rule's alerts go to (none: routed by severity) and its quiet
-- hours ({"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}).
--
-- alert_history: `fingerprint` (0550) held a platform event's dedupe key; it is now
-- `event_key`, and `fingerprint` is Alertmanager's fingerprint of the alert's label set
-- (the same 16 hex digits Alertmanager shows), with `starts_at` the start of the alert
-- the row belongs to: a firing row and its resolved row share both.  `delivery` is the
-- hand-over to Alertmanager: none (no Alertmanager configured), pending, accepted, failed
-- (retried until accepted), held (quiet hours), suppressed (resolved within quiet hours).
--
-- alert_outbox: what Alertmanager must be told, one row per label set, posted by the one
-- dispatcher (an advisory lock among the API replicas) and re-posted while it lasts.
--
-- alert_deliveries: one row per notification a channel was sent (or is to be sent: the SMS
-- queue), with the alerts it carried in alert_delivery_alerts.

ALTER TABLE alert_rules ADD COLUMN channels text[] NOT NULL DEFAULT '{}'
    CHECK (channels <@ ARRAY['email', 'sms', 'telegram', 'discord', 'slack', 'webhook']::text[]);
ALTER TABLE alert_rules ADD COLUMN quiet_hours jsonb;

ALTER TABLE alert_history RENAME COLUMN fingerprint TO event_key;
ALTER TABLE alert_history ADD COLUMN fingerprint text;
ALTER TABLE alert_history ADD COLUMN starts_at timestamptz;
ALTER TABLE alert_history DROP CONSTRAINT alert_history_delivery_check;
UPDATE alert_history SET delivery = 'accepted' WHERE delivery = 'delivered';
ALTER TABLE alert_history ADD CONSTRAINT alert_history_delivery_check
    CHECK (delivery IN ('none', 'pending', 'accepted', 'failed', 'held', 'suppressed'));
CREATE UNIQUE INDEX alert_history_transition_idx ON alert_history (fingerprint, status, starts_at)
    WHERE fingerprint IS NOT NULL;

CREATE TABLE alert_outbox (
  fingerprint     text        PRIMARY KEY,
  labels          jsonb       NOT NULL,
  annotations     jsonb       NOT NULL DEFAULT '{}'::jsonb,
  severity        text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  history_id      bigint,
  starts_at       timestamptz NOT NULL,
  ends_at         timestamptz,               -- NULL: firing until resolved; else when it ended or expires
  resolved        boolean     NOT NULL DEFAULT false,
  hold_until      timestamptz,               -- quiet hours: not posted before
  version         bigint      NOT NULL DEFAULT 1,
  posted_version  bigint      NOT NULL DEFAULT 0,
  posted_at       timestamptz,
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_deliveries (
  id              bigserial   PRIMARY KEY,
  channel         text        NOT NULL CHECK (channel IN ('email', 'sms', 'telegram', 'discord', 'slack', 'webhook')),
  sender          text        NOT NULL CHECK (sender IN ('alertmanager', 'kubetrade')),
  receiver        text        NOT NULL,
  dedupe_key      text        NOT NULL,
  group_key       text        NOT NULL DEFAULT '',
  status          text        NOT NULL CHECK (status IN ('firing', 'resolved')),
  severity        text,
  priority        smallint    NOT NULL DEFAULT 0,
  state           text        NOT NULL
      CHECK (state IN ('notified', 'queued', 'sending', 'sent', 'failed', 'rate_limited')),
  recipient       text,
  body            text,
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz,
  started_at      timestamptz,
  sent_at         timestamptz,
  provider_id     text,
  error           text,
  received_at     timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_deliveries_key_idx ON alert_deliveries (dedupe_key, received_at DESC);
CREATE INDEX alert_deliveries_queue_idx ON alert_deliveries (priority DESC, received_at)
    WHERE state IN ('queued', 'sending');
CREATE INDEX alert_deliveries_channel_idx ON alert_deliveries (channel, received_at DESC);

CREATE TABLE alert_delivery_alerts (
  delivery_id bigint      NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
  fingerprint text        NOT NULL,
  status      text        NOT NULL,
  starts_at   timestamptz NOT NULL,
  alertname   text        NOT NULL,
  PRIMARY KEY (delivery_id, fingerprint)
);
CREATE INDEX alert_delivery_alerts_alert_idx ON alert_delivery_alerts (fingerprint, starts_at);
