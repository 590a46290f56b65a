-- Sessions of the console (kubetrade.api.console.session): a person logs in with an API key once;
-- the browser then holds a random session token in an HTTP-only cookie.  Only the token's SHA-256
-- is stored, with the key it was opened with (never the key), the CSRF token of its forms and
-- its expiry.  Revoking the key ends its sessions (the API checks the key on every request);
-- deleting the key deletes them.

CREATE TABLE console_sessions (
    token_hash  bytea       PRIMARY KEY,
    key_id      text        NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry_idx ON console_sessions (expires_at);
