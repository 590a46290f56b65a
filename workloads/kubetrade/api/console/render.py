"""Templates, the filters they format figures with, and the headers every console page carries."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
"""Only the API's own origin: the browser itself refuses anything from another host (no CDN, no inline
script). Inline *styles* are allowed: lightweight-charts sizes its canvases with style attributes."""

HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, jinja2.Undefined):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def money(x: Any, signed: bool = False) -> str:
    f = _finite(x)
    if f is None:
        return "-"
    return f"{f:+,.2f}" if signed else f"{f:,.2f}"


def pct(x: Any, digits: int = 2) -> str:
    f = _finite(x)
    return "-" if f is None else f"{f:.{digits}%}"


def num(x: Any, digits: int = 2) -> str:
    f = _finite(x)
    return "-" if f is None else f"{f:,.{digits}f}"


def qty(x: Any) -> str:
    f = _finite(x)
    return "-" if f is None else f"{f:.8g}"


def when(x: Any) -> str:
    if x is None or x == "" or isinstance(x, jinja2.Undefined):
        return "-"
    if isinstance(x, int | float):
        x = datetime.fromtimestamp(x / 1000, UTC)
    if isinstance(x, str):
        try:
            x = datetime.fromisoformat(x.replace("Z", "+00:00"))
        except ValueError:
            return str(x)
    if isinstance(x, datetime):
        return x.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(x)


def sign(x: Any) -> str:
    f = _finite(x)
    return "" if f is None or f == 0 else ("pos" if f > 0 else "neg")


for _name, _fn in {"money": money, "pct": pct, "num": num, "qty": qty, "when": when, "sign": sign}.items():
    TEMPLATES.env.filters[_name] = _fn
TEMPLATES.env.filters["tojson_safe"] = lambda v: json.dumps(v, default=str).replace("</", "<\\/")


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(HEADERS)
    return response


def fragment(template: str, **context: Any) -> str:
    text: str = TEMPLATES.env.get_template(template).render(**context)
    return text
