"""The ``kubetrade`` command line: CRD generation check and offline validation."""

from __future__ import annotations

from pathlib import Path

from kubetrade.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_crds_check_passes_on_repo(capsys) -> None:
    assert main(["crds", "generate", "--check", "--out", str(REPO / "crds")]) == 0


def test_crds_check_fails_on_stale(tmp_path: Path, capsys) -> None:
    assert main(["crds", "generate", "--check", "--out", str(tmp_path)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_validate_reports_field_and_reason(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: kubetrade.io/v1alpha1\nkind: Collector\nmetadata: {name: x}\n"
        "spec: {source: onchain, provider: twitter}\n"
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Collector/x" in err and "provider 'twitter' is not one of moralis, glassnode" in err
    assert main(["validate", str(REPO / "examples")]) == 0
