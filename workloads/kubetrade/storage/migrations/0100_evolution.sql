-- Evolution runs and the ranked strategies each run produced (kubetrade.engine.store).

CREATE TABLE evolution_runs (
    id            uuid PRIMARY KEY,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    seed          bigint NOT NULL,
    config        jsonb NOT NULL,            -- population, generations, split, costs, ...
    datasets      jsonb NOT NULL,            -- [{symbol, timeframe, bars, first, last}]
    trials        integer NOT NULL CHECK (trials >= 0),       -- distinct genomes evaluated
    evaluations   integer NOT NULL CHECK (evaluations >= 0),
    survivors     integer NOT NULL CHECK (survivors >= 0),
    goal          text                        -- the Goal resource that asked for the run, if any
);

CREATE TABLE evolution_results (
    run_id                   uuid NOT NULL REFERENCES evolution_runs (id) ON DELETE CASCADE,
    rank                     integer NOT NULL CHECK (rank >= 1),
    strategy_name            text NOT NULL,
    genome                   jsonb NOT NULL,
    train                    jsonb NOT NULL,  -- metrics per symbol on the training part
    validation               jsonb NOT NULL,  -- metrics per symbol on the held-out part
    validation_return        double precision NOT NULL,
    validation_max_drawdown  double precision NOT NULL,
    validation_sharpe        double precision NOT NULL,
    validation_trades        integer NOT NULL,
    deflated_sharpe          double precision NOT NULL CHECK (deflated_sharpe BETWEEN 0 AND 1),
    manifest                 jsonb NOT NULL,  -- the Strategy resource as emitted (mode paper)
    PRIMARY KEY (run_id, rank),
    UNIQUE (run_id, strategy_name)
);

CREATE INDEX evolution_results_by_strategy ON evolution_results (strategy_name);
