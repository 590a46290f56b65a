-- Walk-forward runs keep every candidate's out-of-sample evidence and the gates' verdict
-- (kubetrade.engine.publish.store_selection); single-split runs leave both NULL.

ALTER TABLE evolution_results
    ADD COLUMN evidence jsonb,     -- SelectionEvidence: windows, OOS return, Sharpe, DSR, PBO, benchmark, failures
    ADD COLUMN passed   boolean;   -- whether the paper gate passed it

CREATE INDEX evolution_results_passed ON evolution_results (run_id) WHERE passed;
