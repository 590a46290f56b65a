-- The paper executor's fast path writes a whole batch in one statement, computed from a read
-- it took without locks (optimistic concurrency).  Every row it changes is guarded by the
-- values it read; this function turns "fewer rows matched than expected" into an error that
-- aborts the statement (nothing of the batch is written) with a code the executor knows
-- (KT409: the state moved since it was read; take the locking path instead).
CREATE FUNCTION kubetrade_expect_rows(what text, expected bigint, matched bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF expected IS DISTINCT FROM matched THEN
    RAISE EXCEPTION 'stale % : % row(s) expected, % matched', what, expected, matched USING ERRCODE = 'KT409';
  END IF;
  RETURN true;
END
$$;
