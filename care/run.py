"""One care pass: decide what is due (every rule), queue it exactly once, send what is due.

`run_once` is what `crmbot care run-once` and the scheduler's periodic job call; `send_due` is the
sending half alone (the scheduler runs it more often). Both take the moment to act for (`now`), so
that `--today 2026-11-23` means 10:00 that day, and both are idempotent: a message is queued once
per dedupe key (`crm_store.outbox.enqueue`) and claimed by one sender (`claim_due`), so a second
call, or a second process at the same moment, sends nothing twice.

The report lists, for this call only: `sent` (delivered now), `deferred` (held for quiet hours or
retried after a failure, with the reason) and `skipped` (decided but never to be sent: `opt_out`,
`no_address`, or `failed` after the last attempt).

Quiet hours (`care_quiet_start`–`care_quiet_end`, Beijing time) hold customer-facing messages
until the next end of the quiet hours; staff reminders are never held.

WeCom: while the WeCom app can send messages (`WecomSettings.app_messages_on`), each staff reminder
to an employee linked to a WeCom member is also queued as a `wecom` message (its dedupe key ends in
`:wecom` instead of `:staff_inbox`), delivered by `care.delivery.WecomApp`; why a row of its own is
said there. The opt-out is read again
when a customer message is claimed, so an opt-out after the decision still stops it.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from care.delivery import Channel, DeliveryFailed, channels
from care.rules import RULES, DueEvent
from care.texts import render
from crm_store import clock
from crm_store.outbox import (
    NewMessage,
    OutboxMessage,
    claim_due,
    defer,
    enqueue,
    existing_keys,
    mark_failed,
    mark_sent,
    mark_skipped,
    record_channel_failure,
    record_channel_success,
)
from crm_store.settings import CareSettings, WecomSettings, get_care_settings, get_wecom_settings
from crm_store.vocab import (
    CARE_AUDIENCE_CUSTOMER,
    CARE_STAFF_CHANNEL,
    CARE_WECOM_CHANNEL,
    OUTBOX_STATUS_PENDING,
    OUTBOX_STATUS_SKIPPED,
)
from crm_store.wecom_links import wecom_userids

__all__ = [
    "CareItem",
    "CareReport",
    "in_quiet_hours",
    "quiet_hours_end",
    "run_once",
    "send_due",
    "today_at_ten",
]

logger = logging.getLogger(__name__)

REASON_QUIET_HOURS = "quiet_hours"
REASON_OPT_OUT = "opt_out"
REASON_NO_ADDRESS = "no_address"
REASON_FAILED = "failed"
REASON_CHANNEL_PAUSED = "channel_paused"


@dataclass(frozen=True)
class CareItem:
    """One message of a run's report."""

    rule: str
    audience: str
    customer_id: str | None
    employee_id: str | None
    channel: str
    text: str
    dedupe_key: str
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "rule": self.rule,
            "audience": self.audience,
            "customer_id": self.customer_id,
            "employee_id": self.employee_id,
            "channel": self.channel,
            "text": self.text,
            "dedupe_key": self.dedupe_key,
        }
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


@dataclass(frozen=True)
class CareReport:
    """What one call sent, deferred and skipped."""

    sent: list[CareItem] = field(default_factory=list)
    deferred: list[CareItem] = field(default_factory=list)
    skipped: list[CareItem] = field(default_factory=list)

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "sent": [item.to_json() for item in self.sent],
            "deferred": [item.to_json() for item in self.deferred],
            "skipped": [item.to_json() for item in self.skipped],
        }

    def extend(self, other: "CareReport") -> None:
        self.sent.extend(other.sent)
        self.deferred.extend(other.deferred)
        self.skipped.extend(other.skipped)


def in_quiet_hours(now: datetime, settings: CareSettings) -> bool:
    """Whether `now` (Beijing time) is within the quiet hours; they may span midnight."""
    wall = now.astimezone(clock.TZ).time()
    start, end = settings.care_quiet_start, settings.care_quiet_end
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def quiet_hours_end(now: datetime, settings: CareSettings) -> datetime:
    """The next end of the quiet hours after `now` (e.g. the next 09:00 in Beijing)."""
    local = now.astimezone(clock.TZ)
    end = datetime.combine(local.date(), settings.care_quiet_end, tzinfo=clock.TZ)
    return end if end > local else end + timedelta(days=1)


def _message(event: DueEvent) -> NewMessage:
    return NewMessage(
        rule=event.rule,
        audience=event.audience,
        customer_id=event.customer_id,
        employee_id=event.employee_id,
        channel=event.channel,
        text=render(event.template, **event.fields),
        dedupe_key=event.dedupe_key,
        status=OUTBOX_STATUS_SKIPPED if event.skip_reason else OUTBOX_STATUS_PENDING,
        reason=event.skip_reason,
    )


def _item(message: NewMessage | OutboxMessage, reason: str | None = None) -> CareItem:
    return CareItem(
        rule=message.rule,
        audience=message.audience,
        customer_id=message.customer_id,
        employee_id=message.employee_id,
        channel=message.channel,
        text=message.text,
        dedupe_key=message.dedupe_key,
        reason=reason,
    )


def _wecom_copies(session: Session, messages: list[NewMessage]) -> list[NewMessage]:
    """A `wecom` copy of each pending staff reminder whose employee is linked to a WeCom member."""
    staff = [m for m in messages if m.channel == CARE_STAFF_CHANNEL and m.status == OUTBOX_STATUS_PENDING]
    linked = wecom_userids(session, {m.employee_id for m in staff if m.employee_id is not None})
    suffix = f":{CARE_STAFF_CHANNEL}"
    return [
        replace(
            m,
            channel=CARE_WECOM_CHANNEL,
            dedupe_key=m.dedupe_key.removesuffix(suffix) + f":{CARE_WECOM_CHANNEL}",
        )
        for m in staff
        if m.employee_id in linked and m.dedupe_key.endswith(suffix)
    ]


def _decide(
    sessions: sessionmaker[Session],
    now: datetime,
    dry_run: bool,
    settings: CareSettings,
    wecom: WecomSettings,
) -> tuple[CareReport, list[NewMessage]]:
    """Run every rule; queue the new messages (unless a dry run). Returns the new skipped and pending."""
    report = CareReport()
    fresh_pending: list[NewMessage] = []
    for name, rule in RULES:
        try:
            with sessions.begin() as session:
                messages = [_message(event) for event in rule(session, now, settings)]
                if wecom.app_messages_on:
                    messages.extend(_wecom_copies(session, messages))
                if dry_run:
                    known = existing_keys(session, [m.dedupe_key for m in messages])
                    new_keys = {m.dedupe_key for m in messages} - known
                else:
                    # The decision and its queueing commit together: insert-or-ignore on dedupe_key.
                    new_keys = enqueue(session, messages, now=now)
        except Exception:
            # One broken rule must not stop the others; the traceback carries ids, not personal data.
            logger.exception("care rule %s failed", name)
            continue
        seen: set[str] = set()
        for message in messages:
            if message.dedupe_key not in new_keys or message.dedupe_key in seen:
                continue
            seen.add(message.dedupe_key)
            if message.status == OUTBOX_STATUS_SKIPPED:
                report.skipped.append(_item(message, message.reason))
            else:
                fresh_pending.append(message)
        logger.info("care rule %s: %d due, %d new", name, len(messages), len(seen))
    return report, fresh_pending


def run_once(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    dry_run: bool = False,
    settings: CareSettings | None = None,
    adapters: Mapping[str, Channel] | None = None,
    wecom: WecomSettings | None = None,
) -> CareReport:
    """Compute due events (each rule), queue them exactly once, then send what is due.

    Args:
        sessions: The store's session factory.
        now: The moment to act for (aware).
        dry_run: Decide only: nothing is queued or sent; the report shows what would be.
        settings: Care settings; read from the environment when None.
        adapters: Channels by name (tests pass fakes); `care.delivery.channels(settings)` when None.
        wecom: The WeCom app's settings (whether to queue WeCom copies, and how to send them); read
            from the environment when None.

    Returns:
        The report of this call: every message queued now is in it once, as sent, deferred or skipped.
    """
    config = settings if settings is not None else get_care_settings()
    wecom_config = wecom if wecom is not None else get_wecom_settings()
    report, fresh = _decide(sessions, now, dry_run, config, wecom_config)
    if dry_run:
        quiet = in_quiet_hours(now, config)
        for message in fresh:
            if quiet and message.audience == CARE_AUDIENCE_CUSTOMER:
                report.deferred.append(_item(message, REASON_QUIET_HOURS))
            else:
                report.sent.append(_item(message))
        return report
    report.extend(
        send_due(
            sessions,
            now=now,
            limit=config.care_batch_size,
            settings=config,
            adapters=adapters,
            wecom=wecom_config,
        )
    )
    return report


def send_due(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    limit: int = 200,
    settings: CareSettings | None = None,
    adapters: Mapping[str, Channel] | None = None,
    wecom: WecomSettings | None = None,
) -> CareReport:
    """Only the sending half: claim due pending messages, send, mark them sent, deferred or failed.

    Claims are committed before sending and each outcome is committed alone, so a sender killed
    mid-batch loses at most the claims it held; they are claimed again after `care_claim_lease_s`.
    `wecom` configures the WeCom channel when `adapters` is None (read from the environment when None).
    """
    config = settings if settings is not None else get_care_settings()
    table = adapters if adapters is not None else channels(config, wecom)
    report = CareReport()
    while True:
        with sessions.begin() as session:
            batch = claim_due(session, now=now, limit=limit, settings=config)
        if not batch:
            break
        paused: set[str] = set()
        for message in batch:
            _send_one(sessions, message, now=now, settings=config, table=table, paused=paused, report=report)
        if len(batch) < limit:
            break
    if report.sent or report.deferred or report.skipped:
        logger.info(
            "care sent %d, deferred %d, skipped %d",
            len(report.sent),
            len(report.deferred),
            len(report.skipped),
        )
    return report


def _send_one(
    sessions: sessionmaker[Session],
    message: OutboxMessage,
    *,
    now: datetime,
    settings: CareSettings,
    table: Mapping[str, Channel],
    paused: set[str],
    report: CareReport,
) -> None:
    customer_facing = message.audience == CARE_AUDIENCE_CUSTOMER
    if message.channel in paused:
        with sessions.begin() as session:
            defer(session, message.id, until=now)
        return
    if customer_facing and message.opt_out:
        with sessions.begin() as session:
            mark_skipped(session, message.id, reason=REASON_OPT_OUT)
        report.skipped.append(_item(message, REASON_OPT_OUT))
        return
    if customer_facing and in_quiet_hours(now, settings):
        with sessions.begin() as session:
            defer(session, message.id, until=quiet_hours_end(now, settings))
        report.deferred.append(_item(message, REASON_QUIET_HOURS))
        return
    channel = table.get(message.channel)
    if channel is not None and channel.needs_address and not message.address:
        with sessions.begin() as session:
            mark_skipped(session, message.id, reason=REASON_NO_ADDRESS)
        report.skipped.append(_item(message, REASON_NO_ADDRESS))
        return
    try:
        if channel is None:
            raise DeliveryFailed("channel_unknown")
        channel.send(message)
    except Exception as error:
        reason = error.reason if isinstance(error, DeliveryFailed) else f"error:{type(error).__name__}"
        if not isinstance(error, DeliveryFailed):
            logger.exception("care message %d on %s raised", message.id, message.channel)
        with sessions.begin() as session:
            retried = mark_failed(session, message.id, now=now, error=reason, settings=settings)
            if record_channel_failure(session, message.channel, error=reason, settings=settings):
                paused.add(message.channel)
                logger.warning("care channel %s paused after repeated failures", message.channel)
        logger.warning("care message %d on %s failed: %s", message.id, message.channel, reason)
        if retried:
            report.deferred.append(_item(message, reason))
        else:
            report.skipped.append(_item(message, REASON_FAILED))
        return
    with sessions.begin() as session:
        mark_sent(session, message.id, now=now)
        record_channel_success(session, message.channel)
    report.sent.append(_item(message))


def today_at_ten(day: date) -> datetime:
    """10:00 in Beijing on `day`: what `--today D` means."""
    return datetime.combine(day, time(10, 0), tzinfo=clock.TZ)
