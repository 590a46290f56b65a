-- Delivery tracking of platform events sent to Alertmanager (kubetrade.alerts.alertmanager),
-- on the alert history table of 0504.  A platform event carries a fingerprint - what it is
-- about, e.g. 'KubetradeGoalReached/prod/monthly-8/2026-11' - so that an event raised again
-- (a reconcile repeated, an operator restarted) is recorded and sent once.

ALTER TABLE alert_history ADD COLUMN IF NOT EXISTS fingerprint text;
ALTER TABLE alert_history ADD COLUMN IF NOT EXISTS delivery text NOT NULL DEFAULT 'none'
    CHECK (delivery IN ('none', 'pending', 'delivered', 'failed'));
ALTER TABLE alert_history ADD COLUMN IF NOT EXISTS delivered_at timestamptz;
ALTER TABLE alert_history ADD COLUMN IF NOT EXISTS delivery_error text;
CREATE UNIQUE INDEX IF NOT EXISTS alert_history_platform_fingerprint_idx
    ON alert_history (fingerprint) WHERE source = 'platform' AND fingerprint IS NOT NULL;
