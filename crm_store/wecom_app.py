"""The WeCom (企业微信) app message API: a text to one member, from the company's app.

Two callers send app messages: the API's WeCom channel (a reply that missed the callback's budget)
and proactive care (staff reminders). Neither may import the other (imports point one way), so the
client lives here, in the bottom layer, next to the settings it is built from.

`wechatpy.enterprise.WeChatClient` does the work: `message/send` with the app's AgentId, the access
token fetched from `gettoken` with the CorpID and the app's Secret, kept in the client's memory
storage until a minute before it expires, fetched again when WeCom says it expired or is invalid.
Here it gets its server from `CRM_WECOM_API_BASE` (the token URL included: wechatpy's own names
qyapi.weixin.qq.com whatever the base says) and a timeout on every request (wechatpy's token fetch
has none). One client per app and server per process, so the token is fetched once per process.

`send_app_text` raises `Unavailable("wecom_send_failed", reason=...)`; the reason is a short code
(`wecom_error:<errcode>`, `wecom_unreachable:<exception>`, …) without the userid, the text or the
URL (which would carry the access token).
"""

import threading
from typing import Any, Final

import requests
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from crm_store.errors import Unavailable
from crm_store.settings import WecomSettings
from crm_store.tencent_api import TimeoutSession

__all__ = ["TIMEOUT_S", "send_app_text", "wecom_app_client"]

TIMEOUT_S: Final = 10.0
"""Seconds for each request to the WeCom API (the token fetch included)."""

_clients: dict[tuple[str, str, str], WeChatClient] = {}
_clients_lock = threading.Lock()


class _AppClient(WeChatClient):  # type: ignore[misc]  # wechatpy has no type hints
    """wechatpy's WeCom client with its server taken from `CRM_WECOM_API_BASE`, the token URL included."""

    def __init__(self, corp_id: str, secret: str, api_base: str) -> None:
        super().__init__(corp_id, secret, timeout=TIMEOUT_S)
        self.API_BASE_URL = api_base.rstrip("/") + "/cgi-bin/"
        self._http = TimeoutSession(TIMEOUT_S)

    def fetch_access_token(self) -> Any:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
        )


def wecom_app_client(settings: WecomSettings) -> WeChatClient | None:
    """The app message client of these settings, one per app and server (token cached); None when
    `settings.app_messages_on` is false."""
    if not settings.app_messages_on or settings.secret is None or not settings.corp_id:
        return None
    secret = settings.secret.get_secret_value()
    key = (settings.corp_id, secret, settings.api_base)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _AppClient(settings.corp_id, secret, settings.api_base)
        return client


def send_app_text(settings: WecomSettings, userid: str, text: str) -> None:
    """Send `text` to the member `userid` as the app (`message/send`, msgtype text).

    Raises:
        Unavailable: "wecom_send_failed", `reason`: `wecom_not_configured` (no CorpID, AgentId or
            Secret), `wecom_error:<errcode>` (WeCom refused, e.g. 60020 for a server IP not trusted),
            `wecom_invalid_user` (the member is not in the app's visible range or left),
            `wecom_http_error` or `wecom_unreachable:<exception>`.
    """
    client = wecom_app_client(settings)
    if client is None:
        raise Unavailable("wecom_send_failed", reason="wecom_not_configured")
    try:
        result = client.message.send_text(settings.agent_id, userid, text)
    except WeChatClientException as exc:
        # errcode None: an HTTP error status (wechatpy's raise_for_status).
        reason = "wecom_http_error" if exc.errcode is None else f"wecom_error:{exc.errcode}"
        raise Unavailable("wecom_send_failed", reason=reason) from None
    except requests.RequestException as exc:
        # No message text: it names the URL, with the access token in its query.
        raise Unavailable("wecom_send_failed", reason=f"wecom_unreachable:{type(exc).__name__}") from None
    if isinstance(result, dict) and result.get("invaliduser"):
        raise Unavailable("wecom_send_failed", reason="wecom_invalid_user")
