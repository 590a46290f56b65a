"""``/docs``: the OpenAPI document in Swagger UI, served from the package's own copy.

FastAPI's default page loads Swagger UI from a CDN and a favicon from fastapi's site, so in an
air-gapped cluster it is blank.  The assets are vendored under ``static/vendor/swagger-ui``
(``scripts/vendor-web-assets.sh``, with their licence) and served at ``/static``; the
validator badge, which would ask an outside service about the document, is off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

STATIC = Path(__file__).with_name("static")
router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{root}/static/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/vendor/swagger-ui/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
    )
