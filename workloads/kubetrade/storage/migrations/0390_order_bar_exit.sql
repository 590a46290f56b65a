-- A paper exit the backtest fills inside the bar (a stop-loss, trailing stop or take-profit the bar
-- reached) records which bar and which levels (messaging.schemas.BarExit: timeframe, barTime, stop,
-- target): the paper venue takes the fill price from that candle, as it received it, by the kernel's
-- rule (kubetrade.engine.stoprule.bar_fill), never from the order.  NULL for every other order; a live
-- exchange never sees it.

ALTER TABLE orders ADD COLUMN bar_exit jsonb;
