"""The order record: orders, their lifecycle events, fills, positions, each strategy's ledger
and the executor's reconciliations (migrations 0300-0304).  This package owns those tables:
no other module holds a statement on them.

Who may do what, module by module (``lint-imports`` checks the imports):

``accounting``  pure arithmetic: a fill moves a position, cash and realised PnL; what a strategy
                may spend.  The executor, the paper batch and the runner's own books all use it;
                the backtest kernel's arithmetic is tested equal to it.
``record``      the executor's writes: an order decided, what the venue says about it (fills,
                status), cancels asked, reconciliations.  Only :mod:`kubetrade.executor` imports it.
``paperbatch``  the executor's fast path for paper market orders: a batch decided in memory with
                ``accounting`` and written in one guarded statement.  Only the executor imports it.
``allocation``  a strategy's ledger created or resized to its capital: whoever applies a
                Strategy's capital (its runner at start, ``kubetrade executor allocate``, the
                local stack) - the one write outside the executor, and it touches ``ledgers``'
                capital and cash only.
``stops``       the positions' stop columns (the level, the best price, the stop generation):
                the risk manager's stop watch writes them, nothing else of a position.
``queries``     named reads for everyone else (risk manager, runner, API, local report).
``connection``  a connection in the shape every module here expects (autocommit, dict rows).
"""
