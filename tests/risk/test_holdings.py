"""Holdings keep per-strategy and per-symbol views and long/short counts in step with their items.

Built in bulk (the risk book rebuilds them every refresh) or item by item, then changed
item by item, they must always agree with what a plain scan of the items says.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kubetrade.risk.state import Holdings

STRATEGIES = ["a", "b", "c", "d"]
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
keys = st.tuples(st.sampled_from(STRATEGIES), st.sampled_from(SYMBOLS))
quantities = st.sampled_from([0.0, 0.0, 1.0, -1.0, 0.5, -2.5, 3.0])


def check(h: Holdings) -> None:
    items = dict(h)
    assert h.nonzero == sum(1 for q in items.values() if q != 0.0)
    for sym in SYMBOLS:
        held = {s: q for (s, y), q in items.items() if y == sym and q != 0.0}
        assert h.by_symbol.get(sym, {}) == held
        net, long, short = h.summary(sym)
        assert net == sum(held.values())
        assert long == any(q > 0 for q in held.values())
        assert short == any(q < 0 for q in held.values())
    for strategy in STRATEGIES:
        assert h.by_strategy.get(strategy, {}) == {y: q for (s, y), q in items.items() if s == strategy and q != 0.0}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, quantities), st.lists(st.tuples(keys, quantities | st.none())))
def test_views_agree_with_the_items_built_in_bulk_or_item_by_item(initial, changes) -> None:
    bulk = Holdings(initial)
    one_by_one = Holdings()
    for k, q in initial.items():
        one_by_one[k] = q
    for h in (bulk, one_by_one):
        check(h)
        for k, q in changes:
            if q is None:
                if k in h:
                    del h[k]
            else:
                h[k] = q
            check(h)
    assert dict(bulk) == dict(one_by_one)
