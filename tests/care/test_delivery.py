"""The delivery adapters: real SMTP on loopback, spool files, and failures as `DeliveryFailed`."""

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from care.delivery import DeliveryFailed, Email, EmailSpool, SmsSpool, channels
from crm_store.outbox import OutboxMessage
from crm_store.settings import CareSettings
from tests.care.care_support import LocalSmtp, free_port


def _message(channel: str = "email", address: str | None = "c0001@example.com") -> OutboxMessage:
    return OutboxMessage(
        id=7,
        rule="birthday",
        audience="customer",
        customer_id="C0001",
        employee_id=None,
        channel=channel,
        text="张伟女士，您好！今天是您的生日，祝您生日快乐！",
        dedupe_key=f"birthday:C0001:2026-11-25:customer:{channel}",
        attempts=0,
        recipient_name="张伟",
        address=address,
        opt_out=False,
    )


def test_email_arrives_in_chinese_addressed_to_the_customer() -> None:
    with LocalSmtp() as server:
        Email(server.url, sender="小助手 <care@localhost>", timeout_s=5).send(_message())
    (mail,) = server.messages
    assert server.collector.recipients == [["c0001@example.com"]]
    assert mail["To"].addresses[0].display_name == "张伟"
    assert mail["Subject"] == "生日快乐"
    assert mail["X-Care-Dedupe-Key"] == "birthday:C0001:2026-11-25:customer:email"
    assert "生日快乐" in mail.get_content()


def test_email_to_a_server_that_is_down_fails_without_the_address_in_the_reason() -> None:
    email = Email(f"smtp://127.0.0.1:{free_port()}", sender="care@localhost", timeout_s=2)
    with pytest.raises(DeliveryFailed) as raised:
        email.send(_message())
    assert raised.value.reason.startswith("smtp_unreachable:")
    assert "example.com" not in str(raised.value)


def test_email_without_address_or_with_a_bad_url_fails() -> None:
    with pytest.raises(DeliveryFailed, match="no_address"):
        Email("smtp://127.0.0.1:25", sender="care@localhost", timeout_s=1).send(_message(address=None))
    with pytest.raises(DeliveryFailed, match="smtp_url_invalid"):
        Email("http://example.com", sender="care@localhost", timeout_s=1).send(_message())


def test_spool_channels_append_one_json_line_per_message(tmp_path: Path) -> None:
    sms = SmsSpool(tmp_path)
    sms.send(_message("sms", "13800138000"))
    sms.send(_message("sms", "13800138000"))
    lines = [json.loads(line) for line in sms.path.read_text(encoding="utf-8").splitlines()]
    assert [line["to"] for line in lines] == ["13800138000", "13800138000"]
    assert lines[0]["dedupe_key"] == "birthday:C0001:2026-11-25:customer:sms"
    assert lines[0]["text"].startswith("张伟女士")


def test_channels_use_smtp_only_when_configured(tmp_path: Path) -> None:
    assert isinstance(channels(CareSettings(care_spool_dir=tmp_path))["email"], EmailSpool)
    configured = channels(CareSettings(care_spool_dir=tmp_path, smtp_url=SecretStr("smtp://127.0.0.1:2525")))
    assert isinstance(configured["email"], Email)
    assert set(configured) == {"staff_inbox", "web", "email", "sms", "wechat"}
