"""What staff's words mean: which customer field a message changes, which opportunity change it asks
for, and which reminders it wants. The staff-side counterpart of `crm_store.phrases`.

The bot's actions read a message with these functions and leave every rule about the values to the
services: `crm_store.customer_updates.check_update` refuses a wrong phone or a date in the future,
`crm_store.opportunities` a closed opportunity or a stage outside the pipeline. A value read here is
only what the staff typed, shown back for confirmation before anything is saved.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from crm_store.vocab import OPPORTUNITY_STAGE_LOST, OPPORTUNITY_STAGE_WON

__all__ = [
    "OPPORTUNITY_ID",
    "append_note",
    "company_and_person",
    "new_opportunity_name",
    "parse_amount",
    "read_customer_change",
    "read_opportunity_change",
    "reminder_sections",
    "wants_append",
]


def company_and_person(names: list[str]) -> str:
    """Names found in one message as one query: ["华峰科技", "王芳"] → "华峰科技的王芳"."""
    return "的".join(names)


# --- customer updates --------------------------------------------------------------------------

# Which field a message is about, by the words staff use for it (the first that matches wins).
_FIELD_WORDS: Final = (
    ("email", re.compile(r"邮箱|邮件地址|e-?mail|[\w.+-]+@[\w-]+\.[\w.]+", re.IGNORECASE)),
    ("birthday", re.compile(r"生日|出生")),
    ("notes", re.compile(r"备注|记一下|标注")),
    ("preferences", re.compile(r"偏好|喜欢|爱好")),
    ("phone", re.compile(r"手机|电话|号码|新号|号换|1[3-9]\d{9}")),
    ("city", re.compile(r"城市|搬到|搬去|所在地|常驻")),
)
_APPEND: Final = re.compile(r"加|添|补充|追加|记到|记一下")
_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE: Final = re.compile(r"1[3-9]\d{9}")
_DIGITS: Final = re.compile(r"\+?\d[\d\s-]{3,}\d")
_CITY_MOVED: Final = re.compile(r"(?:搬到|搬去|调到|去了)([\u4e00-\u9fff]{2,8}?)(?:了|市|工作|$|，|。)")
_VALUE_AFTER: Final = re.compile(
    r"(?:改成|改为|换成|更新为|更新成|设置成|设置为|设成|变成|应该是|加上|加一条|写上|填成|是|为|：|:)\s*(.+)$"
)
_NOTE_SEPARATOR: Final = "；"


def read_customer_change(text: str, *, field: str | None = None) -> tuple[str | None, str | None]:
    """The field a message changes and the value it gives, as typed (None where it says none).

    `field` is the one already being changed, for a correction that gives only a new value
    ("不对，是13912345679"). A number that is not a mobile one is still returned as the value,
    so that the store refuses it with the field's own message.
    """
    said = next((name for name, words in _FIELD_WORDS if words.search(text)), None)
    field = said or field
    if field == "email":
        found = _EMAIL.search(text)
        return field, found.group(0) if found else None
    if field == "phone":
        number = _PHONE.search(re.sub(r"[\s-]", "", text)) or _DIGITS.search(text)
        return field, number.group(0).strip() if number else None
    if field == "city" and (moved := _CITY_MOVED.search(text)):
        return field, moved.group(1)
    value = _VALUE_AFTER.search(text)
    if value:
        return field, value.group(1).strip(" ：:。.！!")
    return field, (text.strip() if said is None and field else None)


def wants_append(text: str) -> bool:
    """True when the message adds to what is there ("加个备注") rather than replacing it."""
    return bool(_APPEND.search(text))


def append_note(old: str | None, new: str) -> str:
    """The notes after adding `new` behind the notes already there."""
    return f"{old}{_NOTE_SEPARATOR}{new}" if old else new


# --- opportunities -----------------------------------------------------------------------------

OPPORTUNITY_ID: Final = re.compile(r"OP\d{3,}", re.IGNORECASE)
_LIST: Final = re.compile(
    r"我的商机|商机列表|哪些商机|在跟的(单子|商机)|手上的商机|销售机会|商机(情况|清单)|^商机$|^我的单子$"
)
_CREATE: Final = re.compile(r"(新建|新开|新增|创建|加一个|加个|开一个|建一个).{0,3}商机")
_LOST: Final = re.compile(r"输单|丢了|输了|黄了|没戏|关闭|不做了|放弃了")
_WON: Final = re.compile(r"赢单|成交了|签了合同|签合同|拿下")
_STAGE: Final = re.compile(
    r"(推进到|推进至|推到|进入|到了|改到|改成|改为|改|更新为|到)\s*(线索|需求确认|报价|谈判)|(线索|需求确认|报价|谈判)\s*阶段"
)
_AMOUNT: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(万|w|W|千|k|K)?\s*(元|块)?(?!\s*[%％\d])")
_AMOUNT_WORD: Final = "金额"
_REASON: Final = re.compile(r"(?:原因是|原因：|原因:|因为)\s*(.+)")
_NAME_NOISE: Final = re.compile(r"^(叫|名称是|名字是|名称|名字|项目是|项目)[:：]?")
_CUSTOMER_PREFIX: Final = re.compile(r"^客户[:：]?")
_NOT_A_NAME: Final = re.compile(r"商机|^(金额|预计|预算)")
_UNITS: Final = {"万": Decimal(10000), "w": Decimal(10000), "千": Decimal(1000), "k": Decimal(1000)}
_SEGMENT_BREAKS: Final = re.compile(r"[，,。；;：:\s]+")
_LEADING_PARTICLE: Final = re.compile(r"^了")


def parse_amount(text: str) -> Decimal | None:
    """The amount said in `text` ("12万", "98000元", "2.6w"), in yuan; None when none is said.

    A bare number counts only next to the word 金额, so that "OP002" or "50%" are not amounts.
    """
    bare = OPPORTUNITY_ID.sub("", text)
    for number, unit, currency in (m.groups() for m in _AMOUNT.finditer(bare)):
        if unit or currency or _AMOUNT_WORD in bare:
            try:
                return Decimal(number) * _UNITS.get((unit or "").lower(), Decimal(1))
            except InvalidOperation:
                return None
    return None


def _segments(text: str) -> list[str]:
    return [part.strip() for part in _SEGMENT_BREAKS.split(text) if part.strip()]


def new_opportunity_name(text: str, customer: str | None) -> str | None:
    """The name of a new opportunity: the part of the message that is no keyword, customer or amount."""
    for part in _segments(text):
        part = _NAME_NOISE.sub("", _CUSTOMER_PREFIX.sub("", part))
        if not part or _CREATE.search(part) or _NOT_A_NAME.search(part) or (customer and customer in part):
            continue
        if parse_amount(part) is None:
            return part
    return None


def read_opportunity_change(text: str) -> dict[str, Any]:
    """What the staff asks for: {"op": list | create | stage | amount | lost, …}, or {} when unclear.

    create → "amount"; stage → "to_stage" (赢单 included); lost → "reason" (None when not said);
    amount → "amount" (yuan, as text).
    """
    if _CREATE.search(text):
        amount = parse_amount(text)
        return {"op": "create", "amount": str(amount) if amount else None}
    if _LOST.search(text):
        reason = _REASON.search(text)
        after = _LEADING_PARTICLE.sub("", _LOST.split(text, maxsplit=1)[-1].strip("，, 了"))
        said = reason.group(1) if reason else "，".join(_segments(after))
        return {"op": "lost", "to_stage": OPPORTUNITY_STAGE_LOST, "reason": said or None}
    if _WON.search(text):
        return {"op": "stage", "to_stage": OPPORTUNITY_STAGE_WON}
    stage = _STAGE.search(text)
    if stage:
        return {"op": "stage", "to_stage": stage.group(2) or stage.group(3)}
    amount = parse_amount(text)
    if amount is not None:
        return {"op": "amount", "amount": str(amount)}
    return {"op": "list"} if _LIST.search(text.strip()) else {}


# --- reminders ---------------------------------------------------------------------------------

_SECTION_WORDS: Final = (
    ("follow_ups", re.compile(r"跟进|待办|任务|联系|回访|日程|安排|打电话")),
    ("birthdays", re.compile(r"生日")),
    ("lapsed", re.compile(r"下单|没买|流失|沉睡|很久|好久")),
    ("notices", re.compile(r"关怀|通知|投诉|超时|时限|SLA", re.IGNORECASE)),
)


def reminder_sections(text: str) -> set[str]:
    """The sections a message asks about: "follow_ups", "birthdays", "lapsed", "notices" (care's
    staff-inbox messages); all when it names none."""
    asked = {name for name, words in _SECTION_WORDS if words.search(text)}
    return asked or {name for name, _ in _SECTION_WORDS}
