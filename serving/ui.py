"""Mount the browser UI: static HTML/CSS/ES modules from serving/web, served by the app itself (no CDN)."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent / "web"


class UIFiles(StaticFiles):
    """Static files that the browser may keep but must revalidate (ETag), so a deploy is seen at once."""

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_ui(app: FastAPI) -> None:
    app.mount("/ui", UIFiles(directory=WEB_DIR, html=True), name="ui")
    app.add_route("/", lambda _request: RedirectResponse("/ui/", status_code=307), include_in_schema=False)
