-- API keys and the shared rate-limit windows of the API (issue 9).
--
-- A key is shown once, when it is created; only its HMAC-SHA256 (keyed with the server's
-- pepper) is stored.  `id` is the public part of the key (kt_<id>_<secret>): it finds the
-- row, names the key in logs and audit trails, and is not a secret.

CREATE TABLE api_keys (
  id            text        PRIMARY KEY CHECK (id ~ '^[a-z0-9]{12}$'),
  name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  scopes        text[]      NOT NULL CHECK (scopes <@ ARRAY['read', 'trade', 'admin']::text[]),
  hash          bytea       NOT NULL,
  rate_limit    integer     CHECK (rate_limit > 0),   -- requests per window; NULL: the API's default
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz
);

-- Fixed rate windows shared by every API replica.  Each replica leases part of a window's
-- quota at a time (see kubetrade.api.ratelimit), so `used` counts requests granted to
-- replicas, which may run past the limit by what was refused.
CREATE TABLE api_rate_windows (
  bucket        text        NOT NULL,            -- key:<id> or addr:<client address>
  window_start  bigint      NOT NULL,            -- Unix seconds
  used          bigint      NOT NULL,
  PRIMARY KEY (bucket, window_start)
);
