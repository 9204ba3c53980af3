"""The error vocabulary of the CRM services.

Our exception hierarchy:

* CrmError        a service refused; `code` names the case, `data` carries what a caller needs
  + NotFound      no record with that id (a customer, an order, a ticket, a case, a FAQ)
  + Invalid       a value breaks a rule (a format, a range, an unknown category); `data["field"]`
                  names the offending field when there is one
  + Conflict      the request contradicts what is stored (a closed case, a taken id)
  + Locked        refused for a while after too many failures
  + Unavailable   nothing to do it with right now (no service agent to assign a ticket to)
  + Unauthenticated  the caller could not be identified (no such account, a wrong password)
  + Forbidden     the caller is known, but their role or scope does not cover the record

Services raise these with a stable snake_case `code` and plain data (ids, limits, field names),
never a sentence meant for users: the bot picks a domain response by code (actions), and the API
maps each class to one HTTP status and words the message from the code in one place
(`api/errors.py`). `data` must never hold personal data (a phone, a name, an address), because
the error's text reaches logs.
"""

from typing import Any

__all__ = [
    "Conflict",
    "CrmError",
    "Forbidden",
    "Invalid",
    "Locked",
    "NotFound",
    "Unauthenticated",
    "Unavailable",
]


class CrmError(Exception):
    """A CRM service refused; catch this base where any refusal is handled alike."""

    def __init__(self, code: str, /, **data: Any) -> None:
        self.code = code
        self.data: dict[str, Any] = data
        details = ", ".join(f"{key}={value!r}" for key, value in data.items())
        super().__init__(f"{code} ({details})" if details else code)


class NotFound(CrmError):
    """No record with that id."""


class Invalid(CrmError):
    """A value breaks a rule; `data["field"]` names the field when one is at fault."""

    @property
    def field(self) -> str | None:
        """The offending field, or None when no single field is at fault."""
        value = self.data.get("field")
        return str(value) if value is not None else None


class Conflict(CrmError):
    """The request contradicts what is stored."""


class Locked(CrmError):
    """Refused for a while after too many failures."""


class Unavailable(CrmError):
    """Nothing to carry the request out with right now."""


class Unauthenticated(CrmError):
    """The caller could not be identified: no such account, no password set, or a wrong one.

    One class for all of these, so that a caller cannot learn which employee ids exist.
    """


class Forbidden(CrmError):
    """The caller is known, but their role or scope does not cover the record or the action."""
