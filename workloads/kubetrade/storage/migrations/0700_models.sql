-- The model store: every trained model (LSTM-Transformer predictors, RL policies, ridge baselines) with its
-- ONNX file, digest, metrics and training window. Written by `kubetrade train` and the Goal's training Job,
-- read by runners (a Strategy names a model as registry://NAME with its sha256). Owner: kubetrade.prediction.registry.

CREATE TABLE models (
  name          text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9.-]{0,62}$'),
  sha256        text        NOT NULL CHECK (sha256 ~ '^[a-f0-9]{64}$'),
  kind          text        NOT NULL CHECK (kind IN ('predictor', 'policy')),
  features      text        NOT NULL,
  onnx          bytea       NOT NULL,
  metrics       jsonb       NOT NULL DEFAULT '{}',   -- out-of-sample figures, baselines, training history
  config        jsonb       NOT NULL DEFAULT '{}',   -- architecture, seed, horizon, data sets
  train_from    timestamptz NOT NULL,                 -- the training window (first bar, end of the last)
  train_to      timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, sha256),
  CHECK (train_from < train_to)
);
CREATE INDEX models_latest_idx ON models (name, created_at DESC);
