"""What the image installs is what the console needs: the built wheel carries every template and
every vendored browser asset with its licence (a file left out would be a blank page in a pod)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
API = REPO / "workloads" / "kubetrade" / "api"


def test_the_wheel_carries_the_console_templates_and_assets(tmp_path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("kubetrade-*.whl"))
    inside = set(zipfile.ZipFile(wheel).namelist())
    needed = {f"kubetrade/api/{p.relative_to(API)}" for folder in ("console/templates", "static")
              for p in (API / folder).rglob("*") if p.is_file()}
    assert len(needed) > 25 and any(n.endswith("lightweight-charts/LICENSE") for n in needed)
    assert needed <= inside, sorted(needed - inside)
