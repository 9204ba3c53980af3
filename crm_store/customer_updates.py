"""Staff updating a customer's record by chat or API: phone, e-mail, city, birthday, notes, preferences.

`check_update` validates and normalises one typed value, so that the bot can show the value it
will save and ask for confirmation before anything is written; `update_customer` then applies a
set of changes at once (all or nothing), audits them and returns what changed.

The fields (`UPDATABLE_FIELDS`) and their rules:

| field         | accepted                                                                      |
|---------------|-------------------------------------------------------------------------------|
| `phone`       | a mainland mobile number, normalised to 11 digits as the importer does        |
| `email`       | an e-mail address, at most 254 characters                                     |
| `city`        | 1–16 characters, no digits; a trailing 市 is dropped (上海市 → 上海)           |
| `birthday`    | a real date (2026-11-23, 2026/11/23, 2026年11月23日), 1900 or later, not in the future |
| `notes`       | free text up to `NOTES_MAX_CHARS`; empty clears                               |
| `preferences` | a text adds one item to the list (unless it is there already); a list of     |
|               | texts replaces the whole list (an empty list clears it); items are single     |
|               | lines of up to `PREFERENCE_MAX_CHARS`, at most `PREFERENCES_MAX_ITEMS`        |

Who may update: any staff member to whom the customer is visible (`crm_store.access`), the
customer's owner, their regional manager, a service agent handling their ticket, an admin.
The audit row names every changed field; values are copied only for fields that are not personal
(the city). Phone, e-mail, birthday, notes and preferences are named, never copied.
"""

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy.orm import Session

from crm_store.access import Actor, require_staff, visible_customer
from crm_store.audit import PERSONAL_FIELDS, FieldChange, audit
from crm_store.errors import Invalid
from crm_store.privacy import normalise_phone

__all__ = [
    "UPDATABLE_FIELDS",
    "AddPreference",
    "check_update",
    "update_customer",
]

UPDATABLE_FIELDS: Final = ("phone", "email", "city", "birthday", "notes", "preferences")
NOTES_MAX_CHARS: Final = 1000
PREFERENCE_MAX_CHARS: Final = 100
PREFERENCES_MAX_ITEMS: Final = 20
CITY_MAX_CHARS: Final = 16
EARLIEST_BIRTHDAY: Final = date(1900, 1, 1)

_UNCOPIED: Final = PERSONAL_FIELDS | {"preferences"}
"""Fields whose values stay out of the audit log (preferences may describe a person's life)."""

_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_DATE: Final = re.compile(r"([0-9]{4})\s*[-/.年]\s*([0-9]{1,2})\s*[-/.月]\s*([0-9]{1,2})\s*[日号]?")
_CITY: Final = re.compile(r"[^\s0-9]{1,16}")


@dataclass(frozen=True)
class AddPreference:
    """A checked preference to add to the customer's list (what `check_update` returns for a text)."""

    item: str


def _text(raw: object, field: str) -> str:
    if not isinstance(raw, str):
        raise Invalid(f"{field}_invalid", field=field)
    return unicodedata.normalize("NFKC", raw).strip()


def _phone(raw: object) -> str:
    phone = normalise_phone(raw) if isinstance(raw, str) else None
    if phone is None:
        raise Invalid("phone_invalid", field="phone")
    return phone


def _email(raw: object) -> str:
    email = _text(raw, "email")
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise Invalid("email_invalid", field="email")
    return email


def _city(raw: object) -> str:
    city = "".join(_text(raw, "city").split())
    if len(city) > 2 and city.endswith("市"):
        city = city[:-1]
    if not _CITY.fullmatch(city):
        raise Invalid("city_invalid", field="city", max_chars=CITY_MAX_CHARS)
    return city


def _birthday(raw: object, today: date) -> date:
    if isinstance(raw, date):
        day = raw
    else:
        match = _DATE.fullmatch(_text(raw, "birthday"))
        if match is None:
            raise Invalid("birthday_invalid", field="birthday")
        try:
            day = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            raise Invalid("birthday_invalid", field="birthday") from None
    if day > today:
        raise Invalid("birthday_in_future", field="birthday")
    if day < EARLIEST_BIRTHDAY:
        raise Invalid("birthday_invalid", field="birthday")
    return day


def _notes(raw: object) -> str | None:
    if raw is None:
        return None
    notes = _text(raw, "notes")
    if len(notes) > NOTES_MAX_CHARS:
        raise Invalid("notes_too_long", field="notes", max_chars=NOTES_MAX_CHARS)
    return notes or None


def _preference(raw: object) -> str:
    item = " ".join(_text(raw, "preferences").split())
    if not item:
        raise Invalid("preference_empty", field="preferences")
    if len(item) > PREFERENCE_MAX_CHARS:
        raise Invalid("preference_too_long", field="preferences", max_chars=PREFERENCE_MAX_CHARS)
    return item


def _preferences(raw: object) -> AddPreference | tuple[str, ...]:
    if isinstance(raw, str):
        return AddPreference(_preference(raw))
    if not isinstance(raw, Sequence):
        raise Invalid("preferences_invalid", field="preferences")
    items = tuple(dict.fromkeys(_preference(item) for item in raw))
    if len(items) > PREFERENCES_MAX_ITEMS:
        raise Invalid("preferences_too_many", field="preferences", max_count=PREFERENCES_MAX_ITEMS)
    return items


def check_update(field: str, raw: object, *, today: date) -> Any:
    """The value `raw` would be saved as for `field` (see the module table).

    Returns the normalised value: a str for phone, email, city; a date for birthday; str or None
    for notes; for preferences an `AddPreference` (raw was a text) or a tuple of items (a list).

    Raises:
        Invalid: With `field` set and one of the codes field_not_updatable, phone_invalid,
            email_invalid, city_invalid, birthday_invalid, birthday_in_future, notes_too_long,
            notes_invalid, preference_empty, preference_too_long, preferences_invalid,
            preferences_too_many.
    """
    if field == "phone":
        return _phone(raw)
    if field == "email":
        return _email(raw)
    if field == "city":
        return _city(raw)
    if field == "birthday":
        return _birthday(raw, today)
    if field == "notes":
        return _notes(raw)
    if field == "preferences":
        return _preferences(raw)
    raise Invalid("field_not_updatable", field=field)


def _stored_preferences(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def update_customer(
    session: Session, actor: Actor, customer_id: str, changes: Mapping[str, object], *, today: date
) -> list[FieldChange]:
    """Validate every change, then apply them together; audited. The caller commits.

    Args:
        changes: Field → raw value, as `check_update` takes them.

    Returns:
        (field, old, new) of each field whose value changed, in the order of `UPDATABLE_FIELDS`
        (preferences as tuples of items); an empty list, and no audit row, when nothing changed.

    Raises:
        Forbidden: The actor is not staff ("staff_only").
        NotFound: No such customer, or outside the actor's scope ("customer_not_found").
        Invalid: A value breaks its rule (see `check_update`), or nothing was given ("no_changes").
    """
    require_staff(actor)
    if not changes:
        raise Invalid("no_changes")
    for field in changes:
        if field not in UPDATABLE_FIELDS:
            raise Invalid("field_not_updatable", field=field)
    checked = {field: check_update(field, changes[field], today=today) for field in changes}
    customer = visible_customer(session, actor, customer_id)

    done: list[FieldChange] = []
    for field in UPDATABLE_FIELDS:
        if field not in checked:
            continue
        value = checked[field]
        if field == "preferences":
            old = _stored_preferences(customer.preferences)
            if isinstance(value, AddPreference):
                new = old if value.item in old else (*old, value.item)
            else:
                new = value
            if len(new) > PREFERENCES_MAX_ITEMS:
                raise Invalid("preferences_too_many", field="preferences", max_count=PREFERENCES_MAX_ITEMS)
            if new != old:
                customer.preferences = "\n".join(new) or None
                done.append((field, old, new))
            continue
        old_value = getattr(customer, field)
        if old_value != value:
            setattr(customer, field, value)
            done.append((field, old_value, value))
    if done:
        audit(
            session,
            actor,
            "update_customer",
            entity="customer",
            entity_id=customer.customer_id,
            changes=[change for change in done if change[0] not in _UNCOPIED]
            + [(f, None, None) for f, _, _ in done if f in PERSONAL_FIELDS],
            fields=[f for f, _, _ in done],
        )
        session.flush()
    return done
