-- The ledger's spend check sums a strategy's *open* orders on every new order; without this
-- partial index it scans the strategy's whole order history, which grows without bound.
CREATE INDEX orders_open_by_strategy_idx ON orders (environment, namespace, strategy, symbol)
  WHERE status IN ('pending', 'open', 'partially_filled');
