"""Delivery of care messages behind one interface: a `Channel` sends one claimed outbox message.

- `staff_inbox` (`StaffInbox`): nothing to do; the sent row is the employee's inbox (staff chat,
  `list_reminders`).
- `web` (`WebInbox`): nothing to do; the sent row waits in the chat for the verified customer.
- `email` (`Email`): one mail through `CRM_SMTP_URL` (`smtp://`, STARTTLS when offered, or
  `smtps://`); without it `EmailSpool` writes one JSON line to `email.jsonl` in the spool.
- `wechat` (`WechatTemplate`): a template message of the Official Account to the customer's
  linked follower (`crm_store.wechat_app.send_template_text`) when `CRM_WECHAT_CARE_TEMPLATE_ID`
  and the account's credentials are set; otherwise `WechatSpool`, one JSON line in `wechat.jsonl`.
- `sms` (`SmsSpool`): one JSON line in `sms.jsonl` until a provider is configured.
- `wecom` (`WecomApp`): a staff reminder as a WeCom (企业微信) app message to the employee's WeCom
  member (`crm_store.wecom_app.send_app_text`), when the WeCom app is configured.

A channel raises `DeliveryFailed` (an `Unavailable` of the error vocabulary, code
`delivery_failed`, `data["reason"]` a short code without personal data); the sender retries with
backoff and pauses the channel after repeated failures (`crm_store.outbox`). Every delivery carries
the message's dedupe key (the mail's `Message-ID` and `X-Care-Dedupe-Key`, the spool line's
`dedupe_key`), so that a provider can recognise a delivery retried after a crash.
"""

import hashlib
import json
import os
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit

from care.texts import email_subject
from crm_store.errors import Unavailable
from crm_store.outbox import OutboxMessage
from crm_store.settings import (
    CareSettings,
    WechatSettings,
    WecomSettings,
    get_wechat_settings,
    get_wecom_settings,
)
from crm_store.wechat_app import send_template_text, wechat_api_client
from crm_store.wecom_app import send_app_text

__all__ = [
    "Channel",
    "DeliveryFailed",
    "Email",
    "EmailSpool",
    "SmsSpool",
    "SpoolChannel",
    "StaffInbox",
    "WebInbox",
    "WechatSpool",
    "WechatTemplate",
    "WecomApp",
    "channels",
]

_MESSAGE_ID_DOMAIN: Final = "care.xiaozhushou"


class DeliveryFailed(Unavailable):
    """A channel could not deliver a message now; `reason` says why, without personal data."""

    def __init__(self, reason: str) -> None:
        super().__init__("delivery_failed", reason=reason)

    @property
    def reason(self) -> str:
        return str(self.data["reason"])


class Channel(Protocol):
    """One way of reaching people: `send` delivers a claimed message or raises `DeliveryFailed`."""

    name: str
    needs_address: bool
    """True when a message without `address` (no e-mail, phone, follower or member) cannot go out:
    it is skipped (`no_address`) rather than tried."""

    def send(self, message: OutboxMessage) -> None: ...


class StaffInbox:
    """The employee's inbox: the row itself, shown in the staff chat and by `list_reminders`."""

    name = "staff_inbox"
    needs_address = False

    def send(self, message: OutboxMessage) -> None:
        del message  # marking the row sent is the delivery


class WebInbox:
    """The customer's web inbox: the row itself, shown when the verified customer opens the chat."""

    name = "web"
    needs_address = False

    def send(self, message: OutboxMessage) -> None:
        del message


def _message_id(message: OutboxMessage) -> str:
    digest = hashlib.sha256(message.dedupe_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{_MESSAGE_ID_DOMAIN}>"


class Email:
    """Customer (and staff) e-mail through a real SMTP server (`CRM_SMTP_URL`, From `CRM_SMTP_FROM`)."""

    name = "email"
    needs_address = True

    def __init__(self, url: str, *, sender: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        # A wrong URL fails each send (and so pauses the channel, shown in the status) rather than
        # stopping every other channel of the run.
        self._valid = parts.scheme in ("smtp", "smtps") and bool(parts.hostname)
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname or ""
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._timeout = timeout_s

    def _mail(self, message: OutboxMessage) -> EmailMessage:
        if not message.address:
            raise DeliveryFailed("no_address")
        mail = EmailMessage()
        mail["From"] = self._sender
        try:
            mail["To"] = Address(display_name=message.recipient_name or "", addr_spec=message.address)
        except (ValueError, IndexError) as error:
            raise DeliveryFailed("address_invalid") from error
        mail["Subject"] = email_subject(message.rule)
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = _message_id(message)
        mail["X-Care-Dedupe-Key"] = message.dedupe_key
        mail.set_content(message.text, charset="utf-8")
        return mail

    def send(self, message: OutboxMessage) -> None:
        if not self._valid:
            raise DeliveryFailed("smtp_url_invalid")
        mail = self._mail(message)
        try:
            if self._tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            with client:
                client.ehlo()
                if not self._tls and client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                if self._user:
                    client.login(self._user, self._password or "")
                client.send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()})
            raise DeliveryFailed(f"smtp_recipient_refused:{codes[0] if codes else ''}") from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryFailed(f"smtp_error:{error.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as error:
            # No message text: it may name the server's view of the recipient.
            raise DeliveryFailed(f"smtp_unreachable:{type(error).__name__}") from None


class SpoolChannel:
    """Writes each message as one JSON line to `<spool>/<name>.jsonl`, for a provider to pick up.

    One `write` of one line on a file opened for appending, so lines of concurrent senders never
    interleave.
    """

    name = "spool"
    needs_address = False

    def __init__(self, spool_dir: Path) -> None:
        self._path = spool_dir / f"{self.name}.jsonl"

    @property
    def path(self) -> Path:
        return self._path

    def send(self, message: OutboxMessage) -> None:
        if not message.address and self.needs_address:
            raise DeliveryFailed("no_address")
        line = {
            "id": message.id,
            "dedupe_key": message.dedupe_key,
            "rule": message.rule,
            "audience": message.audience,
            "customer_id": message.customer_id,
            "employee_id": message.employee_id,
            "to": message.address,
            "name": message.recipient_name,
            "text": message.text,
        }
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as error:
            raise DeliveryFailed(f"spool_unwritable:{type(error).__name__}") from None


class SmsSpool(SpoolChannel):
    """SMS until a provider is configured: `sms.jsonl` with the phone number and the text."""

    name = "sms"
    needs_address = True


class WechatSpool(SpoolChannel):
    """WeChat messages while no care template is configured: `wechat.jsonl`."""

    name = "wechat"
    needs_address = False


class WechatTemplate:
    """Customers' WeChat messages as template messages of the Official Account.

    The template is `CRM_WECHAT_CARE_TEMPLATE_ID`; the message's text fills its
    `CRM_WECHAT_CARE_TEMPLATE_FIELD`.

    The follower is the message's `address`: the openid linked last to the customer at claim time
    (crm_store.wechat_links). A customer who never verified in the WeChat chat has none, and the
    message is skipped (`no_address`): WeChat allows messages only to followers of the account.
    """

    name = "wechat"
    needs_address = True

    def __init__(self, settings: WechatSettings) -> None:
        self._settings = settings

    def send(self, message: OutboxMessage) -> None:
        if not message.address:
            raise DeliveryFailed("no_address")
        try:
            send_template_text(self._settings, message.address, message.text)
        except Unavailable as error:
            raise DeliveryFailed(str(error.data.get("reason", "wechat_error"))) from None


class EmailSpool(SpoolChannel):
    """E-mail when `CRM_SMTP_URL` is unset: `email.jsonl`, so that a demo sends nothing for real."""

    name = "email"
    needs_address = True


class WecomApp:
    """Staff reminders as WeCom app messages, to the member linked to the employee.

    A channel of its own, with rows of its own, rather than a second delivery inside `StaffInbox`:
    `care.run` queues a `wecom` copy of each staff reminder whose employee is linked while the app
    is configured. So the inbox row is sent (and shown in the staff chat) whatever WeCom does, and
    a WeCom failure takes the ordinary way of any channel: its row retried with backoff, then
    failed, and the `wecom` channel alone paused after repeated failures. Inside `StaffInbox`, a
    failure would have held the inbox row back, given it up after the last attempt, and paused
    every staff reminder with the channel.

    The member is the message's `address` (`employees.wecom_userid` at claim time): an employee
    unlinked since the decision has none, and the message is skipped (`no_address`).
    """

    name = "wecom"
    needs_address = True

    def __init__(self, settings: WecomSettings) -> None:
        self._settings = settings

    def send(self, message: OutboxMessage) -> None:
        if not message.address:
            raise DeliveryFailed("no_address")
        try:
            send_app_text(self._settings, message.address, message.text)
        except Unavailable as error:
            raise DeliveryFailed(str(error.data.get("reason", "wecom_error"))) from None


def channels(
    settings: CareSettings, wecom: WecomSettings | None = None, wechat: WechatSettings | None = None
) -> dict[str, Channel]:
    """Every channel by name, configured from `settings` (and `wecom`, `wechat`, read from the
    environment when None: `wecom` is there only when the WeCom app can send messages; `wechat` is
    the template messages when a care template and the account's credentials are set, else the spool)."""
    email: Channel
    if settings.smtp_url is not None:
        email = Email(
            settings.smtp_url.get_secret_value(), sender=settings.smtp_from, timeout_s=settings.smtp_timeout_s
        )
    else:
        email = EmailSpool(settings.care_spool_dir)
    found: list[Channel] = [
        StaffInbox(),
        WebInbox(),
        email,
        SmsSpool(settings.care_spool_dir),
    ]
    wechat_settings = wechat if wechat is not None else get_wechat_settings()
    if wechat_settings.care_template_id and wechat_api_client(wechat_settings) is not None:
        found.append(WechatTemplate(wechat_settings))
    else:
        found.append(WechatSpool(settings.care_spool_dir))
    wecom_settings = wecom if wecom is not None else get_wecom_settings()
    if wecom_settings.app_messages_on:
        found.append(WecomApp(wecom_settings))
    return {channel.name: channel for channel in found}
