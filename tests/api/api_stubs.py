"""An in-process stand-in for Rasa and the action server, served through `httpx.MockTransport`.

A module of its own (not conftest) so that tests can import the type for their fixtures.
"""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from pydantic import SecretStr

from api.auth import issue_token
from crm_store.accounts import hash_password, stamp_of
from crm_store.settings import ApiSettings

Headers = Callable[[str], dict[str, str]]
"""`as_("E02")` of tests/api/conftest.py: the bearer header of a demo employee's signed token."""

RASA_URL = "http://rasa.test:5005"
ACTION_SERVER_URL = "http://actions.test:5055"
RASA_HOST = httpx.URL(RASA_URL).host
ACTION_SERVER_HOST = httpx.URL(ACTION_SERVER_URL).host
# The signing key the test settings configure (`CRM_JWT_SECRET`).
JWT_SECRET = "test-jwt-secret-7c1e-not-for-production"
# An admin the `database_url` fixture adds to every test store, and a token signed in as them
# (made once per run: hashing a password on purpose takes time).
STAFF_ID = "E99"
STAFF_NAME = "测试管理员"
STAFF_PASSWORD = "test-pass-7c1e"
STAFF_PASSWORD_HASH = hash_password(STAFF_PASSWORD)
StaffHeaders = Callable[..., dict[str, str]]
"""The `staff_headers` fixture: `staff_headers("E70", role="sales")` adds such an employee, answers
their `Authorization` header."""
STAFF_TOKEN = issue_token(
    ApiSettings(jwt_secret=SecretStr(JWT_SECRET)), STAFF_ID, stamp_of(STAFF_PASSWORD_HASH)
).access_token


@dataclass
class StubServices:
    """A small HTTP stand-in for Rasa (`/webhooks/rest/webhook`, `/status`, `/`) and the
    action server (`/health`). Flip the attributes to simulate outages."""

    rasa_up: bool = True
    rasa_webhook_status: int = 200
    rasa_reply: Any = field(
        default_factory=lambda: [
            {"recipient_id": "u-1", "text": "您好，我是小助手～"},
            {
                "recipient_id": "u-1",
                "text": "请选择：",
                "buttons": [{"title": "查订单", "payload": "/check_order_status"}],
            },
            {"recipient_id": "u-1", "custom": {"chart": {"type": "bar"}}},
        ]
    )
    rasa_status_code: int = 200
    rasa_status_body: Any = field(
        default_factory=lambda: {"model_file": "models/20261123-zh.tar.gz", "model_id": "abc"}
    )
    rasa_root_status: int = 200
    action_server_up: bool = True
    # Raised from inside the transport, to reach the app's last-resort error handler.
    unexpected_error: Exception | None = None
    webhook_calls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.unexpected_error is not None:
            raise self.unexpected_error
        if request.url.host == RASA_HOST:
            return self._rasa(request)
        if request.url.host == ACTION_SERVER_HOST:
            if not self.action_server_up:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            if request.url.path == "/health":
                return httpx.Response(200, json={"status": "ok"})
        return httpx.Response(404)

    def _rasa(self, request: httpx.Request) -> httpx.Response:
        if not self.rasa_up:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        path = request.url.path
        if request.method == "POST" and path == "/webhooks/rest/webhook":
            self.webhook_calls.append(json.loads(request.content))
            # A well-formed list even on errors, so only the status can tell the gateway.
            if isinstance(self.rasa_reply, bytes):
                return httpx.Response(self.rasa_webhook_status, content=self.rasa_reply)
            return httpx.Response(self.rasa_webhook_status, json=self.rasa_reply)
        if request.method == "GET" and path == "/status":
            return httpx.Response(self.rasa_status_code, json=self.rasa_status_body)
        if request.method == "GET" and path == "/":
            return httpx.Response(self.rasa_root_status, text="Hello from Rasa: 3.6.21")
        return httpx.Response(404)


@contextmanager
def loopback_rasa(stubs: StubServices) -> Iterator[str]:
    """Serve `stubs` as Rasa over real HTTP on a free loopback port; yield its base URL.

    For tests that run the API as a server (uvicorn) with its own HTTP client. Every request is
    answered by `stubs.handle` as if sent to `RASA_URL`, so `webhook_calls` and the outage flags
    work as with the in-process transport; an outage (`rasa_up = False`) drops the connection
    without an answer, which the API's client sees as a transport error, as with a dead Rasa.
    """

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = httpx.Request(
                self.command,
                RASA_URL + self.path,
                headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"],
                content=self.rfile.read(length),
            )
            try:
                response = stubs.handle(request)
            except httpx.TransportError:
                self.close_connection = True
                return
            body = response.read()
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="loopback-rasa", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
