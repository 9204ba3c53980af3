"""`/widget`: Rasa's standard web widget, served by the API from the npm package, pointed at its Socket.IO
path.

The browser test (tests/e2e/test_browser_widget.py) chats through it; these check what is served.
"""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import api_settings
from api.routes.widget import WIDGET_SCRIPT
from crm_store.settings import PROJECT_ROOT, ApiSettings


def test_the_widget_page_points_the_widget_at_the_socketio_path(app: FastAPI, settings: ApiSettings) -> None:
    moved = settings.model_copy(update={"socketio_path": "/chat/io"})
    app.dependency_overrides[api_settings] = lambda: moved
    with TestClient(app) as client:
        page = client.get("/widget")

    assert page.status_code == 200
    assert 'data-socket-path="/chat/io/"' in page.text
    assert '<script src="/widget/webchat.js"></script>' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy


def test_the_widget_script_is_the_npm_package_served_here(client: TestClient) -> None:
    assert WIDGET_SCRIPT.is_file(), f"{WIDGET_SCRIPT} missing: scripts/vendor-webchat.sh fetches it"
    script = client.get("/widget/webchat.js")

    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.content == WIDGET_SCRIPT.read_bytes()
    # The pinned rasa-webchat build: its UMD bundle exposes `WebChat` and speaks Rasa's socket events.
    assert b"WebChat" in script.content and b"session_request" in script.content


def test_the_widget_page_loads_nothing_from_the_internet() -> None:
    for name in ("widget.html", "widget.js", "widget.css"):
        source = (PROJECT_ROOT / "api" / "static" / name).read_text(encoding="utf-8")
        assert "http://" not in source and "https://" not in source and "//cdn" not in source, name
