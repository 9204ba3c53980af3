"""Readable ids (T09002, I00042) allocated safely when several processes write at once.

A new id is the next number after the largest numeric id with the same prefix. Two transactions can
compute the same one; the second insert then fails on the primary key, its savepoint is rolled back
and the next number is tried, so the caller's transaction survives. On SQLite the write lock is
taken before the maximum is read, which serialises allocators and makes a collision impossible.
"""

import re
from collections.abc import Callable
from typing import Final, TypeVar

from sqlalchemy import delete, false, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from crm_store.errors import Conflict
from crm_store.models import Base

ModelT = TypeVar("ModelT", bound=Base)

# Each failed attempt means another writer just took the id; a handful of retries is plenty.
ID_ATTEMPTS: Final = 8
_DIGITS: Final = re.compile(r"[0-9]+")


def begin_write(session: Session, model: type[Base]) -> None:
    """Make sure `session` holds a write transaction before a savepoint is opened.

    Python's sqlite3 driver begins a transaction only before INSERT, UPDATE or DELETE, not before
    SAVEPOINT; a savepoint opened first would start (and on release commit) a transaction of its
    own, outside the caller's. A delete of nothing opens the transaction and takes SQLite's write
    lock. Nothing is done on other backends, which begin transactions properly.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(delete(model).where(false()).execution_options(synchronize_session=False))


_FAST_PATH_ROWS: Final = 100


def next_numeric_id(session: Session, *, column: InstrumentedAttribute[str], prefix: str, width: int) -> str:
    """`prefix` + the next number after the largest numeric id of that prefix, zero-padded to `width`.

    Ids of the prefix that are not all digits after it (e.g. imported "TX-1") are ignored; the
    numbering widens past `width` digits rather than wrapping.

    The longest id, then the greatest, is the largest number ("T100000" before "T99999"): an index
    on (length(id), id) (`ix_<table>_id_order`, crm_store.models) gives it without reading the
    table. That order is wrong only after an id padded wider than `width` ("T0000001" beside
    "T00041", from an import); then the numbers are compared without their leading zeros, which
    reads every id of the prefix.
    """
    fast = (
        select(column)
        .where(column.like(f"{prefix}%"))
        .order_by(func.length(column).desc(), column.desc())
        .limit(_FAST_PATH_ROWS)
    )
    for value in session.scalars(fast):
        digits = _digits_of(value, prefix)
        if digits is None:
            continue
        if len(digits) <= width or not digits.startswith("0"):
            return _formatted(prefix, int(digits) + 1, width)
        break
    return _formatted(prefix, _largest_by_value(session, column=column, prefix=prefix) + 1, width)


def _digits_of(value: str, prefix: str) -> str | None:
    rest = value[len(prefix) :]
    # LIKE ignores case on SQLite: "t00001" matches the prefix "T" there but is not ours.
    return rest if value.startswith(prefix) and _DIGITS.fullmatch(rest) else None


def _formatted(prefix: str, number: int, width: int) -> str:
    return f"{prefix}{number:0{width}d}"


def _largest_by_value(session: Session, *, column: InstrumentedAttribute[str], prefix: str) -> int:
    number = func.ltrim(func.substr(column, len(prefix) + 1), "0")
    stmt = (
        select(column)
        .where(column.like(f"{prefix}%"))
        .order_by(func.length(number).desc(), number.desc())
        .execution_options(yield_per=200)
    )
    result = session.scalars(stmt)
    try:
        for value in result:
            digits = _digits_of(value, prefix)
            if digits is not None:
                return int(digits)
    finally:
        # Usually only the first row is read; a streamed result must not stay open.
        result.close()
    return 0


def add_with_new_id(
    session: Session,
    *,
    model: type[ModelT],
    column: InstrumentedAttribute[str],
    prefix: str,
    width: int,
    build: Callable[[str], ModelT],
) -> ModelT:
    """Insert `build(new_id)` under a fresh id and return it, flushed.

    Raises:
        IntegrityError: The row broke another constraint (the id itself was free).
        Conflict: Other writers took every id tried (code "no_free_id", with `prefix` and `attempts`).
    """
    begin_write(session, model)
    for _ in range(ID_ATTEMPTS):
        new_id = next_numeric_id(session, column=column, prefix=prefix, width=width)
        row = build(new_id)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            if session.scalar(select(column).where(column == new_id)) is None:
                raise
            continue
        return row
    raise Conflict("no_free_id", prefix=prefix, attempts=ID_ATTEMPTS)
