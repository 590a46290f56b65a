"""Alertmanager's configuration with its credentials read from a mounted Secret, never written in it.

Alertmanager 0.25 (Debian bookworm's) reads some credentials from files itself - Slack's
``api_url_file``, e-mail's ``auth_password_file``, an HTTP client's ``credentials_file`` and
``password_file`` - and the chart's configuration points those at the mounted Secret.  The
Telegram bot token, the Discord webhook URL and a generic webhook's URL have no ``*_file``
field before 0.26, so the configuration names them ``kubetrade-secret:<key>`` and
:func:`render` (run by the Alertmanager pod's init container, ``kubetrade alertmanager-config
render``) writes the final file, with those values read from the Secret, into a memory
emptyDir that only the pod sees: no credential is in a ConfigMap, a label or a log.

:func:`problems` is the preflight: a Secret key an enabled channel needs that is missing
or empty is an error naming the channel's field and the key - never the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER = "kubetrade-secret:"
FILE_FIELDS = ("api_url_file", "auth_password_file", "smtp_auth_password_file", "credentials_file",
               "password_file", "bot_token_file", "webhook_url_file", "url_file")

VERBATIM_FILES = ("auth_password_file", "smtp_auth_password_file")
"""Files Alertmanager 0.25 reads as they are, a trailing newline included."""


class ConfigError(ValueError):
    """The configuration cannot be rendered as it stands (what is missing, never a secret)."""


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any, Any]]:
    """(path, parent, key, value) of every scalar."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict | list):
            yield from _walk(value, here)
        else:
            yield here, node, key, value


def problems(config: dict[str, Any], secrets: Path) -> list[str]:
    """What an enabled channel needs from the Secret and does not find."""
    out = []
    for path, _, key, value in _walk(config):
        if isinstance(value, str) and value.startswith(PLACEHOLDER):
            name = value[len(PLACEHOLDER):]
            f = secrets / name
            if not f.is_file() or not f.read_text().strip():
                out.append(f"{path}: Secret key {name!r} is missing or empty (looked in {secrets})")
        elif key in FILE_FIELDS and isinstance(value, str):
            f = Path(value)
            if not f.is_file() or not f.read_text().strip():
                out.append(f"{path}: file {value} (a Secret key) is missing or empty")
            elif key in VERBATIM_FILES and f.read_text() != f.read_text().rstrip("\r\n"):
                out.append(f"{path}: file {value} ends with a newline, which Alertmanager 0.25 sends as part of "
                           "the password: store the Secret's value without one (kubectl create secret generic "
                           "--from-literal)")
    return out


def render(text: str, secrets: Path) -> str:
    """The configuration with every ``kubetrade-secret:<key>`` replaced by the key's value."""
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise ConfigError("the Alertmanager configuration is not a mapping")
    missing = problems(config, secrets)
    if missing:
        raise ConfigError("cannot configure Alertmanager's channels:\n  " + "\n  ".join(missing))
    for _, parent, key, value in list(_walk(config)):
        if isinstance(value, str) and value.startswith(PLACEHOLDER):
            parent[key] = (secrets / value[len(PLACEHOLDER):]).read_text().strip()
    return yaml.safe_dump(config, sort_keys=False, width=1000)
