"""Import CRM data from a directory of CSV files in the demo_crm format.

One file per entity (`customers.csv`, `orders.csv`, ...), UTF-8 with or without a BOM, a header row
holding every column of the format (extra columns are ignored with a warning). Files are read in
foreign-key order; a missing file is skipped and an unrecognised `*.csv` file is reported, neither is
an error.

Every row is validated (types, required fields, value sets from `crm_store.vocab`, dates, phone,
e-mail, amounts, lengths, referenced ids); a faqs.csv row also by the FAQ rules of
`crm_store.faq_rules`, in `check_faq_row`, which `crmbot faq import` uses too. A bad row is
rejected with a `RowError` naming the physical line of the file (the header is line 1) and a short
reason in Chinese. Reasons name the field but never repeat personal data (names, phones, e-mails,
birthdays). Good rows are kept.

Rows are upserted by id (order items by order_id + product_id), so importing the same files twice
leaves the same data; rows absent from a file are never deleted. When an id appears twice in one
file the later row wins and a warning is logged, as if the rows had been applied one after another.

Rows are written in batches of `BATCH_SIZE`, each batch in its own transaction, so that a very large
file neither holds one huge transaction nor locks out the other processes sharing a SQLite file. An
interrupted import leaves the batches already written; running it again completes it. Only portable
SQL is used (select, then insert or update), so SQLite and PostgreSQL behave the same.
"""

import csv
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import String, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from crm_store import clock
from crm_store.errors import Invalid
from crm_store.faq_rules import FaqFields, checked_fields, multi_line, split_alts
from crm_store.models import (
    Base,
    Customer,
    Employee,
    Faq,
    Interaction,
    Opportunity,
    Order,
    OrderItem,
    Product,
    Ticket,
)
from crm_store.orders import ORDER_ID_PATTERN
from crm_store.revisions import bump_faq_revision
from crm_store.vocab import (
    CHANNEL_PREFS,
    CUSTOMER_TYPE_COMPANY,
    CUSTOMER_TYPES,
    EMPLOYEE_ROLES,
    GENDERS,
    INTERACTION_KINDS,
    OPPORTUNITY_STAGES,
    ORDER_STATUSES,
    TICKET_PRIORITIES,
    TICKET_STATUSES,
)

logger = logging.getLogger(__name__)

BATCH_SIZE: Final = 1000
PROGRESS_MIN_ROWS: Final = 2000
# Counts stay exact; only the list kept in the report is capped, so a hopeless file cannot eat memory.
MAX_ERRORS_KEPT_PER_FILE: Final = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class RowError:
    """A rejected row (or a file-level problem): where it is and why, without personal data."""

    file: str
    line: int
    reason: str
    # Set when the row itself is fine but refers to a row rejected earlier in this import:
    # the `file:line` of that root cause, so a report can name the few broken rows on their own.
    caused_by: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileSummary:
    """What happened to the rows of one file."""

    file: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    # Rows not loaded only because a row they refer to was rejected in this import.
    held_back: int = 0
    # Set when the file as a whole could not be read (missing columns, wrong encoding).
    error: str | None = None


@dataclass
class ImportReport:
    """The outcome of one import: per-file counts, rejected rows, files skipped or not recognised."""

    files: dict[str, FileSummary] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    # table -> id -> `file:line` of the root cause, for ids whose row was not loaded.
    rejected_ids: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every row read was accepted."""
        return all(s.rejected == 0 and s.held_back == 0 and s.error is None for s in self.files.values())

    @property
    def root_errors(self) -> list[RowError]:
        """The rows that are broken themselves."""
        return [e for e in self.errors if e.caused_by is None]

    @property
    def held_back(self) -> list[RowError]:
        """Valid rows left out because a row they refer to was rejected."""
        return [e for e in self.errors if e.caused_by is not None]


# --------------------------------------------------------------------------------------------------
# Field validation. Each validator raises a PydanticCustomError whose message is already the final
# Chinese reason; messages name the field and echo a value only through `_echo`.


def _fail(message: str) -> PydanticCustomError:
    # Braces would be read as a template by pydantic; messages never need them.
    return PydanticCustomError("crm", message.replace("{", "(").replace("}", ")"))


_ECHO_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}|[\u4e00-\u9fff]{1,8}")


def _echo(value: str) -> str | None:
    """`value` if it is short and id- or word-shaped, i.e. cannot be a phone, e-mail or date."""
    return value if _ECHO_SAFE.fullmatch(value) else None


def _checked(parse: Callable[[str, str], T], *, required: bool, empty: T | None = None) -> BeforeValidator:
    def validate(value: object, info: ValidationInfo) -> T | None:
        name = info.field_name or "?"
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise _fail(f"缺少必填字段 {name}")
            return empty
        if not isinstance(value, str):
            raise _fail(f"字段 {name} 的值无效")
        return parse(value.strip(), name)

    return BeforeValidator(validate)


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def _parse_id(value: str, name: str) -> str:
    if not _ID.fullmatch(value):
        raise _fail(f"{name} 格式不对：只能含字母、数字、-、_、.，最长 32 位")
    return value


def _parse_text(value: str, name: str) -> str:
    # A stray NUL or escape from a broken export: PostgreSQL refuses NUL in text and SQLite would
    # keep it, so both drop control characters here alike (line breaks stay, in notes say).
    cleaned = multi_line(value)
    if not cleaned:
        raise _fail(f"字段 {name} 只有不可见的控制字符")
    return cleaned


_DATE = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})")


def _parse_date(value: str, name: str) -> date:
    match = _DATE.fullmatch(value)
    if match:
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    raise _fail(f"{name} 不是有效日期（应为 YYYY-MM-DD）")


def _parse_birthday(value: str, name: str) -> date:
    birthday = _parse_date(value, name)
    if not date(1900, 1, 1) <= birthday <= clock.today():
        raise _fail(f"{name} 不在合理范围内")
    return birthday


_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PHONE_SEPARATORS = re.compile(r"[\s()-]")


def _parse_phone(value: str, name: str) -> str:
    digits = _PHONE_SEPARATORS.sub("", value)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    if not _MOBILE.fullmatch(digits):
        raise _fail(f"{name} 不是有效的 11 位中国大陆手机号")
    return digits


_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def _parse_email(value: str, name: str) -> str:
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise _fail(f"{name} 不是有效的电子邮箱地址")
    return value


_MONEY_MAX = Decimal("9999999999.99")


def _parse_money(value: str, name: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _fail(f"{name} 不是有效的金额") from None
    if not amount.is_finite():
        raise _fail(f"{name} 不是有效的金额")
    if amount < 0:
        raise _fail(f"{name} 不能为负数")
    if amount != amount.quantize(Decimal("0.01")):
        raise _fail(f"{name} 最多两位小数")
    if amount > _MONEY_MAX:
        raise _fail(f"{name} 超出范围")
    return amount


def _int_parser(low: int, high: int) -> Callable[[str, str], int]:
    def parse(value: str, name: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]{1,9}", value):
            raise _fail(f"{name} 不是整数")
        number = int(value)
        if not low <= number <= high:
            raise _fail(f"{name} 应在 {low} 到 {high} 之间")
        return number

    return parse


_TRUE = frozenset({"1", "true", "yes", "y", "是"})
_FALSE = frozenset({"0", "false", "no", "n", "否"})


def _parse_flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _fail(f"{name} 应为 0 或 1")


def _one_of(label: str, allowed: Sequence[str], *, casefold: bool = False) -> Callable[[str, str], str]:
    def parse(value: str, _name: str) -> str:
        candidate = value.lower() if casefold else value
        if candidate in allowed:
            return candidate
        shown = _echo(value)
        quoted = f"「{shown}」" if shown else ""
        raise _fail(f"{label}{quoted}不在允许的取值中（可选：{'、'.join(allowed)}）")

    return parse


def _parse_order_id(value: str, name: str) -> str:
    if not ORDER_ID_PATTERN.fullmatch(value):
        raise _fail(f"{name} 格式不对：应为 SO 加 12 位数字")
    return value


Id = Annotated[str, _checked(_parse_id, required=True)]
OptId = Annotated[str | None, _checked(_parse_id, required=False)]
OrderId = Annotated[str, _checked(_parse_order_id, required=True)]
Text = Annotated[str, _checked(_parse_text, required=True)]
OptText = Annotated[str | None, _checked(_parse_text, required=False)]
Day = Annotated[date, _checked(_parse_date, required=True)]
OptDay = Annotated[date | None, _checked(_parse_date, required=False)]
Money = Annotated[Decimal, _checked(_parse_money, required=True)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EmployeeRow(_Row):
    """A row of employees.csv."""

    employee_id: Id
    name: Text
    role: Annotated[str, _checked(_one_of("角色", EMPLOYEE_ROLES, casefold=True), required=True)]
    region: OptText
    email: Annotated[str | None, _checked(_parse_email, required=False)]


class ProductRow(_Row):
    """A row of products.csv."""

    product_id: Id
    name: Text
    category: OptText
    price: Money


class CustomerRow(_Row):
    """A row of customers.csv."""

    customer_id: Id
    name: Text
    type: Annotated[str, _checked(_one_of("客户类型", CUSTOMER_TYPES), required=True)]
    company: OptText
    gender: Annotated[str | None, _checked(_one_of("性别", GENDERS), required=False)]
    birthday: Annotated[date | None, _checked(_parse_birthday, required=False)]
    phone: Annotated[str | None, _checked(_parse_phone, required=False)]
    email: Annotated[str | None, _checked(_parse_email, required=False)]
    city: OptText
    region: OptText
    owner_id: OptId
    channel_pref: Annotated[
        str | None, _checked(_one_of("联系渠道", CHANNEL_PREFS, casefold=True), required=False)
    ]
    # An empty cell means "not opted out".
    opt_out: Annotated[bool, _checked(_parse_flag, required=False, empty=False)]
    created_at: OptDay
    notes: OptText

    @model_validator(mode="after")
    def _company_named(self) -> Self:
        if self.type == CUSTOMER_TYPE_COMPANY and not self.company:
            raise _fail("企业客户缺少 company")
        return self


class OrderRow(_Row):
    """A row of orders.csv."""

    order_id: OrderId
    customer_id: Id
    order_date: Day
    status: Annotated[str, _checked(_one_of("订单状态", ORDER_STATUSES), required=True)]
    amount: Money
    promised_date: OptDay
    carrier: OptText
    tracking_no: OptText

    @model_validator(mode="after")
    def _promise_after_order(self) -> Self:
        if self.promised_date is not None and self.promised_date < self.order_date:
            raise _fail("promised_date 早于 order_date")
        return self


class OrderItemRow(_Row):
    """A row of order_items.csv."""

    order_id: OrderId
    product_id: Id
    quantity: Annotated[int, _checked(_int_parser(1, 1_000_000), required=True)]
    unit_price: Money


class TicketRow(_Row):
    """A row of tickets.csv."""

    ticket_id: Id
    customer_id: Id
    category: OptText
    priority: Annotated[str, _checked(_one_of("工单优先级", TICKET_PRIORITIES), required=True)]
    status: Annotated[str, _checked(_one_of("工单状态", TICKET_STATUSES), required=True)]
    opened_at: Day
    assignee_id: OptId
    summary: Text


class InteractionRow(_Row):
    """A row of interactions.csv."""

    interaction_id: Id
    customer_id: Id
    employee_id: Id
    kind: Annotated[str, _checked(_one_of("互动类型", INTERACTION_KINDS), required=True)]
    occurred_at: Day
    summary: Text
    next_step: OptText
    next_date: OptDay

    @model_validator(mode="after")
    def _next_after_occurred(self) -> Self:
        if self.next_date is not None and self.next_date < self.occurred_at:
            raise _fail("next_date 早于 occurred_at")
        return self


class OpportunityRow(_Row):
    """A row of opportunities.csv."""

    opportunity_id: Id
    customer_id: Id
    owner_id: Id
    name: Text
    stage: Annotated[str, _checked(_one_of("商机阶段", OPPORTUNITY_STAGES), required=True)]
    amount: Money
    expected_close: OptDay
    probability: Annotated[int | None, _checked(_int_parser(0, 100), required=False)]


class FaqRow(_Row):
    """A row of faqs.csv; `check_faq_row` then applies the FAQ rules of `crm_store.faq_rules`."""

    faq_id: Id
    category: OptText
    question: Text
    answer: Text
    alt_questions: OptText


# --------------------------------------------------------------------------------------------------
# FAQ rows: one check for `crmbot import DIR` (faqs.csv) and `crmbot faq import FILE`.

# How each code of `crm_store.faq_rules`, and of the FAQ file import (`crm_store.faqs`), reads in an
# import report. The API words the rule codes too, in api/errors.py; both say the same.
FAQ_REASONS: Final[dict[str, str]] = {
    # The FAQ rules (crm_store.faq_rules).
    "faq_id_invalid": "FAQ 编号格式不对：只能含字母、数字、-、_、.，最长 {max_chars} 位",
    "faq_question_empty": "问题不能为空",
    "faq_question_too_long": "问题不能超过 {max_chars} 字",
    "faq_answer_empty": "答案不能为空",
    "faq_answer_too_long": "答案不能超过 {max_chars} 字",
    "faq_category_too_long": "分类不能超过 {max_chars} 字",
    "faq_alt_question_has_separator": "第 {position} 条备选问法不能包含“{separator}”",
    "faq_alt_question_too_long": "第 {position} 条备选问法不能超过 {max_chars} 字",
    "faq_alt_questions_too_many": "备选问法最多 {max_count} 条",
    # FAQ files (crm_store.faqs.load_faq_file).
    "faq_file_type": "只能导入 .csv 或 .json 文件",
    "faq_json_invalid": "不是有效的 JSON（第 {line} 行第 {column} 列）",
    "faq_json_not_a_list": "应为 FAQ 列表，或含 faqs 列表的对象",
    "faq_entry_not_an_object": "应为一个对象（含 question 和 answer）",
    "faq_entry_not_text": "{field} 应为文本",
    "faq_entry_missing": "缺少必填字段 {field}",
    "faq_entry_alt_questions_type": "alt_questions 应为文本列表，或用“|”分隔的文本",
}


def faq_reason(code: str, **data: Any) -> str:
    """The Chinese reason of a refused FAQ row or file for an import report, from its code and data."""
    template = FAQ_REASONS.get(code)
    if template is not None:
        try:
            return template.format(**data)
        except (KeyError, IndexError, ValueError):
            logger.warning("reason template of %s does not fit its data", code)
    field = data.get("field")
    return f"字段 {field} 的值无效" if field else "该行的值无效"


@dataclass(frozen=True)
class CheckedFaqRow:
    """A FAQ row that passed both the row's own checks and the FAQ rules."""

    faq_id: str
    fields: FaqFields


def check_faq_row(cells: dict[str, str]) -> CheckedFaqRow | str:
    """Check a faqs.csv row: its columns (`FaqRow`), then the FAQ rules; or why it is refused.

    Both `crmbot import DIR` and `crmbot faq import FILE` check a CSV row here, so one bad row gets
    one reason from both.

    Args:
        cells: The row's cells by column, as `read_csv_rows` yields them.

    Returns:
        The row's id and cleaned fields, or the Chinese reason the row is refused.
    """
    try:
        row = FaqRow.model_validate(cells)
        fields = checked_fields(
            question=row.question,
            answer=row.answer,
            category=row.category,
            alt_questions=split_alts(row.alt_questions),
        )
    except ValidationError as exc:
        return row_reason(exc)
    except Invalid as exc:
        return faq_reason(exc.code, **exc.data)
    return CheckedFaqRow(row.faq_id, fields)


def _faq_values(cells: dict[str, str]) -> dict[str, Any] | str:
    checked = check_faq_row(cells)
    if isinstance(checked, str):
        return checked
    fields = checked.fields
    return {
        "faq_id": checked.faq_id,
        "category": fields.category,
        "question": fields.question,
        "answer": fields.answer,
        "alt_questions": fields.alt_questions,
    }


# --------------------------------------------------------------------------------------------------
# The files, in foreign-key order.


@dataclass(frozen=True)
class _Ref:
    field: str
    target: InstrumentedAttribute[str]


@dataclass(frozen=True)
class _FileSpec:
    name: str
    model: type[Base]
    row: type[_Row]
    key: tuple[str, ...]
    refs: tuple[_Ref, ...] = ()
    # Raw values of these columns are scrubbed from any reason, whatever produced it.
    personal: tuple[str, ...] = ()
    # Called in the transaction of every batch that inserted or updated rows.
    after_write: Callable[[Session], None] | None = None
    # The row's values, or the reason it is refused; None: the row model's own checks alone.
    check: Callable[[dict[str, str]], dict[str, Any] | str] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.row.model_fields)


_EMPLOYEE = _Ref("employee_id", Employee.employee_id)
_CUSTOMER = _Ref("customer_id", Customer.customer_id)

FILE_SPECS: Final = (
    _FileSpec("employees.csv", Employee, EmployeeRow, ("employee_id",), personal=("name", "email")),
    _FileSpec("products.csv", Product, ProductRow, ("product_id",)),
    _FileSpec(
        "customers.csv",
        Customer,
        CustomerRow,
        ("customer_id",),
        refs=(_Ref("owner_id", Employee.employee_id),),
        personal=("name", "phone", "email", "birthday"),
    ),
    _FileSpec("orders.csv", Order, OrderRow, ("order_id",), refs=(_CUSTOMER,)),
    _FileSpec(
        "order_items.csv",
        OrderItem,
        OrderItemRow,
        ("order_id", "product_id"),
        refs=(_Ref("order_id", Order.order_id), _Ref("product_id", Product.product_id)),
    ),
    _FileSpec(
        "tickets.csv",
        Ticket,
        TicketRow,
        ("ticket_id",),
        refs=(_CUSTOMER, _Ref("assignee_id", Employee.employee_id)),
    ),
    _FileSpec(
        "interactions.csv", Interaction, InteractionRow, ("interaction_id",), refs=(_CUSTOMER, _EMPLOYEE)
    ),
    _FileSpec(
        "opportunities.csv",
        Opportunity,
        OpportunityRow,
        ("opportunity_id",),
        refs=(_CUSTOMER, _Ref("owner_id", Employee.employee_id)),
    ),
    # The knowledge index must hear of every FAQ change (crm_store.revisions).
    _FileSpec("faqs.csv", Faq, FaqRow, ("faq_id",), after_write=bump_faq_revision, check=_faq_values),
)
KNOWN_FILES: Final = tuple(spec.name for spec in FILE_SPECS)


# --------------------------------------------------------------------------------------------------
# Reading.


class FileUnreadable(Exception):
    """A file that cannot be read at all (encoding, header); `line` is where the problem is."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


# Also the reason given for a FAQ file that is not UTF-8 (`crm_store.faqs.load_faq_file`).
NOT_UTF8: Final = "文件不是 UTF-8 编码，请另存为 UTF-8"


def _first_undecodable_line(path: Path) -> int:
    # The text layer decodes ahead in large chunks, so its position says nothing about the culprit.
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def read_csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str] | str]]:
    """Yield (first physical line, cells by column) per record, or (line, reason) for a malformed one.

    Raises:
        FileUnreadable: The file is not UTF-8, or its header is not valid or lacks a column.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except UnicodeDecodeError:
            raise FileUnreadable(_first_undecodable_line(path), NOT_UTF8) from None
        except csv.Error:
            raise FileUnreadable(1, "表头不是有效的 CSV") from None
        if header is None:
            return
        names = [cell.strip().lower() for cell in header]
        missing = [column for column in columns if column not in names]
        if missing:
            raise FileUnreadable(1, f"表头缺少列：{', '.join(missing)}")
        extra = [n for n in names if n not in columns]
        if extra:
            logger.warning("%s: 忽略未知的列 %s", path.name, ", ".join(extra))
        if len(set(names)) != len(names):
            raise FileUnreadable(1, "表头有重复的列名")
        last_line = reader.line_num
        while True:
            start = last_line + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise FileUnreadable(_first_undecodable_line(path), NOT_UTF8) from None
            except csv.Error:
                last_line = reader.line_num
                yield start, "不是有效的 CSV 行（引号不匹配？）"
                continue
            last_line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                yield start, f"列数不对：应为 {len(names)} 列，实际 {len(cells)} 列"
                continue
            yield start, {name: cell.strip() for name, cell in zip(names, cells, strict=True)}


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


_LONG_DIGITS = re.compile(r"(?<![A-Za-z0-9])[0-9]{7,}")
_EMAILISH = re.compile(r"\S+@\S+")


def _scrub(reason: str, raw: dict[str, str], personal: Sequence[str]) -> str:
    """Remove anything that could be personal data from a reason, as a last line of defence."""
    for column in personal:
        value = raw.get(column, "")
        if len(value) >= 2:
            reason = reason.replace(value, "***")
    reason = _LONG_DIGITS.sub("***", reason)
    return _EMAILISH.sub("***", reason)


def row_reason(error: ValidationError) -> str:
    """The Chinese reason(s) a row model refused a row, without echoing its values."""
    reasons: list[str] = []
    for detail in error.errors(include_url=False, include_input=False):
        if detail["type"] == "crm":
            reasons.append(detail["msg"])
        else:
            where = ".".join(str(part) for part in detail["loc"]) or "该行"
            reasons.append(f"字段 {where} 的值无效")
    return "；".join(dict.fromkeys(reasons))


def _length_problem(spec: _FileSpec, values: dict[str, Any]) -> str | None:
    # PostgreSQL enforces VARCHAR lengths and SQLite does not: check here so both behave the same.
    table = spec.model.__table__
    for name, value in values.items():
        column_type = table.c[name].type
        if (
            isinstance(value, str)
            and isinstance(column_type, String)
            and column_type.length
            and len(value) > column_type.length
        ):
            return f"{name} 超过 {column_type.length} 个字符"
    return None


# --------------------------------------------------------------------------------------------------
# Writing.


@dataclass
class _Pending:
    line: int
    key: tuple[Any, ...]
    values: dict[str, Any]
    raw: dict[str, str]


@dataclass
class _BatchOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # (row, reason, root cause when the row only refers to a rejected row)
    rejected: list[tuple[_Pending, str, str | None]] = field(default_factory=list)


@dataclass
class _FileRun:
    spec: _FileSpec
    session_factory: sessionmaker[Session]
    summary: FileSummary
    report: ImportReport
    kept_errors: int = 0

    def reject(
        self, line: int, reason: str, raw: dict[str, str] | None = None, *, caused_by: str | None = None
    ) -> None:
        reason = _scrub(reason, raw or {}, self.spec.personal)
        error = RowError(self.spec.name, line, reason, caused_by)
        if caused_by is None:
            self.summary.rejected += 1
            logger.warning("%s", error)
        else:
            self.summary.held_back += 1
            logger.warning("%s（因 %s 被拒绝而未导入）", error, caused_by)
        if self.kept_errors < MAX_ERRORS_KEPT_PER_FILE:
            self.report.errors.append(error)
            self.kept_errors += 1
        # Rows referring to this one must not be blamed on themselves: remember the root cause.
        own_id = (raw or {}).get(self.spec.key[0], "").strip()
        if len(self.spec.key) == 1 and own_id:
            table = self.report.rejected_ids.setdefault(self.spec.model.__tablename__, {})
            table.setdefault(own_id, caused_by or f"{self.spec.name}:{line}")

    def flush(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            with self.session_factory.begin() as session:
                outcome = self._apply(session, batch)
        except DBAPIError as exc:
            if len(batch) == 1:
                logger.debug("row rejected by the database", exc_info=True)
                self.reject(batch[0].line, f"数据库拒绝了该行（{type(exc.orig).__name__}）", batch[0].raw)
                return
            # Find the culprit(s): retry row by row so that the good rows of the batch are kept.
            for pending in batch:
                self.flush([pending])
            return
        # Counted only once committed, so that a batch retried row by row is not counted twice.
        for pending, reason, caused_by in outcome.rejected:
            self.reject(pending.line, reason, pending.raw, caused_by=caused_by)
        self.summary.inserted += outcome.inserted
        self.summary.updated += outcome.updated
        self.summary.unchanged += outcome.unchanged

    def _apply(self, session: Session, batch: list[_Pending]) -> _BatchOutcome:
        spec = self.spec
        outcome = _BatchOutcome()
        missing = self._missing_references(session, batch)
        accepted: list[_Pending] = []
        for pending in batch:
            problems = missing.get(pending.line)
            if problems:
                causes = [cause for _, cause in problems]
                # Held back only when every missing reference is a row rejected in this import.
                root = causes[0] if all(causes) else None
                outcome.rejected.append((pending, "；".join(text for text, _ in problems), root))
            else:
                accepted.append(pending)
        if not accepted:
            return outcome

        columns = spec.columns
        table = spec.model.__table__
        first_key = table.c[spec.key[0]]
        wanted = sorted({p.key[0] for p in accepted})
        stmt = select(*(table.c[c] for c in columns)).where(first_key.in_(wanted))
        current: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in session.execute(stmt).mappings():
            current[tuple(row[k] for k in spec.key)] = dict(row)

        stamp = clock.now()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for pending in accepted:
            old = current.get(pending.key)
            if old is None:
                inserts.append({**pending.values, "updated_at": stamp})
            elif any(old[c] != pending.values[c] for c in columns):
                updates.append({**pending.values, "updated_at": stamp})
            else:
                outcome.unchanged += 1
        if inserts:
            session.execute(insert(spec.model), inserts)
        if updates:
            session.execute(update(spec.model), updates)
        if (inserts or updates) and spec.after_write is not None:
            spec.after_write(session)
        outcome.inserted = len(inserts)
        outcome.updated = len(updates)
        return outcome

    def _missing_references(
        self, session: Session, batch: list[_Pending]
    ) -> dict[int, list[tuple[str, str | None]]]:
        """Per line, each missing reference: the reason, and the root cause if it was rejected here."""
        problems: dict[int, list[tuple[str, str | None]]] = {}
        for ref in self.spec.refs:
            wanted = sorted({p.values[ref.field] for p in batch if p.values[ref.field] is not None})
            if not wanted:
                continue
            found = set(session.scalars(select(ref.target).where(ref.target.in_(wanted))))
            rejected_here = self.report.rejected_ids.get(ref.target.class_.__tablename__, {})
            for pending in batch:
                value = pending.values[ref.field]
                if value is not None and value not in found:
                    shown = _echo(value)
                    reason = f"{ref.field} {shown} 不存在" if shown else f"{ref.field} 引用的记录不存在"
                    problems.setdefault(pending.line, []).append((reason, rejected_here.get(value)))
        return problems


def _row_values(spec: _FileSpec, cells: dict[str, str]) -> dict[str, Any] | str:
    """The row's values to write, or the reason it is refused."""
    if spec.check is not None:
        return spec.check(cells)
    try:
        row = spec.row.model_validate(cells)
    except ValidationError as exc:
        return row_reason(exc)
    return row.model_dump()


def _import_file(
    spec: _FileSpec,
    path: Path,
    session_factory: sessionmaker[Session],
    report: ImportReport,
    progress: Progress | None,
) -> FileSummary:
    summary = FileSummary(spec.name)
    run = _FileRun(spec, session_factory, summary, report)
    task = None
    if progress is not None:
        total = _count_lines(path)
        if total > PROGRESS_MIN_ROWS:
            task = progress.add_task(spec.name, total=total)

    seen: set[tuple[Any, ...]] = set()
    batch: list[_Pending] = []
    in_batch: set[tuple[Any, ...]] = set()
    try:
        for line, cells in read_csv_rows(path, spec.columns):
            summary.read += 1
            if task is not None and progress is not None:
                progress.update(task, completed=line)
            if isinstance(cells, str):
                run.reject(line, cells)
                continue
            values = _row_values(spec, cells)
            if isinstance(values, str):
                run.reject(line, values, cells)
                continue
            problem = _length_problem(spec, values)
            if problem:
                run.reject(line, problem, cells)
                continue
            key = tuple(values[k] for k in spec.key)
            if key in seen:
                logger.warning("%s:%d: %s 重复出现，以这一行为准", spec.name, line, "+".join(key))
            if key in in_batch:
                # Apply the earlier row first, so the later one updates it: "later row wins".
                run.flush(batch)
                batch, in_batch = [], set()
            seen.add(key)
            in_batch.add(key)
            batch.append(_Pending(line, key, values, cells))
            if len(batch) >= BATCH_SIZE:
                run.flush(batch)
                batch, in_batch = [], set()
    except FileUnreadable as exc:
        summary.error = exc.reason
        error = RowError(spec.name, exc.line, exc.reason)
        logger.error("%s", error)
        report.errors.append(error)
    run.flush(batch)
    if task is not None and progress is not None:
        progress.update(task, completed=progress.tasks[task].total)
    return summary


def import_csv_dir(
    session_factory: sessionmaker[Session], directory: Path, *, progress: bool = False
) -> ImportReport:
    """Validate and upsert the CSV files of `directory` into the CRM store.

    Args:
        session_factory: Opens the sessions; each batch is committed in its own transaction.
        directory: A directory in the demo_crm format.
        progress: Show a progress bar on stderr for files of more than about 2000 rows.

    Returns:
        Per-file counts, rejected rows (`file:line: reason`), missing and unrecognised files.

    Raises:
        NotADirectoryError: If `directory` is not a directory.
    """
    if not directory.is_dir():
        raise NotADirectoryError(f"not a directory: {directory}")
    report = ImportReport()
    report.unknown_files = sorted(
        p.name for p in directory.iterdir() if p.suffix.lower() == ".csv" and p.name not in KNOWN_FILES
    )
    for name in report.unknown_files:
        logger.warning("%s: 不认识的文件，已跳过", name)

    bar = (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        if progress
        else None
    )
    if bar is not None:
        bar.start()
    try:
        for spec in FILE_SPECS:
            path = directory / spec.name
            if not path.is_file():
                report.missing_files.append(spec.name)
                continue
            summary = _import_file(spec, path, session_factory, report, bar)
            report.files[spec.name] = summary
            logger.info(
                "%s: 读取 %d，新增 %d，更新 %d，未变 %d，拒绝 %d，连带未导入 %d",
                spec.name,
                summary.read,
                summary.inserted,
                summary.updated,
                summary.unchanged,
                summary.rejected,
                summary.held_back,
            )
    finally:
        if bar is not None:
            bar.stop()
    return report
