"""The WeChat Official Account's message API: customer-service texts and template messages.

Two callers send to followers: the API's WeChat channel (replies that missed the callback's budget,
staff replies of a hand-off) and proactive care (template messages to customers whose channel is
WeChat). Neither may import the other (imports point one way), so the client lives here, in the
bottom layer, beside `crm_store.wecom_app`, its WeCom counterpart.

`wechatpy.client.WeChatClient` does the work, its server taken from `CRM_WECHAT_API_BASE` (the
token URL included: wechatpy's own names api.weixin.qq.com whatever the base says), a timeout on
every request, and the access token in `crm_store.tencent_api.token_storage`: shared by the
processes in Redis when they are given a Redis URL (WeChat invalidates an older token five minutes
after a new one is fetched), else in this process's memory. One client per account, server and
storage per process.

`send_service_text` and `send_template_text` raise `Unavailable("wechat_send_failed", reason=...)`;
the reason is a short code (`wechat_error:<errcode>`, `wechat_unreachable:<exception>`) without the
openid, the text or the URL (which would carry the access token).
"""

import threading
from collections.abc import Callable
from typing import Any, Final

import requests
from wechatpy.client import WeChatClient
from wechatpy.exceptions import WeChatClientException

from crm_store.errors import Unavailable
from crm_store.settings import WechatSettings
from crm_store.tencent_api import TimeoutSession, token_storage

__all__ = ["TIMEOUT_S", "send_service_text", "send_template_text", "wechat_api_client"]

TIMEOUT_S: Final = 10.0
"""Seconds for each request to WeChat's API (the token fetch included)."""

_clients: dict[tuple[str, str, str, str | None], WeChatClient] = {}
_clients_lock = threading.Lock()


class _AccountClient(WeChatClient):  # type: ignore[misc]  # wechatpy has no type hints
    """wechatpy's client with its server taken from `CRM_WECHAT_API_BASE` (the token URL included)."""

    def __init__(self, app_id: str, secret: str, api_base: str, redis_url: str | None) -> None:
        storage = token_storage(redis_url, prefix=f"crm-wechat:{app_id}")
        super().__init__(app_id, secret, timeout=TIMEOUT_S, session=storage)
        self.API_BASE_URL = api_base.rstrip("/") + "/cgi-bin/"
        self._http = TimeoutSession(TIMEOUT_S)

    def fetch_access_token(self) -> Any:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


def wechat_api_client(settings: WechatSettings, redis_url: str | None = None) -> WeChatClient | None:
    """The message client of these settings (token cached; shared in Redis at `redis_url`), or None
    without an AppID and AppSecret."""
    if not settings.app_id or settings.app_secret is None:
        return None
    secret = settings.app_secret.get_secret_value()
    key = (settings.app_id, secret, settings.api_base, redis_url)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _AccountClient(settings.app_id, secret, settings.api_base, redis_url)
        return client


def send_service_text(
    settings: WechatSettings, openid: str, text: str, *, redis_url: str | None = None
) -> None:
    """Send `text` to the follower `openid` as a customer-service message (`message/custom/send`,
    possible within 48 hours of the follower's last message).

    Raises:
        Unavailable: "wechat_send_failed" (see the module's docstring for `reason`).
    """
    client = wechat_api_client(settings, redis_url)
    if client is None:
        raise Unavailable("wechat_send_failed", reason="wechat_not_configured")
    _sent(lambda: client.message.send_text(openid, text))


def _sent(call: Callable[[], Any]) -> None:
    try:
        call()
    except WeChatClientException as exc:
        # errcode None: an HTTP error status (wechatpy's raise_for_status).
        reason = "wechat_http_error" if exc.errcode is None else f"wechat_error:{exc.errcode}"
        raise Unavailable("wechat_send_failed", reason=reason) from None
    except requests.RequestException as exc:
        # No message text: it names the URL, with the access token in its query.
        raise Unavailable("wechat_send_failed", reason=f"wechat_unreachable:{type(exc).__name__}") from None


def send_template_text(settings: WechatSettings, openid: str, text: str) -> None:
    """Send `text` to the follower `openid` as the care template message (`message/template/send`).

    The template is `CRM_WECHAT_CARE_TEMPLATE_ID`; the text fills its field
    `CRM_WECHAT_CARE_TEMPLATE_FIELD` (a template whose content is `{{content.DATA}}`, say).

    Raises:
        Unavailable: "wechat_send_failed": no client or template configured, WeChat refused the
            message, or could not be reached (`reason` says which, without personal data).
    """
    client = wechat_api_client(settings)
    if client is None or not settings.care_template_id:
        raise Unavailable("wechat_send_failed", reason="wechat_not_configured")
    data = {settings.care_template_field: {"value": text}}
    template_id = settings.care_template_id
    _sent(lambda: client.message.send_template(openid, template_id, data))
