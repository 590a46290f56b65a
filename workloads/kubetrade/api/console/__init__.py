"""The trader's console: server-rendered pages served by the API process at ``/console``.

Why this stack: the pages are Jinja2 templates rendered from the same models, route functions
and queries the JSON API uses (no second copy of the domain in JavaScript, no build step, no
Node in the image); htmx (0BSD) posts the forms and swaps in the answers; TradingView's
lightweight-charts (Apache-2.0) draws candles, equity and drawdown; a few lines of our own
JavaScript (``static/console.js``) follow one Server-Sent Events stream per page.  The libraries
are vendored into the package with their licences (``scripts/vendor-web-assets.sh``), and the
Content-Security-Policy allows the API's own origin only, so nothing is ever fetched from
another host - the console works in an air-gapped cluster.

Modules: :mod:`.session` (login by API key, the session cookie, CSRF), :mod:`.views` (pages),
:mod:`.actions` (forms and buttons, each calling the API operation it stands for),
:mod:`.panels` (what each panel shows), :mod:`.live` (the event stream), :mod:`.figures`
(the reads behind the panels), :mod:`.render` (templates and their filters).
"""

from __future__ import annotations

from fastapi import APIRouter

from kubetrade.api.console import actions, live, views

router = APIRouter()
router.include_router(views.router)
router.include_router(actions.router)
router.include_router(live.router)

__all__ = ["router"]
