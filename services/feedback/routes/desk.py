"""The Oracle's desk (``/desk``, ``/`` redirects there) and the offline API docs (``/docs``).

Everything the browser loads ships in the package: the desk's HTML, CSS and JavaScript modules
(``services/feedback/static``), and Swagger UI's assets from the ``fastapi-offline`` wheel
(Swagger UI is Apache-2.0, the wheel MIT), served with FastAPI's documented self-hosting recipe.
No CDN, no network at run time.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "static"
SWAGGER = Path(str(files("fastapi_offline") / "static"))
# The desk loads only its own files and talks only to this server; links to public explorers
# open in a new tab without a Referer.
DESK_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(app: FastAPI) -> None:
    """Add the desk, its assets and the offline docs to ``app`` (created with
    ``docs_url=None``)."""
    app.mount("/desk/static", StaticFiles(directory=STATIC), name="desk-static")
    app.mount("/docs/static", StaticFiles(directory=SWAGGER), name="docs-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/desk", status_code=307)

    @app.get("/desk", include_in_schema=False)
    async def desk() -> FileResponse:
        return FileResponse(STATIC / "desk.html", media_type="text/html", headers=DESK_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def docs_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
