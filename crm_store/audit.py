"""Writing the audit log: who did what to which record, and which fields, without personal data.

Every read of a customer's 360 view and every change made by staff goes through `audit`. A change
lists its fields: a non-personal field keeps its old and new value (a stage, an amount, a date);
a personal field (`PERSONAL_FIELDS`: phone, email, address …) is named but its values are never
copied, so the audit log can be read by whoever audits without becoming a second copy of the
customers' personal data.
"""

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy.orm import Session

from crm_store.access import Actor
from crm_store.models import AuditLog

__all__ = ["PERSONAL_FIELDS", "FieldChange", "audit", "field_changes"]

PERSONAL_FIELDS: Final[frozenset[str]] = frozenset(
    {"phone", "email", "address", "birthday", "notes", "contact_phone", "name", "password", "password_hash"}
)
"""Fields whose values never reach the audit log (notes and preferences may hold anything)."""

FieldChange = tuple[str, Any, Any]
"""(field, old value, new value)."""


def _plain(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def field_changes(changes: list[FieldChange] | Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The audit form of changed fields: `{field: {"old": …, "new": …}}`, personal ones only named."""
    items = changes.items() if isinstance(changes, Mapping) else ((f, (o, n)) for f, o, n in changes)
    shown: dict[str, Any] = {}
    for field, (old, new) in items:
        shown[field] = (
            {"changed": True} if field in PERSONAL_FIELDS else {"old": _plain(old), "new": _plain(new)}
        )
    return shown


def audit(
    session: Session,
    actor: Actor,
    action: str,
    *,
    entity: str,
    entity_id: str | None,
    changes: list[FieldChange] | Mapping[str, tuple[Any, Any]] | None = None,
    fields: list[str] | None = None,
    **detail: Any,
) -> AuditLog:
    """Add one audit row in the caller's transaction (the caller commits).

    Args:
        action: What happened, snake_case ("view_customer", "update_customer", "log_visit" …).
        changes: Changed fields with old and new values; personal ones are only named.
        fields: Fields read or touched without values (e.g. the sections of a 360 view).
        detail: Further plain, non-personal data (ids, counts, codes).
    """
    body: dict[str, Any] = {key: _plain(value) for key, value in detail.items()}
    if changes is not None:
        body["changes"] = field_changes(changes)
    if fields is not None:
        body["fields"] = list(fields)
    row = AuditLog(
        actor_role=actor.role,
        actor_id=actor.audit_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        detail=body,
    )
    session.add(row)
    return row
