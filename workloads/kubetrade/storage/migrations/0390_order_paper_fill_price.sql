-- A paper exit the backtest fills inside the bar (a stop-loss, trailing stop or take-profit hit by the
-- bar's open, low or high) carries that price: the paper venue fills it there, before slippage, instead of
-- at the last price (kubetrade.runner.decide, kubetrade.executor.venues.PaperVenue).  NULL for every other
-- order; a live exchange never sees it.

ALTER TABLE orders ADD COLUMN paper_fill_price double precision CHECK (paper_fill_price > 0);
