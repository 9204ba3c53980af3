"""api.weixin.qq.com on loopback: `/cgi-bin/token` and `/cgi-bin/message/custom/send`, every call recorded.

Shared by the WeChat channel's tests (tests/api) and the end-to-end ones (tests/e2e), where the
stack's `CRM_WECHAT_API_BASE` points here. Access tokens are `ACCESS-<n>`; every send is accepted.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SEND_PATH = "/cgi-bin/message/custom/send"


@dataclass
class FakeWechatApi:
    """api.weixin.qq.com on loopback: `/cgi-bin/token` and `/cgi-bin/message/custom/send`, recorded."""

    calls: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    base: str = ""
    sent: threading.Event = field(default_factory=threading.Event)


@contextmanager
def running_wechat_api() -> Iterator[FakeWechatApi]:
    fake = FakeWechatApi()

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
            fake.calls.append(("GET", url.path, parse_qs(url.query), None))
            if url.path == "/cgi-bin/token":
                self._answer({"access_token": f"ACCESS-{len(fake.calls)}", "expires_in": 7200})
            else:
                self._answer({"errcode": 404, "errmsg": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            fake.calls.append(("POST", url.path, parse_qs(url.query), body))
            self._answer({"errcode": 0, "errmsg": "ok"})
            if url.path == SEND_PATH:
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


def sent_texts(fake: FakeWechatApi, openid: str) -> list[str]:
    """The customer-service texts sent to `openid`, in order."""
    return [
        str(body["text"]["content"])
        for _method, path, _query, body in list(fake.calls)
        if path == SEND_PATH and body.get("touser") == openid
    ]
