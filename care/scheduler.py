"""The care scheduler process (`crmbot care run`): one leader ticks the care jobs, others stand by.

What runs:

- `care-run-once` every `CRM_CARE_INTERVAL_S` (600 s): `care.run.run_once`, which computes what is
  due, queues it in the outbox and sends it. `coalesce=True` and no misfire limit: after downtime
  the missed runs are caught up by exactly one run at start-up (the job and its next run time are
  kept in the `apscheduler_jobs` table of the CRM database); a repeat would be harmless anyway,
  since the outbox ignores a message it already has.
- `care-send-due` every `CRM_CARE_SEND_INTERVAL_S` (30 s): `care.run.send_due`, the sending half
  only, so that retries and messages held by quiet hours go out without waiting for the next run.
  Late ticks (a long run on the one worker thread) are merged into one, like the other job's.
- `analytics-refresh` every night at `CRM_ANALYTICS_REFRESH_TIME` (02:30 Beijing time):
  `crm_store.analytics.customer_value.refresh_scores`, every customer's value and risk as of the
  CRM clock's day, committed at once (minutes at a million customers on PostgreSQL). Like the care
  jobs it runs at once the first time it is installed (so a new store is scored when the scheduler
  first starts) and a night missed while the scheduler was down is caught up once at start.
- `conversation-retention` every night at `CRM_CONVERSATION_RETENTION_TIME` (03:30 Beijing time):
  `crm_store.personal_data.forget_old_conversations`, which blanks the texts of conversations older
  than `CRM_CONVERSATION_RETENTION_DAYS` (180) in Rasa's tracker store and in hand-off transcripts;
  installed, run at once and caught up like the nightly refresh.

All run on one worker thread, one at a time, each with the CRM clock's `now`.

Exactly one scheduler is active (`care.lock`): a process first takes the lock (an advisory lock on
PostgreSQL, a lease row on SQLite); without it, it waits and says so every `WAIT_LOG_INTERVAL_S`,
and takes over when the leader stops or dies. The leader renews the lock every third of the lease;
if it loses it, it stops its scheduler and waits again. The job store is therefore never used by
two schedulers at once (APScheduler's rule).

Log lines say what ran and how many messages went out, never to whom.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from care.lock import SchedulerLock, scheduler_lock
from care.run import CareReport, run_once, send_due
from crm_store import clock
from crm_store.analytics.customer_value import refresh_scores
from crm_store.db import make_session_factory
from crm_store.personal_data import forget_old_conversations, tracker_store
from crm_store.settings import (
    AnalyticsSettings,
    CareSettings,
    PrivacySettings,
    get_analytics_settings,
    get_privacy_settings,
)

__all__ = [
    "JOB_ANALYTICS_REFRESH",
    "JOB_CONVERSATION_RETENTION",
    "JOB_RUN_ONCE",
    "JOB_SEND_DUE",
    "JOBS_TABLE",
    "WAIT_LOG_INTERVAL_S",
    "analytics_refresh_job",
    "build_scheduler",
    "conversation_retention_job",
    "install_jobs",
    "run_once_job",
    "run_scheduler",
    "send_due_job",
    "stop_scheduler",
]

logger = logging.getLogger(__name__)

JOB_RUN_ONCE: Final = "care-run-once"
JOB_SEND_DUE: Final = "care-send-due"
JOB_ANALYTICS_REFRESH: Final = "analytics-refresh"
JOB_CONVERSATION_RETENTION: Final = "conversation-retention"
JOBS_TABLE: Final = "apscheduler_jobs"
WAIT_LOG_INTERVAL_S: Final = 30.0
"""A standby scheduler says that it is waiting this often."""
_MAX_WAIT_POLL_S: Final = 5.0


@dataclass(frozen=True)
class _Context:
    sessions: sessionmaker[Session]
    settings: CareSettings
    analytics: AnalyticsSettings = field(default_factory=get_analytics_settings)
    privacy: PrivacySettings = field(default_factory=get_privacy_settings)


# The jobs are stored by reference to the module-level functions below (APScheduler pickles the
# job, so it must name an importable function with plain arguments); what they need comes from
# here, set by `run_scheduler` in this process.
_context: _Context | None = None


def _require_context() -> _Context:
    if _context is None:
        raise RuntimeError("the care jobs run only inside run_scheduler")  # programming error
    return _context


def _log_report(what: str, report: CareReport, started: float) -> None:
    logger.info(
        "%s：发送 %d 条，推迟 %d 条，跳过 %d 条（%.1f 秒）",
        what,
        len(report.sent),
        len(report.deferred),
        len(report.skipped),
        time.monotonic() - started,
    )


def run_once_job() -> None:
    """The `care-run-once` job: compute what is due, queue it and send it."""
    context = _require_context()
    started = time.monotonic()
    report = run_once(context.sessions, now=clock.now(), settings=context.settings)
    _log_report("关怀计算完成", report, started)


def send_due_job() -> None:
    """The `care-send-due` job: send queued messages that are due (retries, quiet hours over)."""
    context = _require_context()
    started = time.monotonic()
    report = send_due(
        context.sessions, now=clock.now(), limit=context.settings.care_batch_size, settings=context.settings
    )
    if report.sent or report.deferred or report.skipped:
        _log_report("到期消息发送完成", report, started)


def analytics_refresh_job() -> None:
    """The `analytics-refresh` job: every customer's value and risk as of today, committed."""
    context = _require_context()
    started = time.monotonic()
    with context.sessions.begin() as session:
        count = refresh_scores(session, today=clock.today(), settings=context.analytics)
    logger.info("客户价值评分已重算：%d 位客户（%.1f 秒）", count, time.monotonic() - started)


def conversation_retention_job() -> None:
    """The `conversation-retention` job: blank the conversation texts older than the retention."""
    context = _require_context()
    started = time.monotonic()
    before = clock.now() - timedelta(days=context.privacy.conversation_retention_days)
    tracker = tracker_store()
    try:
        with context.sessions.begin() as session:
            report = forget_old_conversations(session, tracker, before=before)
    finally:
        if tracker is not None:
            tracker.dispose()
    logger.info(
        "已清除超过保留期的对话文字：对话事件 %d 条，转人工记录 %d 个，客服回复 %d 条（%.1f 秒）",
        report.tracker_events,
        report.handoff_cases,
        report.staff_messages,
        time.monotonic() - started,
    )


def build_scheduler(engine: Engine) -> BackgroundScheduler:
    """A scheduler with its job store in the CRM database and one worker thread."""
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=clock.TZ,
    )


def _job_specs(
    settings: CareSettings, analytics: AnalyticsSettings, privacy: PrivacySettings
) -> dict[str, dict[str, Any]]:
    # misfire_grace_time None: however late (the scheduler was down), a missed run happens, once.
    refresh = analytics.analytics_refresh_time
    retention = privacy.conversation_retention_time
    return {
        JOB_RUN_ONCE: {
            "func": run_once_job,
            "trigger": IntervalTrigger(seconds=settings.care_interval_s, timezone=clock.TZ),
        },
        JOB_SEND_DUE: {
            "func": send_due_job,
            "trigger": IntervalTrigger(seconds=settings.care_send_interval_s, timezone=clock.TZ),
        },
        JOB_ANALYTICS_REFRESH: {
            "func": analytics_refresh_job,
            "trigger": CronTrigger(hour=refresh.hour, minute=refresh.minute, timezone=clock.TZ),
        },
        JOB_CONVERSATION_RETENTION: {
            "func": conversation_retention_job,
            "trigger": CronTrigger(hour=retention.hour, minute=retention.minute, timezone=clock.TZ),
        },
    }


def _same_schedule(stored: BaseTrigger, wanted: BaseTrigger) -> bool:
    if isinstance(stored, IntervalTrigger) and isinstance(wanted, IntervalTrigger):
        return bool(stored.interval == wanted.interval)
    if isinstance(stored, CronTrigger) and isinstance(wanted, CronTrigger):
        return str(stored) == str(wanted) and str(stored.timezone) == str(wanted.timezone)
    return False


def install_jobs(
    scheduler: BackgroundScheduler,
    settings: CareSettings,
    *,
    now: datetime,
    analytics: AnalyticsSettings | None = None,
    privacy: PrivacySettings | None = None,
) -> None:
    """Add the jobs, keeping a stored job's next run time when its schedule is unchanged.

    A stored next run time in the past is the missed run that the scheduler then catches up, once.
    A job seen for the first time, or with a new schedule, runs at once. Call on a started, paused
    scheduler (the stored jobs are loaded at start).
    """
    specs = _job_specs(
        settings,
        analytics if analytics is not None else get_analytics_settings(),
        privacy if privacy is not None else get_privacy_settings(),
    )
    for job_id, spec in specs.items():
        trigger = spec["trigger"]
        stored = scheduler.get_job(job_id)
        if stored is not None and stored.func is spec["func"] and _same_schedule(stored.trigger, trigger):
            stored.modify(misfire_grace_time=None, coalesce=True, max_instances=1)
            continue
        scheduler.add_job(
            spec["func"],
            trigger,
            id=job_id,
            name=job_id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=now,
        )


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Stop without touching the stored jobs; wait for a job that is running.

    APScheduler 3 looks for due jobs once more after `shutdown` (its loop wakes up to stop), and
    would move a due job's next run time on without running it: a missed run, lost. The job store
    is therefore detached first. A running job is waited for, so that its claims are settled
    rather than left to expire.
    """
    scheduler.pause()
    scheduler.remove_jobstore("default", shutdown=True)
    scheduler.shutdown(wait=True)


def _lead(
    engine: Engine,
    lock: SchedulerLock,
    context: _Context,
    stop: threading.Event,
    heartbeat_s: float,
) -> None:
    """Run the jobs while this process holds the lock; return when stopping or when it is lost."""
    settings = context.settings
    scheduler = build_scheduler(engine)
    scheduler.start(paused=True)
    try:
        install_jobs(
            scheduler,
            settings,
            now=datetime.now(clock.TZ),
            analytics=context.analytics,
            privacy=context.privacy,
        )
        scheduler.resume()
        logger.info(
            "关怀调度器已启动：每 %.0f 秒计算一次到期关怀，每 %.0f 秒发送一次到期消息，"
            "每天 %s 重算客户价值评分，每天 %s 清除超过保留期的对话文字",
            settings.care_interval_s,
            settings.care_send_interval_s,
            context.analytics.analytics_refresh_time.strftime("%H:%M"),
            context.privacy.conversation_retention_time.strftime("%H:%M"),
        )
        while not stop.wait(heartbeat_s):
            if not lock.renew():
                logger.warning("关怀调度器失去了运行锁（可能另一个实例已接管），停止调度并转为待命")
                return
    finally:
        stop_scheduler(scheduler)


def run_scheduler(
    engine: Engine,
    settings: CareSettings,
    *,
    stop: threading.Event,
    lock: SchedulerLock | None = None,
    analytics: AnalyticsSettings | None = None,
) -> None:
    """Lead or stand by until `stop` is set; the body of `crmbot care run`.

    Args:
        engine: The CRM database (migrated).
        settings: The care settings (intervals, the lease on SQLite).
        stop: Set by the caller (a signal handler) to stop; the lock is then released.
        lock: The lock to hold; by default the one that fits the database (`care.lock`).
        analytics: The analytics settings (the nightly refresh's time); read from the environment
            when None.
    """
    global _context
    context = _Context(
        sessions=make_session_factory(engine),
        settings=settings,
        analytics=analytics if analytics is not None else get_analytics_settings(),
    )
    _context = context
    lock = lock if lock is not None else scheduler_lock(engine, ttl_s=settings.care_lock_ttl_s)
    heartbeat_s = settings.care_lock_ttl_s / 3
    poll_s = min(heartbeat_s, _MAX_WAIT_POLL_S)
    last_wait_log: float | None = None
    try:
        while not stop.is_set():
            if lock.try_acquire():
                last_wait_log = None
                logger.info("本进程成为唯一运行的关怀调度器")
                _lead(engine, lock, context, stop, heartbeat_s)
                continue
            if last_wait_log is None or time.monotonic() - last_wait_log >= WAIT_LOG_INTERVAL_S:
                logger.info("另一个关怀调度器正在运行，本进程待命，它停止后自动接管")
                last_wait_log = time.monotonic()
            stop.wait(poll_s)
    finally:
        lock.release()
        _context = None
        logger.info("关怀调度器已停止")
