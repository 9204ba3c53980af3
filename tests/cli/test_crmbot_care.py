"""`crmbot care run-once|status` on the demo company: the issue's demo checks, day by day.

On a fresh store with the demo company imported (SQLite, and PostgreSQL when configured), with a
real SMTP server on loopback (aiosmtpd) for the e-mails:
11-23 reminds E02 of 张伟's and 李娜's birthdays and nudges the owners of exactly the lapsed
customers; a second run that day sends nothing; 11-24 skips 李娜's greeting (opt-out); 11-25
greets 张伟 by e-mail; 11-26 reminds E03 of 王芳's follow-up. Two processes started at once send
each message once.
"""

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.lapse import clear_population_gap_cache, lapsed_customers
from crm_store.models import Outbox
from crm_store.settings import PROJECT_ROOT, child_environment
from crmbot.cli import main
from tests.care.care_support import LocalSmtp


@pytest.fixture
def smtp() -> Iterator[LocalSmtp]:
    with LocalSmtp() as server:
        yield server


@pytest.fixture
def care_env(
    demo_store: sessionmaker[Session], tmp_path: Path, smtp: LocalSmtp, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of `crmbot care` on the demo store, with SMTP on loopback and a spool."""
    clear_population_gap_cache()
    url = demo_store.kw["bind"].url.render_as_string(hide_password=False)
    env = {
        "CRM_DATABASE_URL": url,
        "CRM_SMTP_URL": smtp.url,
        "CRM_CARE_SPOOL_DIR": str(tmp_path / "spool"),
        "CRM_TODAY": "2026-11-23",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _run(day: str, capsys: pytest.CaptureFixture[str]) -> dict[str, list[dict[str, Any]]]:
    assert main(["care", "run-once", "--today", day, "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report: dict[str, list[dict[str, Any]]] = json.loads(lines[-1])
    return report


def _pairs(items: list[dict[str, Any]], rule: str, audience: str) -> set[tuple[str | None, str | None]]:
    return {
        (i["customer_id"], i["employee_id"]) for i in items if i["rule"] == rule and i["audience"] == audience
    }


def test_the_demo_days_of_the_issue(
    care_env: dict[str, str],
    demo_store: sessionmaker[Session],
    smtp: LocalSmtp,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _run("2026-11-23", capsys)
    sent = first["sent"]
    assert {("C0001", "E02"), ("C0002", "E02")} <= _pairs(sent, "birthday", "staff")
    keys = {i["dedupe_key"] for i in sent}
    assert {
        "birthday:C0001:2026-11-25:staff:staff_inbox",
        "birthday:C0002:2026-11-24:staff:staff_inbox",
    } <= keys
    zhang = next(i for i in sent if i["dedupe_key"] == "birthday:C0001:2026-11-25:staff:staff_inbox")
    assert "王丽" in zhang["text"] and "张伟" in zhang["text"] and "11月25日" in zhang["text"]
    with demo_store() as session:
        lapsed = lapsed_customers(session, today=date(2026, 11, 23))
        owners = dict(
            session.execute(
                select(Outbox.customer_id, Outbox.employee_id).where(
                    Outbox.kind == "lapse", Outbox.employee_id.is_not(None)
                )
            ).all()
        )
    nudged = {i["customer_id"] for i in sent if i["rule"] == "lapse" and i["audience"] == "staff"}
    assert nudged == {c.customer_id for c in lapsed}
    assert len(nudged) > 0
    assert all(owners[c] for c in nudged)
    for item in sent:
        assert set(item) >= {
            "rule",
            "audience",
            "customer_id",
            "employee_id",
            "channel",
            "text",
            "dedupe_key",
        }
    assert Counter(i["dedupe_key"] for i in sent).most_common(1)[0][1] == 1

    assert _run("2026-11-23", capsys) == {"sent": [], "deferred": [], "skipped": []}

    second = _run("2026-11-24", capsys)
    assert not [i for i in second["sent"] + second["deferred"] if i["customer_id"] == "C0002"]
    (li_na,) = [i for i in second["skipped"] if i["customer_id"] == "C0002"]
    assert (li_na["rule"], li_na["audience"], li_na["reason"]) == ("birthday", "customer", "opt_out")

    mails_before = len(smtp.messages)
    third = _run("2026-11-25", capsys)
    (greeting,) = [i for i in third["sent"] if i["rule"] == "birthday" and i["audience"] == "customer"]
    assert (greeting["customer_id"], greeting["channel"]) == ("C0001", "email")
    assert "张伟" in greeting["text"] and "生日快乐" in greeting["text"]
    mails = smtp.messages[mails_before:]
    (mail,) = [m for m in mails if m["X-Care-Dedupe-Key"] == "birthday:C0001:2026-11-25:customer:email"]
    assert mail["To"].addresses[0].addr_spec == "c0001@example.com"
    assert mail["To"].addresses[0].display_name == "张伟"
    assert mail["Subject"] == "生日快乐"
    body = mail.get_content()
    assert "张伟女士，您好" in body and "生日快乐" in body

    fourth = _run("2026-11-26", capsys)
    (follow_up,) = [i for i in fourth["sent"] if i["rule"] == "follow_up" and i["customer_id"] == "C0003"]
    assert follow_up["employee_id"] == "E03"
    assert follow_up["dedupe_key"] == "follow_up:I09001:2026-11-26:staff:staff_inbox"
    assert "王芳" in follow_up["text"] and "二期报价单" in follow_up["text"]

    assert main(["care", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status["failed"] == 0 and status["pending"] == 0
    assert status["sent"] == sum(len(r["sent"]) for r in (first, second, third, fourth))


def test_two_processes_started_at_once_send_each_message_once(
    care_env: dict[str, str], demo_store: sessionmaker[Session], smtp: LocalSmtp, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "crmbot.cli", "care", "run-once", "--today", "2026-11-23", "--json"]
    environment = child_environment(care_env)
    processes = [
        subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode("utf-8", "replace")[-2000:]
        reports.append(json.loads(out.decode("utf-8").strip().splitlines()[-1]))
    sent = [item["dedupe_key"] for report in reports for item in report["sent"]]
    assert sent, "nothing was sent"
    assert len(sent) == len(set(sent))
    with demo_store() as session:
        in_store = session.scalar(select(func.count()).select_from(Outbox).where(Outbox.status == "sent"))
        everything = session.scalar(select(func.count()).select_from(Outbox))
    assert in_store == len(sent) == everything
    mailed = [m["X-Care-Dedupe-Key"] for m in smtp.messages]
    assert len(mailed) == len(set(mailed)) == len([k for k in sent if k.endswith(":email")])
    spool = tmp_path / "spool"
    for name in ("sms.jsonl", "wechat.jsonl"):
        if (spool / name).exists():
            lines = (spool / name).read_text(encoding="utf-8").splitlines()
            assert len(lines) == len({json.loads(line)["dedupe_key"] for line in lines})
