"""Helpers of the care tests: crafted people and orders, a local SMTP server, deleting an employee."""

import socket
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from crm_store import clock
from crm_store.models import Customer, Employee, Order, OrderItem, Outbox, Product


def add_employee(
    session: Session, employee_id: str, role: str = "sales", region: str | None = "华东"
) -> None:
    session.add(Employee(employee_id=employee_id, name=f"员工{employee_id}", role=role, region=region))


def add_customer(session: Session, customer_id: str, **fields: Any) -> Customer:
    values: dict[str, Any] = {
        "name": f"客户{customer_id}",
        "type": "个人",
        "region": "华东",
        "channel_pref": "web",
        "email": f"{customer_id.lower()}@example.com",
        "phone": "13800138000",
    }
    values.update(fields)
    customer = Customer(customer_id=customer_id, **values)
    session.add(customer)
    return customer


def add_order(
    session: Session,
    order_id: str,
    customer_id: str,
    day: date,
    *,
    status: str = "已签收",
    items: tuple[tuple[str, int], ...] = (),
) -> None:
    session.add(
        Order(order_id=order_id, customer_id=customer_id, order_date=day, status=status, amount=Decimal(100))
    )
    session.flush()
    for product_id, quantity in items:
        session.add(
            OrderItem(order_id=order_id, product_id=product_id, quantity=quantity, unit_price=Decimal(10))
        )


def add_sent_notice(
    session: Session, employee_id: str, text: str, sent_on: date, *, channel: str = "staff_inbox"
) -> None:
    """A care notice already delivered to `employee_id`'s inbox (or another channel) at 9:30 on `sent_on`."""
    sent_at = datetime.combine(sent_on, time(9, 30), tzinfo=clock.TZ)
    session.add(
        Outbox(
            employee_id=employee_id,
            channel=channel,
            kind="sla",
            body=text,
            dedupe_key=f"test:{employee_id}:{text}:{channel}",
            status="sent",
            created_at=sent_at,
            sent_at=sent_at,
        )
    )
    session.flush()


def add_products(session: Session) -> None:
    session.add(Product(product_id="P007", name="有机大米 5kg", category="食品", price=Decimal(89)))
    session.add(Product(product_id="P001", name="无线蓝牙耳机", category="数码配件", price=Decimal(399)))


def delete_employee_leaving_references(sessions: sessionmaker[Session], employee_id: str) -> None:
    """Delete an employee whom customers still name as owner (as a careless import or DBA might)."""
    engine = sessions.kw["bind"]
    delete = text("DELETE FROM employees WHERE employee_id = :id")
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET session_replication_role = replica"))
            connection.execute(delete, {"id": employee_id})
            connection.execute(text("SET session_replication_role = origin"))
        else:
            # Outside a transaction, where SQLite honours it; set back before the pool reuses it.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.execute(delete, {"id": employee_id})
            connection.commit()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _Collector:
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


class LocalSmtp:
    """A real SMTP server on loopback (aiosmtpd) that keeps every mail it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.collector = _Collector()
        self._controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return self.collector.messages

    def __enter__(self) -> "LocalSmtp":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
