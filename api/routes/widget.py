"""Rasa's standard web widget, served by the API: `/widget` (a page with it) and `/widget/webchat.js`.

The widget is botfront's `rasa-webchat`, unmodified, fetched from the npm registry by
scripts/vendor-webchat.sh (run by `make setup` / `make up`) into var/vendor/rasa-webchat/: no page
loads it from a CDN. It talks to the API's Socket.IO channel (api/channels/socketio.py), never to
Rasa, so its turns get the gateway's limits, hand-off relay and pushed messages. A shop embeds it
on its own site with the same two lines the page uses (docs/channels.md).
"""

import html
import logging
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from api import STATIC_DIR
from api.deps import SettingsDep
from crm_store.settings import VAR_DIR

__all__ = ["WIDGET_SCRIPT", "pages"]

logger = logging.getLogger(__name__)

WIDGET_SCRIPT: Final = VAR_DIR / "vendor" / "rasa-webchat" / "webchat.js"

# The widget is a React bundle that injects its own stylesheet and sets style attributes, hence
# 'unsafe-inline' for styles (never for scripts); its Socket.IO connection goes to this origin
# ('self' covers ws: of the same host). Images in bot messages may come from anywhere.
_WIDGET_CSP: Final = (
    "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The script's content only changes with scripts/vendor-webchat.sh's pinned version.
_A_DAY_S: Final = 24 * 3600

pages = APIRouter(include_in_schema=False)


@pages.get("/widget")
async def widget_page(settings: SettingsDep) -> HTMLResponse:
    """The widget on a page of its own, pointed at this API's Socket.IO path."""
    page = (STATIC_DIR / "widget.html").read_text(encoding="utf-8")
    page = page.replace("{socket_path}", html.escape(settings.socketio_path + "/"))
    return HTMLResponse(page, headers={"Content-Security-Policy": _WIDGET_CSP})


@pages.get("/widget/webchat.js")
async def widget_script() -> FileResponse:
    if not WIDGET_SCRIPT.is_file():
        logger.warning("the web widget is not installed (%s): run scripts/vendor-webchat.sh", WIDGET_SCRIPT)
        raise HTTPException(status_code=404)
    return FileResponse(
        WIDGET_SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": f"public, max-age={_A_DAY_S}"},
    )
