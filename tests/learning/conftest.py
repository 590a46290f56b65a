"""A small LSTM-Transformer trained once per session on real candles (tests/data), and a clean indicator registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubetrade.candles import Candles, load_csv

SMALL = {"window": 12, "hidden": 8, "heads": 2, "layers": 1, "ffn": 16, "epochs": 2, "batch": 128, "seed": 7}


@pytest.fixture(scope="session")
def eth_1h(market_data: Path) -> Candles:
    """ETH/USDT 1h, Binance spot, 2024: 5,980 bars."""
    return load_csv(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz", symbol="ETH/USDT")


@pytest.fixture(scope="session")
def sol_5m(market_data: Path) -> Candles:
    return load_csv(market_data / "binance-spot" / "SOL_USDT-5m.csv.gz", symbol="SOL/USDT")


@pytest.fixture(scope="session")
def trained(eth_1h: Candles):
    """The network trained on the first 3,000 bars (seed 7): the file and the JAX result behind it."""
    from kubetrade.prediction import learn
    from kubetrade.prediction.network import NetConfig

    return learn.train_predictor([eth_1h], NetConfig(**SMALL), until_ms=int(eth_1h.time[3000]))


@pytest.fixture
def clean_indicators():
    """Leave the process's model indicators as they were found."""
    from kubetrade.prediction import model

    model.unbind()
    yield
    model.unbind()


def evolve_without_jax(spec: Any, candles: Candles, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``run_goal_evolution`` of ``spec`` (a Goal spec as Kubernetes stores it) on ``candles`` in a process in
    which jax cannot be imported, as in the runtime image; it prints ``refused: <why>`` and whether jaxlib was
    imported after all."""
    data = tmp_path / "candles.csv"
    rows = np.column_stack([candles.time, candles.open, candles.high, candles.low, candles.close, candles.volume])
    np.savetxt(data, rows, delimiter=",", fmt="%.17g")
    script = tmp_path / "run.py"
    script.write_text(f"""
import sys
sys.modules['jax'] = None
import json
import numpy as np
from kubetrade.candles import from_arrays
from kubetrade.goalevolution.goalrun import GoalRunError, run_goal_evolution
from kubetrade.resources.goal import GoalSpec
spec = GoalSpec.model_validate(json.loads({json.dumps(spec)!r}))
a = np.loadtxt({str(data)!r}, delimiter=",")
c = from_arrays(a[:, 0].astype('int64'), *a[:, 1:].T, timeframe={candles.timeframe!r}, symbol={candles.symbol!r})
try:
    run_goal_evolution('grow', spec, {{{candles.symbol!r}: c}}, seed=3)
except GoalRunError as exc:
    print('refused:', exc)
print('jax imported:', 'jaxlib' in sys.modules)
""")
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=root)
