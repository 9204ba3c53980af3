"""SQLAlchemy models of the CRM store.

Tables are named after the CSV files of the import format, with the CSV columns as they are, so that
SQL written by a person reads naturally. Enumerated columns are plain strings validated against
`crm_store.vocab` (no CHECK constraints). Money is `Numeric(12, 2)` in CNY. Datetimes are
timezone-aware and stored in UTC on every backend; dates from the CSV files stay plain dates.

`customers.created_at` is the CSV's "customer since" date; every other `created_at` is the time the
row was written. Rows of the imported tables carry an `updated_at` set by the importer and services.
"""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    false,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from crm_store import clock
from crm_store.vocab import (
    HANDOFF_MESSAGE_REPLY,
    HANDOFF_STATUS_OPEN,
    OUTBOX_STATUS_PENDING,
    TASK_STATUS_OPEN,
    UNANSWERED_STATUS_OPEN,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC and always returned with a timezone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive datetime is ambiguous (UTC? Beijing time?); refuse it rather than guess. This is
            # a programming error inside a column type, not a refusal of a service, so it stays a
            # plain TypeError (SQLAlchemy wraps it in a StatementError) rather than a CrmError:
            # no caller can choose a reply for it, and every time the services write is aware.
            raise TypeError("naive datetime given for a timezone-aware column")
        # SQLite keeps no offset, so the stored wall time must be UTC for reads to be right.
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _now() -> datetime:
    return clock.now()


class Base(DeclarativeBase):
    """Base of all CRM models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        Decimal: Numeric(12, 2),
        dict[str, Any]: JSON(),
    }


IntPk = Annotated[int, mapped_column(Integer, primary_key=True, autoincrement=True)]
CreatedAt = Annotated[datetime, mapped_column(default=_now, server_default=func.now())]
UpdatedAt = Annotated[datetime, mapped_column(default=_now, onupdate=_now, server_default=func.now())]
PersonName = Annotated[str, mapped_column(String(64))]
EnumStr = Annotated[str, mapped_column(String(16))]


class Employee(Base):
    """A member of staff: manager, salesperson, service agent or administrator."""

    __tablename__ = "employees"
    __table_args__ = (Index("uq_employees_wecom_userid", "wecom_userid", unique=True),)

    employee_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[PersonName]
    role: Mapped[EnumStr]
    region: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    # Staff sign-in (crm_store/accounts.py): an argon2 hash, never the password; no hash, no sign-in.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Consecutive failed sign-ins, and the end of the lock-out they caused.
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None]
    # The employee's WeCom (企业微信) member id (crm_store/wecom_links.py): their messages to the WeCom
    # app are theirs, with their role and scope. One employee per WeCom member (a unique index, which
    # SQLite can add to an existing table, unlike a unique constraint).
    wecom_userid: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[UpdatedAt]

    customers: Mapped[list["Customer"]] = relationship(back_populates="owner")
    tickets: Mapped[list["Ticket"]] = relationship(back_populates="assignee")
    interactions: Mapped[list["Interaction"]] = relationship(back_populates="employee")
    opportunities: Mapped[list["Opportunity"]] = relationship(back_populates="owner")
    tasks: Mapped[list["Task"]] = relationship(back_populates="owner")

    def __repr__(self) -> str:
        return f"Employee({self.employee_id!r}, {self.name!r})"


class Product(Base):
    """An item of the catalogue, priced in CNY."""

    __tablename__ = "products"

    product_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    category: Mapped[str | None] = mapped_column(String(64))
    price: Mapped[Decimal]
    updated_at: Mapped[UpdatedAt]

    order_items: Mapped[list["OrderItem"]] = relationship(back_populates="product")

    def __repr__(self) -> str:
        return f"Product({self.product_id!r}, {self.name!r})"


class Customer(Base):
    """A person or a company (type 企业, with `company`) that buys from us."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[PersonName] = mapped_column(index=True)
    type: Mapped[EnumStr]
    company: Mapped[str | None] = mapped_column(String(128))
    gender: Mapped[str | None] = mapped_column(String(4))
    birthday: Mapped[date | None]
    # Normalised to 11 digits by the importer, so that an exact lookup by phone works.
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    city: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(32))
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("employees.employee_id"), index=True)
    channel_pref: Mapped[str | None] = mapped_column(String(16))
    opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[date | None]
    notes: Mapped[str | None] = mapped_column(Text)
    # What the customer likes, one item per line ("靠窗的座位", "周末送货"): staff keep it by chat.
    preferences: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[UpdatedAt]

    owner: Mapped[Employee | None] = relationship(back_populates="customers")
    orders: Mapped[list["Order"]] = relationship(back_populates="customer")
    tickets: Mapped[list["Ticket"]] = relationship(back_populates="customer")
    interactions: Mapped[list["Interaction"]] = relationship(back_populates="customer")
    opportunities: Mapped[list["Opportunity"]] = relationship(back_populates="customer")
    tasks: Mapped[list["Task"]] = relationship(back_populates="customer")
    outbox_messages: Mapped[list["Outbox"]] = relationship(back_populates="customer")

    def __repr__(self) -> str:
        return f"Customer({self.customer_id!r}, {self.name!r})"


class Order(Base):
    """A sales order; its id has the form SO + 12 digits."""

    __tablename__ = "orders"
    # The lapse rule walks each customer's counted order days in date order (a window `lag`) with
    # their count and spend: PostgreSQL reads them presorted from this index, without the table.
    __table_args__ = (
        Index(
            "ix_orders_customer_id_order_date",
            "customer_id",
            "order_date",
            postgresql_include=["status", "amount"],
        ),
    )

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    order_date: Mapped[date] = mapped_column(index=True)
    status: Mapped[EnumStr]
    amount: Mapped[Decimal]
    promised_date: Mapped[date | None]
    carrier: Mapped[str | None] = mapped_column(String(32))
    tracking_no: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[UpdatedAt]

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list["OrderItem"]] = relationship(back_populates="order", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"Order({self.order_id!r}, {self.status!r})"


class OrderItem(Base):
    """One product line of an order."""

    __tablename__ = "order_items"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id"), primary_key=True, index=True)
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    updated_at: Mapped[UpdatedAt]

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship(back_populates="order_items")

    def __repr__(self) -> str:
        return f"OrderItem({self.order_id!r}, {self.product_id!r})"


class Ticket(Base):
    """A complaint or service case.

    The CSV columns come first. The others are written when a ticket is filed through the chat or the
    API (imported tickets leave them empty): `due_at` is the SLA deadline, `assigned_at` drives the
    round robin of assignees, and `request_key` makes filing the same complaint twice a no-op. A
    ticket filed by someone not verified has no `customer_id`.
    """

    __tablename__ = "tickets"

    ticket_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    category: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[EnumStr]
    status: Mapped[EnumStr] = mapped_column(index=True)
    opened_at: Mapped[date]
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("employees.employee_id"), index=True)
    summary: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[UpdatedAt]
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.order_id"), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    contact_phone: Mapped[str | None] = mapped_column(String(20))
    channel: Mapped[str | None] = mapped_column(String(16))
    # Indexed because "deadlines about to pass" is a question of the care scheduler.
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    assigned_at: Mapped[datetime | None]
    rating: Mapped[int | None]
    rated_at: Mapped[datetime | None]
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    customer: Mapped[Customer | None] = relationship(back_populates="tickets")
    assignee: Mapped[Employee | None] = relationship(back_populates="tickets")

    def __repr__(self) -> str:
        return f"Ticket({self.ticket_id!r}, {self.status!r})"


class Interaction(Base):
    """A visit, call or message between an employee and a customer, with an optional next step."""

    __tablename__ = "interactions"

    interaction_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.employee_id"), index=True)
    kind: Mapped[EnumStr]
    occurred_at: Mapped[date]
    summary: Mapped[str] = mapped_column(Text)
    next_step: Mapped[str | None] = mapped_column(Text)
    # Indexed because "follow-ups due" is a daily question of the care scheduler.
    next_date: Mapped[date | None] = mapped_column(index=True)
    updated_at: Mapped[UpdatedAt]

    customer: Mapped[Customer] = relationship(back_populates="interactions")
    employee: Mapped[Employee] = relationship(back_populates="interactions")

    def __repr__(self) -> str:
        return f"Interaction({self.interaction_id!r}, {self.kind!r})"


class Opportunity(Base):
    """A sales opportunity in the pipeline."""

    __tablename__ = "opportunities"

    opportunity_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("employees.employee_id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    stage: Mapped[EnumStr]
    amount: Mapped[Decimal]
    expected_close: Mapped[date | None]
    probability: Mapped[int | None]  # percent, 0 to 100
    # Why it was lost (stage 输单), as the salesperson said it.
    lost_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[UpdatedAt]

    customer: Mapped[Customer] = relationship(back_populates="opportunities")
    owner: Mapped[Employee] = relationship(back_populates="opportunities")
    stage_changes: Mapped[list["OpportunityStageChange"]] = relationship(
        back_populates="opportunity", order_by="OpportunityStageChange.id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"Opportunity({self.opportunity_id!r}, {self.name!r})"


class OpportunityStageChange(Base):
    """One move of an opportunity into a stage, with when and by whom: the stage history."""

    __tablename__ = "opportunity_stage_changes"

    id: Mapped[IntPk]
    opportunity_id: Mapped[str] = mapped_column(
        ForeignKey("opportunities.opportunity_id", ondelete="CASCADE"), index=True
    )
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[EnumStr]
    changed_at: Mapped[datetime]
    actor_id: Mapped[str | None] = mapped_column(String(64))

    opportunity: Mapped[Opportunity] = relationship(back_populates="stage_changes")

    def __repr__(self) -> str:
        return f"OpportunityStageChange({self.opportunity_id!r}, {self.to_stage!r})"


class Faq(Base):
    """A question and its answer; `alt_questions` holds extra phrasings separated by `|`."""

    __tablename__ = "faqs"

    faq_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str | None] = mapped_column(String(32))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    alt_questions: Mapped[str | None] = mapped_column(Text)
    # The knowledge index re-encodes only FAQs changed since its last build.
    updated_at: Mapped[UpdatedAt] = mapped_column(index=True)

    def alt_question_list(self) -> list[str]:
        """The extra phrasings as a list, without blanks."""
        return [q.strip() for q in (self.alt_questions or "").split("|") if q.strip()]

    def __repr__(self) -> str:
        return f"Faq({self.faq_id!r}, {self.question!r})"


class FaqUnanswered(Base):
    """A question the assistant could not answer, queued for staff; asking it again counts it again.

    `question` holds the customer's words with personal data masked (`crm_store.privacy.mask_text`).
    Repeats meet on `normalized_key` (see `crm_store.faqs.question_key`), unique over all rows: a
    resolved or dismissed question asked again is counted on its row rather than queued anew.
    `resolved_faq_id` is the FAQ that now answers it; it becomes NULL if that FAQ is deleted.
    """

    __tablename__ = "faq_unanswered"
    __table_args__ = (Index("ix_faq_unanswered_status_count", "status", "count"),)

    id: Mapped[IntPk]
    question: Mapped[str] = mapped_column(Text)
    normalized_key: Mapped[str] = mapped_column(String(500), unique=True)
    count: Mapped[int] = mapped_column(default=1, server_default="1")
    first_asked_at: Mapped[datetime]
    last_asked_at: Mapped[datetime]
    status: Mapped[EnumStr] = mapped_column(
        default=UNANSWERED_STATUS_OPEN, server_default=UNANSWERED_STATUS_OPEN
    )
    resolved_faq_id: Mapped[str | None] = mapped_column(
        ForeignKey("faqs.faq_id", ondelete="SET NULL"), index=True
    )
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"FaqUnanswered({self.id!r}, {self.status!r}, count={self.count!r})"


class FaqFeedback(Base):
    """A customer's "helpful or not" on an answered FAQ: one vote per conversation and FAQ, the latest.

    `faq_id` is deliberately not a foreign key: the votes on a FAQ stay in the statistics after it is
    deleted. `conversation_key` is `crm_store.privacy.conversation_key(sender_id)`, never the sender
    id itself; `query` is what the customer asked, masked like `FaqUnanswered.question`.
    """

    __tablename__ = "faq_feedback"
    __table_args__ = (
        Index("uq_faq_feedback_faq_id_conversation_key", "faq_id", "conversation_key", unique=True),
    )

    id: Mapped[IntPk]
    faq_id: Mapped[str] = mapped_column(String(32))
    helpful: Mapped[bool] = mapped_column(Boolean)
    conversation_key: Mapped[str] = mapped_column(String(32))
    query: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"FaqFeedback({self.id!r}, {self.faq_id!r}, helpful={self.helpful!r})"


class KnowledgeState(Base):
    """Revision counters of the knowledge base, one row per kind of content (`faqs` for now).

    Every write of FAQs adds one to `revision` in its own transaction, so that the retrieval engine
    can notice any change, deletions included, by reading one row (`crm_store.faqs.faq_revision`).
    """

    __tablename__ = "knowledge_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    revision: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"KnowledgeState({self.name!r}, {self.revision!r})"


class Task(Base):
    """A reminder or follow-up owned by an employee, optionally about a customer."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_owner_id_status_due_date", "owner_id", "status", "due_date"),)

    id: Mapped[IntPk]
    owner_id: Mapped[str] = mapped_column(ForeignKey("employees.employee_id"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date] = mapped_column(index=True)
    status: Mapped[EnumStr] = mapped_column(default=TASK_STATUS_OPEN, server_default=TASK_STATUS_OPEN)
    source: Mapped[str] = mapped_column(String(32))  # e.g. chat, interaction, care
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    owner: Mapped[Employee] = relationship(back_populates="tasks")
    customer: Mapped[Customer | None] = relationship(back_populates="tasks")

    def __repr__(self) -> str:
        return f"Task({self.id!r}, {self.title!r})"


class AuditLog(Base):
    """Who did what to which record. `detail` must never hold personal data, only ids and field names."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),)

    id: Mapped[IntPk]
    occurred_at: Mapped[CreatedAt] = mapped_column(index=True)
    actor_role: Mapped[EnumStr]
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    def __repr__(self) -> str:
        return f"AuditLog({self.id!r}, {self.action!r})"


class Outbox(Base):
    """A message to a customer, written in the same transaction as its cause and delivered later.

    `dedupe_key` is unique so that the same reminder can never be queued twice. When `employee_id` is
    set the message is a notice to that employee, never to the customer: `customer_id` then only says
    whom it is about, and the customer's opt-out does not apply.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_id", "status", "id"),)

    id: Mapped[IntPk]
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    employee_id: Mapped[str | None] = mapped_column(ForeignKey("employees.employee_id"), index=True)
    channel: Mapped[EnumStr]
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[EnumStr] = mapped_column(
        default=OUTBOX_STATUS_PENDING, server_default=OUTBOX_STATUS_PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    sent_at: Mapped[datetime | None]
    # Proactive care (crm_store/outbox.py): not before this moment (a retry's backoff, quiet hours);
    # when a sender claimed the row (status sending), so that a dead sender's claim expires; when the
    # person read it in an inbox (staff_inbox, web).
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]

    customer: Mapped[Customer | None] = relationship(back_populates="outbox_messages")
    employee: Mapped[Employee | None] = relationship()

    def __repr__(self) -> str:
        return f"Outbox({self.id!r}, {self.kind!r})"


class CareChannel(Base):
    """The health of one delivery channel of proactive care: consecutive failures, paused or not.

    A channel that fails `CareSettings.care_pause_after_failures` times in a row is paused: its
    messages stay pending until someone resumes it (`crmbot care resume`). One success resets it.
    """

    __tablename__ = "care_channels"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"CareChannel({self.channel!r}, paused={self.paused!r})"


class CareLock(Base):
    """A named lease (the care scheduler's on SQLite): who holds it and until when (care/lock.py)."""

    __tablename__ = "care_locks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"CareLock({self.name!r}, {self.holder!r})"


class VerificationAttempt(Base):
    """Failed identity checks of one subject, for the lock-out after repeated failures.

    A subject is a conversation or an attempted phone number, both as hashes from `crm_store.privacy`
    (e.g. `conversation:3f2a...`, `phone:9b1c...`), so neither sits here in clear.
    """

    __tablename__ = "verification_attempts"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    last_failed_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"VerificationAttempt({self.subject!r}, {self.failures!r})"


class HandoffCase(Base):
    """A conversation handed to a person: the bot stays silent for it while the case is open.

    `sender_id` is the chat's conversation id in clear, because staff replies must reach that
    conversation and closing the case must resume it. At most one case per conversation is open,
    which a partial unique index guarantees even under concurrent requests.
    """

    __tablename__ = "handoff_cases"
    __table_args__ = (
        Index(
            "uq_handoff_cases_open_sender_id",
            "sender_id",
            unique=True,
            sqlite_where=sql_text("status = 'open'"),
            postgresql_where=sql_text("status = 'open'"),
        ),
        Index("ix_handoff_cases_status_opened_at", "status", "opened_at"),
    )

    id: Mapped[IntPk]
    sender_id: Mapped[str] = mapped_column(String(128), index=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    ticket_id: Mapped[str | None] = mapped_column(ForeignKey("tickets.ticket_id"), index=True)
    reason: Mapped[EnumStr]
    status: Mapped[EnumStr] = mapped_column(default=HANDOFF_STATUS_OPEN, server_default=HANDOFF_STATUS_OPEN)
    # A list of {"who": "customer" | "bot" | "staff", "text": ..., "at": ISO 8601}, oldest first.
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    rating: Mapped[int | None]
    rated_at: Mapped[datetime | None]
    updated_at: Mapped[UpdatedAt]

    messages: Mapped[list["HandoffMessage"]] = relationship(
        back_populates="case", order_by="HandoffMessage.id"
    )

    def __repr__(self) -> str:
        return f"HandoffCase({self.id!r}, {self.status!r})"


class HandoffMessage(Base):
    """A staff message of a hand-off case, waiting until the chat delivers it to the customer.

    `kind` says what it is: an ordinary reply, or the closing words queued when the case is
    closed (`crm_store.vocab.HANDOFF_MESSAGE_KINDS`), which the chat delivers with rating buttons.
    """

    __tablename__ = "handoff_messages"
    __table_args__ = (Index("ix_handoff_messages_case_id_delivered_at", "case_id", "delivered_at"),)

    id: Mapped[IntPk]
    case_id: Mapped[int] = mapped_column(ForeignKey("handoff_cases.id", ondelete="CASCADE"))
    staff_id: Mapped[str | None] = mapped_column(ForeignKey("employees.employee_id"), index=True)
    kind: Mapped[EnumStr] = mapped_column(default=HANDOFF_MESSAGE_REPLY, server_default=HANDOFF_MESSAGE_REPLY)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    delivered_at: Mapped[datetime | None]

    case: Mapped[HandoffCase] = relationship(back_populates="messages")

    def __repr__(self) -> str:
        return f"HandoffMessage({self.id!r}, {self.case_id!r})"


# Readable ids (T09002, I00042 …) are allocated as the next number after the largest one
# (crm_store.ids.next_numeric_id): the longest id, then the greatest. These indexes give it
# without reading the table, which at millions of rows is the difference between 4 ms and seconds.
Index("ix_tickets_id_order", func.length(Ticket.ticket_id), Ticket.ticket_id)
Index("ix_interactions_id_order", func.length(Interaction.interaction_id), Interaction.interaction_id)
Index("ix_opportunities_id_order", func.length(Opportunity.opportunity_id), Opportunity.opportunity_id)
Index("ix_faqs_id_order", func.length(Faq.faq_id), Faq.faq_id)


class CustomerScore(Base):
    """One customer's value and risk as of `computed_on` (crm_store/analytics/customer_value.py).

    Recomputed for every customer by the nightly job and on demand (`crmbot analytics refresh`);
    the figures are a snapshot, so the 360 view and the manager questions that group by 客户等级 read
    them without ranking a million customers per request. A customer with no row has not been
    scored yet (a new customer since the last run).
    """

    __tablename__ = "customer_scores"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True
    )
    computed_on: Mapped[date]
    recency_days: Mapped[int | None]  # days since the last counted order; None: never bought
    frequency: Mapped[int] = mapped_column(default=0, server_default="0")  # counted orders, window
    monetary: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")  # spend, window
    r_score: Mapped[int | None]  # 1 (worst) to 5 (best); None without a counted order
    f_score: Mapped[int | None]
    m_score: Mapped[int | None]
    value_tier: Mapped[str] = mapped_column(String(8), index=True)  # crm_store.vocab.VALUE_TIERS
    lifecycle: Mapped[str] = mapped_column(String(8), index=True)
    clv: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    churn_risk: Mapped[float] = mapped_column(default=0.0, server_default="0")  # 0 to 1

    def __repr__(self) -> str:
        return f"CustomerScore({self.customer_id!r}, {self.value_tier!r}, {self.lifecycle!r})"


class WechatLink(Base):
    """A WeChat Official Account follower (`openid`) known to be one customer (crm_store/wechat_links.py).

    Set when the follower proved who they are in the WeChat chat; "解绑" removes it. The openid is
    only ever read here, by the channel: logs and the audit trail know it by its pseudonym.
    """

    __tablename__ = "wechat_links"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True
    )
    linked_at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"WechatLink({self.customer_id!r})"


class WechatSeenMessage(Base):
    """A WeChat callback already taken (its MsgId, or a key of an event), so a retry is never answered twice.

    WeChat retries a callback it got no answer to within 5 s, up to three times; several API workers
    may get the copies. Rows older than a day are purged (`crm_store.wechat_links.purge_seen`).
    """

    __tablename__ = "wechat_seen_messages"

    msg_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)

    def __repr__(self) -> str:
        return f"WechatSeenMessage({self.msg_key!r})"
