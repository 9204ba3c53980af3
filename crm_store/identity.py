"""Customer verification for the chat: a mainland mobile number plus one order number of that customer.

Until verified, a sender may see only what an order number alone reveals (`crm_store.orders`).
After `MAX_FAILED_ATTEMPTS` failures the check is locked for `LOCK_DURATION`, both for the
conversation and for the phone number tried, so that starting a new conversation does not allow
further guesses at someone's orders. A reply never says which of the two parts was wrong.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_store import clock
from crm_store.ids import begin_write
from crm_store.models import AuditLog, Customer, Order, VerificationAttempt
from crm_store.orders import parse_order_id
from crm_store.privacy import conversation_key, mask_phone, normalise_phone, phone_key, surname

MAX_FAILED_ATTEMPTS: Final = 3
"""Failed checks (per conversation, and per phone number tried) that lock verification."""

LOCK_DURATION: Final = timedelta(minutes=15)
"""How long verification stays locked after the last allowed failure; then three new tries."""

FAILURE_MEMORY: Final = timedelta(hours=24)
"""Failures older than this are forgotten: a typo yesterday does not count towards today's lock."""

Outcome = Literal["verified", "mismatch", "locked", "invalid"]

_HONORIFICS: Final = {"男": "先生", "女": "女士"}


@dataclass(frozen=True)
class Verification:
    """The result of one verification attempt; the chat words the reply (bot/domain/identity.yml).

    - `verified`: `customer_id`, `masked_phone` and `display_name` ("张先生") are set.
    - `mismatch`: phone and order do not belong together; `attempts_left` tries remain.
    - `locked`: too many failures; try again at `locked_until` (Asia/Shanghai).
    - `invalid`: the phone or order number is malformed (`invalid_field` says which: "phone" or
      "order_id"); this does not count as a failure.
    """

    outcome: Outcome
    customer_id: str | None = None
    masked_phone: str | None = None
    display_name: str | None = None
    attempts_left: int | None = None
    locked_until: datetime | None = None
    invalid_field: Literal["phone", "order_id"] | None = None

    @property
    def verified(self) -> bool:
        """True when the sender proved to be the customer."""
        return self.outcome == "verified"


def display_name(customer: Customer) -> str:
    """How the assistant addresses a customer: "张先生" / "张女士", or the name when gender is unknown."""
    honorific = _HONORIFICS.get(customer.gender or "")
    return f"{surname(customer.name)}{honorific}" if honorific else customer.name


def _subjects(conversation: str, phone: str | None) -> list[str]:
    subjects = [f"conversation:{conversation_key(conversation)}"]
    if phone is not None:
        subjects.append(f"phone:{phone_key(phone)}")
    return subjects


def _lock_end(session: Session, subjects: list[str], now: datetime) -> datetime | None:
    rows = session.scalars(select(VerificationAttempt).where(VerificationAttempt.subject.in_(subjects)))
    ends = [row.locked_until for row in rows if row.locked_until is not None and row.locked_until > now]
    return max(ends) if ends else None


def _locked(until: datetime) -> Verification:
    return Verification(outcome="locked", locked_until=until.astimezone(clock.TZ))


def verification_locked_until(
    session: Session, *, conversation: str, phone: str | None = None, now: datetime | None = None
) -> datetime | None:
    """When verification unlocks for this conversation (and phone, if given); None when it is open.

    Lets the chat say so before asking for a phone and an order number again.
    """
    moment = now if now is not None else clock.now()
    normalised = normalise_phone(phone) if phone is not None else None
    end = _lock_end(session, _subjects(conversation, normalised), moment)
    return end.astimezone(clock.TZ) if end is not None else None


def _record_failure(session: Session, subjects: list[str], now: datetime) -> tuple[int, datetime | None]:
    """Count a failure against each subject; the fewest tries left, and the lock end if one locked."""
    begin_write(session, VerificationAttempt)
    left = MAX_FAILED_ATTEMPTS
    locked_until: datetime | None = None
    for subject in subjects:
        # FOR UPDATE: two concurrent failures must both count (PostgreSQL; SQLite holds its write lock).
        locked_row = (
            select(VerificationAttempt).where(VerificationAttempt.subject == subject).with_for_update()
        )
        row = session.scalar(locked_row)
        if row is None:
            try:
                with session.begin_nested():
                    session.add(VerificationAttempt(subject=subject, failures=0, last_failed_at=now))
            except IntegrityError:
                pass  # a concurrent failure created the row first: count on it
            row = session.scalars(locked_row).one()
        expired_lock = row.locked_until is not None and row.locked_until <= now
        if expired_lock or row.last_failed_at < now - FAILURE_MEMORY:
            row.failures = 0
            row.locked_until = None
        row.failures += 1
        row.last_failed_at = now
        if row.failures >= MAX_FAILED_ATTEMPTS:
            row.locked_until = now + LOCK_DURATION
            locked_until = row.locked_until
        left = min(left, MAX_FAILED_ATTEMPTS - row.failures)
    session.flush()
    return left, locked_until


def verify_customer(
    session: Session, *, conversation: str, phone: str, order_id: str, now: datetime | None = None
) -> Verification:
    """Check that `phone` is the phone of the customer who placed `order_id`.

    Args:
        session: An open session; the caller commits (failures must be committed to count).
        conversation: The chat's sender id; only its hash is stored.
        phone: As typed; spaces, dashes and +86 are accepted.
        order_id: As typed; normalised with `parse_order_id`.
        now: The current time; the CRM clock by default.

    Returns:
        The outcome. A success clears the failures of this conversation and of this phone number.
    """
    moment = now if now is not None else clock.now()
    conversation_subject = _subjects(conversation, None)
    # A locked conversation learns nothing, not even whether its input is well formed.
    end = _lock_end(session, conversation_subject, moment)
    if end is not None:
        return _locked(end)

    normalised_phone = normalise_phone(phone)
    if normalised_phone is None:
        return Verification(outcome="invalid", invalid_field="phone")
    normalised_order = parse_order_id(order_id)
    if normalised_order is None:
        return Verification(outcome="invalid", invalid_field="order_id")

    subjects = _subjects(conversation, normalised_phone)
    end = _lock_end(session, subjects, moment)
    if end is not None:
        return _locked(end)

    order = session.get(Order, normalised_order)
    customer = order.customer if order is not None else None
    if customer is None or customer.phone != normalised_phone:
        left, locked_until = _record_failure(session, subjects, moment)
        if locked_until is not None:
            session.add(
                AuditLog(
                    actor_role="customer",
                    actor_id=conversation_key(conversation),
                    action="verification_locked",
                    entity="verification",
                    entity_id=None,
                    detail={"lock_minutes": int(LOCK_DURATION.total_seconds() // 60)},
                )
            )
            return _locked(locked_until)
        # Deliberately the same outcome whichever part was wrong.
        return Verification(outcome="mismatch", attempts_left=left)

    session.execute(delete(VerificationAttempt).where(VerificationAttempt.subject.in_(subjects)))
    # Seeing one's own orders is an access to personal data: it is audited, without the data itself.
    session.add(
        AuditLog(
            actor_role="customer",
            actor_id=conversation_key(conversation),
            action="verify_customer",
            entity="customer",
            entity_id=customer.customer_id,
            detail={"order_id": normalised_order},
        )
    )
    session.flush()
    name = display_name(customer)
    return Verification(
        outcome="verified",
        customer_id=customer.customer_id,
        masked_phone=mask_phone(customer.phone),
        display_name=name,
    )


def verified_customer_of(session: Session, *, conversation: str, since: datetime) -> str | None:
    """The customer this conversation proved to be at or after `since`, or None.

    Read from the audit trail that `verify_customer` writes (the conversation is known by its
    pseudonym only). The chat's own record, the `verified_customer_id` slot, lives in Rasa and lasts
    the dialogue session; callers pass a `since` no earlier than the session can reach back (the
    session expires 60 minutes after the last message, so a verification within the last 60 minutes
    is always one of the current session).
    """
    return session.scalar(
        select(AuditLog.entity_id)
        .where(
            AuditLog.action == "verify_customer",
            AuditLog.actor_id == conversation_key(conversation),
            AuditLog.occurred_at >= since,
        )
        .order_by(AuditLog.occurred_at.desc(), AuditLog.id.desc())
        .limit(1)
    )
