"""qyapi.weixin.qq.com on loopback: `/cgi-bin/gettoken` and `/cgi-bin/message/send`, every call recorded.

Shared by the WeCom channel's tests (tests/api) and care's (tests/care). Set `refuse_with` to an
errcode to make every send fail as WeCom refuses (60020: the server's IP is not trusted), or
`expire_tokens` to answer that many sends with 42001 (access token expired) first.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CORP_ID = "wwa1b2c3d4e5f60789"
AGENT_ID = 1000002
SECRET = "wecom-app-secret-not-for-production"
TOKEN_PATH = "/cgi-bin/gettoken"
SEND_PATH = "/cgi-bin/message/send"


@dataclass
class FakeWecomApi:
    """What the fake was asked: (method, path, query, JSON body) per call."""

    calls: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    accepted: list[tuple[dict[str, list[str]], Any]] = field(default_factory=list)
    """The `message/send` calls answered errcode 0: (query, JSON body)."""
    base: str = ""
    refuse_with: int | None = None
    expire_tokens: int = 0
    sent: threading.Event = field(default_factory=threading.Event)

    def token_fetches(self) -> list[tuple[str, str, dict[str, list[str]], Any]]:
        return [c for c in self.calls if c[1] == TOKEN_PATH]


@contextmanager
def running_wecom_api() -> Iterator[FakeWecomApi]:
    fake = FakeWecomApi()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802  # http.server's name
            url = urlsplit(self.path)
            with lock:
                fake.calls.append(("GET", url.path, parse_qs(url.query), None))
                number = len(fake.token_fetches())
            if url.path == TOKEN_PATH:
                self._answer(
                    {"errcode": 0, "errmsg": "ok", "access_token": f"ACCESS-{number}", "expires_in": 7200}
                )
            else:
                self._answer({"errcode": 404, "errmsg": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            with lock:
                answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "invaliduser": ""}
                if fake.refuse_with is not None:
                    answer = {"errcode": fake.refuse_with, "errmsg": "refused"}
                elif fake.expire_tokens > 0:
                    fake.expire_tokens -= 1
                    answer = {"errcode": 42001, "errmsg": "access_token expired"}
                accepted = url.path == SEND_PATH and answer["errcode"] == 0
                fake.calls.append(("POST", url.path, parse_qs(url.query), body))
                if accepted:
                    fake.accepted.append((parse_qs(url.query), body))
            self._answer(answer)
            if accepted:
                fake.sent.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
