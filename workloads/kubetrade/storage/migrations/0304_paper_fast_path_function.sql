-- The paper executor's fast path writes a whole batch in one call of this function: one
-- statement, so one implicit transaction and one commit.  It replaces a single statement of
-- data-modifying CTEs whose generic plan hashed every position and ledger of the
-- environment to find the few it changes; here each row is found by its primary key with a
-- cached plan, which takes a third less of the server's CPU per order (measured at one
-- order per batch: 380 -> 260 us).
--
-- ``batch`` is the JSON document paperpath._Batch builds: ``orders`` (each recorded filled
-- with its fill and its pending/filled events, in order), positions ``opened`` (plain
-- INSERT: one that appeared since the read fails the call with a unique violation) and
-- ``moved``, and ``ledgers``' cash changes.  Moved positions and ledgers are guarded by the
-- values the decisions were made on; the strategies' open orders by their number.  A guard
-- that does not hold raises SQLSTATE KT409 and nothing of the batch is written.
CREATE FUNCTION kubetrade_paper_fill_batch(env text, filled_at_ms float8, open_expected bigint, batch jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  new_order_id bigint;
  open_now bigint;
BEGIN
  FOR r IN SELECT * FROM jsonb_to_recordset(batch->'orders')
      AS u(c text, n text, s text, x text, y text, sd text, q float8, p float8, sp float8, tp float8, ro bool,
           fr float8, sb float8, fq float8, fp float8, fe float8, da float8, ea float8, t text, fc text, r float8)
  LOOP
    INSERT INTO orders (client_order_id, environment, namespace, strategy, exchange, symbol, side, type, quantity,
                        price, stop_price, trailing_pct, reduce_only, fee_rate, slippage_bps, status, filled_quantity,
                        average_price, fee, exchange_order_id, decided_at, expires_at)
    VALUES (r.c, env, r.n, r.s, r.x, r.y, r.sd, 'market', r.q, r.p, r.sp, r.tp, r.ro, r.fr, r.sb, 'filled', r.fq,
            r.fp, r.fe, r.c, to_timestamp(r.da / 1000), to_timestamp(r.ea / 1000))
    RETURNING id INTO new_order_id;
    INSERT INTO fills (order_id, client_order_id, environment, namespace, strategy, exchange, symbol, side, trade_id,
                       quantity, price, fee, fee_currency, realised_pnl, time)
    VALUES (new_order_id, r.c, env, r.n, r.s, r.x, r.y, r.sd, r.t, r.fq, r.fp, r.fe, r.fc, r.r,
            to_timestamp(filled_at_ms / 1000));
    INSERT INTO order_events (client_order_id, environment, status) VALUES (r.c, env, 'pending'), (r.c, env, 'filled');
  END LOOP;

  FOR r IN SELECT * FROM jsonb_to_recordset(batch->'opened')
      AS v(n text, s text, y text, x text, q float8, a float8, r float8, f float8, m float8, sp float8, tp float8,
           bp float8)
  LOOP
    INSERT INTO positions (environment, namespace, strategy, symbol, exchange, quantity, average_price, realised_pnl,
                           fees, mark_price, stop_price, trailing_pct, best_price)
    VALUES (env, r.n, r.s, r.y, r.x, r.q, r.a, r.r, r.f, r.m, r.sp, r.tp, r.bp);
  END LOOP;

  -- the stop, trail and best price are reset only when a fill of the batch opened the position
  FOR r IN SELECT * FROM jsonb_to_recordset(batch->'moved')
      AS v(n text, s text, y text, q float8, a float8, r float8, f float8, m float8, o bool, sp float8, tp float8,
           bp float8, q0 float8, a0 float8, r0 float8, f0 float8)
  LOOP
    UPDATE positions AS p
    SET quantity = r.q, average_price = r.a, realised_pnl = r.r, fees = r.f, mark_price = r.m,
        stop_price = CASE WHEN r.o THEN r.sp ELSE p.stop_price END,
        trailing_pct = CASE WHEN r.o THEN r.tp ELSE p.trailing_pct END,
        best_price = CASE WHEN r.o THEN r.bp ELSE p.best_price END,
        updated_at = now()
    WHERE p.environment = env AND p.namespace = r.n AND p.strategy = r.s AND p.symbol = r.y
      AND p.quantity = r.q0 AND p.average_price = r.a0 AND p.realised_pnl = r.r0 AND p.fees = r.f0;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'stale position %/%/%: it moved since it was read', r.n, r.s, r.y USING ERRCODE = 'KT409';
    END IF;
  END LOOP;

  FOR r IN SELECT * FROM jsonb_to_recordset(batch->'ledgers') AS v(n text, s text, d float8, r float8, f float8, c0 float8)
  LOOP
    UPDATE ledgers AS l
    SET cash = l.cash + r.d, realised_pnl = l.realised_pnl + r.r, fees = l.fees + r.f, updated_at = now()
    WHERE l.environment = env AND l.namespace = r.n AND l.strategy = r.s AND l.cash = r.c0;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'stale ledger %/%: its cash moved since it was read', r.n, r.s USING ERRCODE = 'KT409';
    END IF;
  END LOOP;

  SELECT count(*) INTO open_now FROM orders AS o
  WHERE o.environment = env AND o.status IN ('pending', 'open', 'partially_filled')
    AND (o.namespace, o.strategy) IN (SELECT v.n, v.s FROM jsonb_to_recordset(batch->'ledgers') AS v(n text, s text));
  IF open_now <> open_expected THEN
    RAISE EXCEPTION 'stale open orders: % expected, % found', open_expected, open_now USING ERRCODE = 'KT409';
  END IF;
  RETURN true;
END
$$;

-- The statement it replaces was the only user of 0303's row-count check.
DROP FUNCTION kubetrade_expect_rows(text, bigint, bigint);
