"""Regenerate the chart's generated files from their sources of truth.

    .venv/bin/python scripts/generate-chart-files.py

- files/dashboards/*.json   from kubetrade.observability.dashboards
- files/rbac/*.json         from kubetrade_operator.rbac (the operator's, the API's and the
                            evolution jobs' permissions, each with its reason, tested against a real
                            API server)

tests/chart and tests/observability fail when a generated file is out of date.
"""

from __future__ import annotations

import json
from pathlib import Path

from kubetrade.observability import dashboards
from kubetrade_operator import rbac

CHART = Path(__file__).resolve().parents[1] / "charts" / "kubetrade"


def rbac_files() -> dict[str, str]:
    return {name: json.dumps(rbac.rules(rules), indent=2) + "\n" for name, rules in rbac.CHART_FILES.items()}


def main() -> None:
    for path in dashboards.write(CHART / "files" / "dashboards"):
        print(path)
    for name, text in rbac_files().items():
        path = CHART / "files" / "rbac" / name
        path.write_text(text)
        print(path)
    for stale in sorted((CHART / "files" / "rbac").glob("*.json")):
        if stale.name not in rbac_files():
            stale.unlink()
            print(f"removed {stale}")


if __name__ == "__main__":
    main()
