"""The care scheduler: its jobs, catching up after downtime, and real processes (one leader, SIGKILL).

The process tests start `python -m crmbot.care_process_cli` (what `crmbot up` and `crmbot care run`
run) on a crafted store: customers whose birthday is today, who prefer e-mail, delivered to a real
SMTP server on loopback (aiosmtpd). Each customer is due two messages: the owner's reminder
(staff inbox) and the greeting (e-mail).
"""

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

import care.scheduler as care_scheduler
from care.run import CareReport
from care.scheduler import (
    JOB_ANALYTICS_REFRESH,
    JOB_CONVERSATION_RETENTION,
    JOB_RUN_ONCE,
    JOB_SEND_DUE,
    analytics_refresh_job,
    build_scheduler,
    install_jobs,
    stop_scheduler,
)
from crm_store import clock
from crm_store.db import make_session_factory
from crm_store.models import CustomerScore, Order, Outbox
from crm_store.settings import PROJECT_ROOT, AnalyticsSettings, CareSettings, child_environment
from crmbot.cli import _parser
from tests.care.care_support import add_customer, add_employee, free_port

DAY = date(2026, 11, 23)
CUSTOMERS = 12
LEADER_LINE = "本进程成为唯一运行的关怀调度器"
STANDBY_LINE = "另一个关怀调度器正在运行"
RUN_LINE = "关怀计算完成"


# --- jobs, in process ------------------------------------------------------------------------


def _settings(**values: Any) -> CareSettings:
    return CareSettings(**{"care_interval_s": 600.0, "care_send_interval_s": 30.0, **values})


def test_install_jobs_adds_every_job_to_run_at_once(store_engine: Engine) -> None:
    scheduler = build_scheduler(store_engine)
    scheduler.start(paused=True)
    now = datetime.now(clock.TZ)
    try:
        install_jobs(scheduler, _settings(), now=now, analytics=AnalyticsSettings())
        jobs = {job.id: job for job in scheduler.get_jobs()}
    finally:
        stop_scheduler(scheduler)
    assert set(jobs) == {JOB_RUN_ONCE, JOB_SEND_DUE, JOB_ANALYTICS_REFRESH, JOB_CONVERSATION_RETENTION}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time is None
        assert job.next_run_time == now
    assert jobs[JOB_RUN_ONCE].trigger.interval == timedelta(seconds=600)
    assert jobs[JOB_SEND_DUE].trigger.interval == timedelta(seconds=30)


def test_install_jobs_keeps_a_missed_run_and_replaces_a_changed_interval(store_engine: Engine) -> None:
    first = build_scheduler(store_engine)
    first.start(paused=True)
    missed = datetime.now(clock.TZ) - timedelta(hours=5)
    install_jobs(first, _settings(), now=missed)
    stop_scheduler(first)

    # Restarted after five hours down: the stored next run (in the past) is kept, to be caught up.
    second = build_scheduler(store_engine)
    second.start(paused=True)
    try:
        install_jobs(second, _settings(), now=datetime.now(clock.TZ))
        assert second.get_job(JOB_RUN_ONCE).next_run_time == missed
        # A new interval is a new schedule: it starts now.
        now = datetime.now(clock.TZ)
        install_jobs(second, _settings(care_interval_s=120.0), now=now)
        job = second.get_job(JOB_RUN_ONCE)
        assert isinstance(job.trigger, IntervalTrigger) and job.trigger.interval == timedelta(seconds=120)
        assert job.next_run_time == now
    finally:
        stop_scheduler(second)


def test_the_nightly_analytics_refresh_runs_at_the_configured_time(store_engine: Engine) -> None:
    first = build_scheduler(store_engine)
    first.start(paused=True)
    missed = datetime.now(clock.TZ) - timedelta(days=1)
    install_jobs(first, _settings(), now=missed, analytics=AnalyticsSettings())
    job = first.get_job(JOB_ANALYTICS_REFRESH)
    assert isinstance(job.trigger, CronTrigger)
    # After the first run, the next one is at 02:30 Beijing time.
    following = job.trigger.get_next_fire_time(None, datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ))
    assert following == datetime(2026, 11, 24, 2, 30, tzinfo=clock.TZ)
    stop_scheduler(first)

    second = build_scheduler(store_engine)
    second.start(paused=True)
    try:
        # Restarted: the stored (missed) night is kept, to be caught up once.
        install_jobs(second, _settings(), now=datetime.now(clock.TZ), analytics=AnalyticsSettings())
        assert second.get_job(JOB_ANALYTICS_REFRESH).next_run_time == missed
        # Another time is another schedule: it runs at once, then nightly at 04:15.
        now = datetime.now(clock.TZ)
        install_jobs(
            second,
            _settings(),
            now=now,
            analytics=AnalyticsSettings.model_validate({"analytics_refresh_time": "04:15"}),
        )
        job = second.get_job(JOB_ANALYTICS_REFRESH)
        assert job.next_run_time == now
        following = job.trigger.get_next_fire_time(None, datetime(2026, 11, 23, 10, 0, tzinfo=clock.TZ))
        assert following == datetime(2026, 11, 24, 4, 15, tzinfo=clock.TZ)
    finally:
        stop_scheduler(second)


def test_the_analytics_job_scores_every_customer_as_of_today(
    store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TODAY", DAY.isoformat())
    factory = make_session_factory(store_engine)
    with factory.begin() as session:
        add_employee(session, "E02")
        for n in range(3):
            add_customer(session, f"C{n:04d}", owner_id="E02")
        session.add(
            Order(
                order_id="SO202611200001",
                customer_id="C0001",
                order_date=date(2026, 11, 20),
                status="已签收",
                amount=1000,
            )
        )
    monkeypatch.setattr(care_scheduler, "_context", care_scheduler._Context(factory, _settings()))
    analytics_refresh_job()
    with factory() as session:
        rows = {r.customer_id: r for r in session.scalars(select(CustomerScore))}
    assert set(rows) == {"C0000", "C0001", "C0002"}
    assert {r.computed_on for r in rows.values()} == {DAY}
    assert (rows["C0001"].value_tier, rows["C0001"].lifecycle, rows["C0001"].recency_days) == (
        "关键",
        "新客",
        3,
    )
    assert rows["C0000"].value_tier == "小客户" and rows["C0000"].lifecycle == "潜在"


def test_missed_runs_after_downtime_are_caught_up_once(
    store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[datetime] = []

    def fake_run_once(sessions: sessionmaker[Session], *, now: datetime, **_: Any) -> CareReport:
        calls.append(now)
        return CareReport(sent=[], deferred=[], skipped=[])

    monkeypatch.setattr(care_scheduler, "run_once", fake_run_once)
    monkeypatch.setattr(
        care_scheduler, "_context", care_scheduler._Context(make_session_factory(store_engine), _settings())
    )
    stored = build_scheduler(store_engine)
    stored.start(paused=True)
    # Every 60 s, last due three hours ago: 180 runs were missed while nothing ran.
    install_jobs(stored, _settings(care_interval_s=60.0), now=datetime.now(clock.TZ) - timedelta(hours=3))
    stored.remove_job(JOB_SEND_DUE)
    stop_scheduler(stored)

    scheduler = build_scheduler(store_engine)
    scheduler.start(paused=True)
    try:
        scheduler.resume()
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        scheduler.shutdown(wait=True)
    assert len(calls) == 1


def test_crmbot_care_run_is_the_scheduler_command() -> None:
    args = _parser().parse_args(["care", "run"])
    from crmbot import care_process_cli

    assert args.handler is care_process_cli._run


def test_crmbot_up_starts_the_scheduler_as_a_fourth_process(tmp_path: Path) -> None:
    from crmbot.stack import Stack, process_commands

    stack = Stack(
        database_url="sqlite:///x.db",
        tracker_url="sqlite:///t.db",
        rasa_port=5005,
        action_port=5055,
        api_host="127.0.0.1",
        api_port=8000,
        rasa_token=None,
    )
    commands = process_commands(stack, tmp_path / "model.tar.gz")
    assert list(commands) == ["rasa", "actions", "api", "care"]
    assert commands["care"][1:] == ["-m", "crmbot.care_process_cli"]


# --- real processes --------------------------------------------------------------------------


@dataclass
class GatedSmtp:
    """aiosmtpd on loopback that keeps every mail's recipients; `hold_after` mails, it stops
    answering RCPT until `gate` is set (a batch caught in the middle)."""

    hold_after: int | None = None
    received: list[tuple[str, ...]] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if self.hold_after is not None and len(self.received) >= self.hold_after:
            self.holding.set()
            while not self.gate.is_set():
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append(tuple(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[GatedSmtp, str]]:
    handler = GatedSmtp()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{port}"
    finally:
        handler.gate.set()
        controller.stop()


@pytest.fixture
def birthdays(store_engine: Engine) -> sessionmaker[Session]:
    """CUSTOMERS customers of E01 whose birthday is DAY and who prefer e-mail."""
    sessions = make_session_factory(store_engine)
    with sessions.begin() as session:
        add_employee(session, "E01")
        session.flush()
        for n in range(CUSTOMERS):
            add_customer(
                session, f"C{n:04d}", owner_id="E01", channel_pref="email", birthday=date(1990, 11, 23)
            )
    return sessions


@dataclass
class Scheduler:
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _start(engine: Engine, smtp_url: str, log: Path, tmp_path: Path) -> Scheduler:
    env = child_environment(
        {
            "CRM_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "CRM_TODAY": DAY.isoformat(),
            "CRM_SMTP_URL": smtp_url,
            "CRM_CARE_SPOOL_DIR": str(tmp_path / "spool"),
            # No quiet hours: the tests run at any hour.
            "CRM_CARE_QUIET_START": "00:00",
            "CRM_CARE_QUIET_END": "00:00",
            "CRM_CARE_INTERVAL_S": "3",
            "CRM_CARE_SEND_INTERVAL_S": "1",
            "CRM_CARE_LOCK_TTL_S": "3",
            "CRM_CARE_CLAIM_LEASE_S": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "crmbot.care_process_cli"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return Scheduler(process, log)


def _stop(*schedulers: Scheduler) -> None:
    for scheduler in schedulers:
        if scheduler.process.poll() is None:
            scheduler.process.send_signal(signal.SIGTERM)
    for scheduler in schedulers:
        try:
            scheduler.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            scheduler.process.kill()
            scheduler.process.wait()


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str, *logs: Scheduler) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n---\n".join(s.text()[-3000:] for s in logs))


def _count(sessions: sessionmaker[Session], *conditions: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Outbox).where(*conditions)) or 0)


def test_two_schedulers_started_at_once_only_one_runs(
    store_engine: Engine, birthdays: sessionmaker[Session], smtp: tuple[GatedSmtp, str], tmp_path: Path
) -> None:
    server, url = smtp
    first = _start(store_engine, url, tmp_path / "first.log", tmp_path)
    second = _start(store_engine, url, tmp_path / "second.log", tmp_path)
    try:
        _wait_for(
            lambda: (
                _count(birthdays, Outbox.status == "sent") == 2 * CUSTOMERS
                and len(server.received) == CUSTOMERS
            ),
            90,
            "every message sent",
            first,
            second,
        )
        _wait_for(
            lambda: STANDBY_LINE in first.text() + second.text(), 30, "the standby's line", first, second
        )
        leaders = [s for s in (first, second) if LEADER_LINE in s.text()]
        assert len(leaders) == 1, [s.text()[-2000:] for s in (first, second)]
        leader = leaders[0]
        standby = second if leader is first else first
        assert RUN_LINE in leader.text()
        assert RUN_LINE not in standby.text() and STANDBY_LINE in standby.text()
        # Each mail once: one per customer.
        assert sorted(r for (r,) in server.received) == sorted(
            f"c{n:04d}@example.com" for n in range(CUSTOMERS)
        )
        assert _count(birthdays) == 2 * CUSTOMERS

        # The leader stops: the standby takes over (at once on PostgreSQL, after the lease on SQLite).
        _stop(leader)
        _wait_for(lambda: LEADER_LINE in standby.text(), 30, "the standby to take over", standby)
        _wait_for(lambda: RUN_LINE in standby.text(), 30, "the new leader's first run", standby)
        assert len(server.received) == CUSTOMERS
    finally:
        _stop(first, second)


def test_scheduler_killed_mid_batch_then_restarted_sends_each_message_once(
    store_engine: Engine, birthdays: sessionmaker[Session], smtp: tuple[GatedSmtp, str], tmp_path: Path
) -> None:
    server, url = smtp
    server.hold_after = 3
    killed = _start(store_engine, url, tmp_path / "killed.log", tmp_path)
    restarted: Scheduler | None = None
    try:
        _wait_for(server.holding.is_set, 90, "the batch to reach the fourth mail", killed)
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(timeout=10)
        assert len(server.received) == 3
        emails_sent = _count(birthdays, Outbox.channel == "email", Outbox.status == "sent")
        assert emails_sent == 3  # each outcome is committed alone: the three delivered are marked
        assert _count(birthdays, Outbox.channel == "email", Outbox.status != "sent") == CUSTOMERS - 3
        server.gate.set()

        restarted = _start(store_engine, url, tmp_path / "restarted.log", tmp_path)
        _wait_for(
            lambda: (
                _count(birthdays, Outbox.status == "sent") == 2 * CUSTOMERS
                and len(server.received) >= CUSTOMERS
            ),
            90,
            "every message sent after the restart",
            restarted,
        )
        time.sleep(2.0)  # a duplicate would arrive now, if any
        recipients = sorted(r for (r,) in server.received)
        assert recipients == sorted(f"c{n:04d}@example.com" for n in range(CUSTOMERS))
        assert _count(birthdays) == 2 * CUSTOMERS
        assert _count(birthdays, Outbox.channel == "staff_inbox", Outbox.status == "sent") == CUSTOMERS
    finally:
        _stop(killed, *([restarted] if restarted else []))
