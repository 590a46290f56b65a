"""CLI hygiene: every option of every command says what it does, ``--help`` groups user commands
apart from server roles, ``--version`` answers, and a bad environment value is refused naming the
variable - all through the real ``kubetrade`` entry point."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata

import pytest

import kubetrade
from kubetrade.cli import SERVER_ROLES, build_parser, main


def _walk(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")
        else:
            yield path, action


def test_every_option_of_every_command_has_a_help_text() -> None:
    parser = build_parser()
    seen, missing = 0, []
    for path, action in _walk(parser, "kubetrade"):
        seen += 1
        if not action.help or not action.help.strip():
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert seen > 150  # every command's options were walked, not just the top level
    assert not missing, missing


def test_help_lists_user_commands_apart_from_server_roles(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    users, _, roles = out.partition("server roles")
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(SERVER_ROLES) <= set(commands)
    for name in commands:
        listed_in = users if name not in SERVER_ROLES else roles
        assert f"\n  {name} " in listed_in, name
        assert f"\n  {name} " not in (roles if name not in SERVER_ROLES else users), name
    assert "download-data" in users and "backtest" in users and "risk-manager" in roles
    assert out.count("\n  backtest ") == 1  # listed once, not again by argparse


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"kubetrade {kubetrade.__version__} (python ") and f"ccxt {metadata.version('ccxt')}" in out


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("KUBETRADE_METRICS_PORT", "abc", "KUBETRADE_METRICS_PORT='abc': not a whole number"),
    ("KUBETRADE_METRICS_PORT", "70000", "KUBETRADE_METRICS_PORT='70000': must be less than or equal to 65535"),
    ("KUBETRADE_LOG_LEVEL", "loud", "KUBETRADE_LOG_LEVEL='loud': must be 'debug', 'info', 'warning'"),
    ("KUBETRADE_RATE_LIMIT_PER_KEY", "1.5", "KUBETRADE_RATE_LIMIT_PER_KEY='1.5': not a whole number"),
    ("KUBETRADE_PAPER_LANES", "lots", "KUBETRADE_PAPER_LANES='lots': not a whole number"),
    ("KUBETRADE_ALERT_EVALUATION", "maybe", "KUBETRADE_ALERT_EVALUATION='maybe': not true/false"),
    ("KUBETRADE_EVENT_LOOP", "trio", "KUBETRADE_EVENT_LOOP='trio': must be 'uvloop' or 'asyncio'"),
])
def test_a_bad_environment_value_names_its_variable(variable: str, value: str, message: str) -> None:
    """Checked before any command runs (here a harmless one): exit 2, one line, no traceback."""
    import os

    out = subprocess.run([sys.executable, "-m", "kubetrade.cli", "validate", "--help"], capture_output=True,
                         text=True, env={**os.environ, variable: value}, timeout=120)
    assert out.returncode == 2
    err = out.stderr.strip()
    assert err == f"kubetrade: bad setting: {err.split('bad setting: ', 1)[1]}" and message in err
    assert "Traceback" not in out.stderr and "\n" not in err


def test_secrets_in_bad_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubetrade import settings

    monkeypatch.setenv("KUBETRADE_RATE_WINDOW_SECONDS", "0")
    with pytest.raises(settings.SettingsError) as exc:
        settings.load()
    assert "KUBETRADE_RATE_WINDOW_SECONDS='0'" in str(exc.value)
    monkeypatch.delenv("KUBETRADE_RATE_WINDOW_SECONDS")
    monkeypatch.setenv("KUBETRADE_API_KEY_PEPPER", "s3cret-pepper")
    loaded = settings.Settings()
    assert "s3cret" not in repr(loaded) and loaded.api_key_pepper.get_secret_value() == "s3cret-pepper"


def test_every_server_role_is_registered_by_the_module_its_process_imports() -> None:
    from kubetrade.cli import ROLE_MODULES

    assert set(ROLE_MODULES) == set(SERVER_ROLES)
    for role, module in ROLE_MODULES.items():
        commands = build_parser((module,))._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        assert role in commands, (role, module)


def test_a_server_role_imports_no_other_command_module(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The runner's real entry point with a Strategy file that does not parse: it refuses (exit 2) after
    importing what a runner imports at start; no other role's command module, nor what they drag in."""
    bad = tmp_path / "strategy.json"
    bad.write_text("{not json")
    code = ("import sys\nfrom kubetrade.cli import main\ncode = main(['runner', '--config', sys.argv[1]])\n"
            "print(code, ' '.join(sorted(k for k, m in sys.modules.items() if m is not None)))")
    out = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120)
    code_, _, modules = out.stdout.strip().rpartition("\n")[2].partition(" ")
    assert code_ == "2", out.stdout + out.stderr
    loaded = set(modules.split())
    assert "kubetrade.runner.runner" in loaded and "kubetrade.runner.commands" in loaded
    others = {m for m in loaded if m.endswith(("commands", "keycommands")) and m != "kubetrade.runner.commands"}
    assert others == set()
    assert not loaded & {"kubetrade.api", "kubetrade.api.keys", "kubetrade.engine.commands"}
    # nor the libraries a runner does not use (bench runner_footprint: each is MBs of every runner pod)
    unused = {"rich", "pydantic_settings", "yaml", "numpy", "numba", "aiohttp", "psycopg"}
    assert not {m.split(".")[0] for m in loaded} & unused
