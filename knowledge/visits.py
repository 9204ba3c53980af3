"""A visit note in one sentence → the fields of an interaction and its follow-up.

"今天下午拜访了华峰科技的王芳，聊了二期报价，她比较感兴趣，下周三把报价单发过去" gives the customer
(C0003), the kind (拜访), when it happened (today), a summary (the sentence without its next step),
the next step (把报价单发过去) and its date (next Wednesday). Nothing is saved here:
`crm_store.visits.save_visit` does that after the employee confirmed.

How the customer is found
-------------------------
Only among the customers the employee may see: the directory (`CustomerDirectory`) is loaded with
`crm_store.access.customer_scope`, so a customer outside the scope can never be matched, however
well the name fits. The names it knows are each customer's name, surname + title (王总, 孔总监,
老王 …), company and short company (华峰科技 and 华峰 for 华峰科技有限公司), plus the products.
They are patterns of a spaCy `EntityRuler` on the Chinese pipeline with the jieba segmenter, and
words of jieba's user dictionary, so that "华峰科技的王芳" segments into the names themselves.
The tokenizer is a private `jieba.Tokenizer`, not jieba's global one, so these names never
change how the FAQ search (knowledge.text) segments questions.

Then, in order: an id (C0003) or an 11-digit phone names the customer outright; otherwise the
names mentioned (narrowed by a company mentioned with them: "华峰科技的王总"), else surname +
title, else the company. One customer left → `customer_id`; several → `candidates` (the bot asks
which, with buttons). A name the segmentation split is still found as a substring when it has at
least three characters; a name typed with a sound-alike character (王方 for 王芳, 华丰 for 华峰)
is found by its toneless pinyin when nothing matched as written.

When the directory is rebuilt
-----------------------------
`parser_for` keeps one parser per store and actor (role, employee, region) and rebuilds it when the
signature of the scope changes: the count and the latest `updated_at` of the customers in the
scope and of the products (two aggregate queries, cheap beside a parse). A renamed, added or
deleted customer changes it; a customer moved out of the scope changes the count or the
latest update (the move itself updates the row).

Dates
-----
The sentence is cut into clauses (punctuation, spaces, and before a second date expression). The
event is the first clause with a contact verb (`KIND_WORDS`); a date in or before it is when the
contact happened, read as the past (周四 → last Thursday); a later clause with a date, or one with a
next-step word (`NEXT_WORDS`), starts the next step, its date read as the future (周四 → the coming
Thursday). See knowledge.dates for the expressions.
"""

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Final

import jieba
from pypinyin import lazy_pinyin
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from crm_store.access import Actor, customer_scope
from crm_store.models import Customer, Product
from knowledge.dates import DateMention, find_dates

__all__ = [
    "KIND_WORDS",
    "Candidate",
    "CustomerDirectory",
    "DirectoryEntry",
    "VisitExtraction",
    "VisitParser",
    "parse_visit",
    "parser_for",
    "revise",
]

logger = logging.getLogger(__name__)

KIND_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "拜访": (
        "拜访", "上门", "登门", "见了", "见到", "见过", "见面", "面谈", "面聊", "当面", "碰面", "碰了个面",
        "去了趟", "去了一趟", "跑了一趟", "跑了趟", "走访", "约见", "到访", "来访", "拜会", "见客户",
        "去客户", "请客户吃饭", "吃了个饭", "吃饭", "喝茶", "参观", "考察", "现场", "实地", "visit",
    ),
    "电话": (
        "电话", "通话", "致电", "来电", "回电", "电联", "打给", "语音通话", "call", "phone",
    ),
    "微信": (
        "微信", "企业微信", "企微", "wechat", "weixin", "vx", "wx", "微信语音", "微信视频", "微信电话",
    ),
    "邮件": ("邮件", "邮箱", "email", "e-mail", "mail", "发邮", "电邮"),
    "短信": ("短信", "sms"),
    "会议": (
        "开会", "会议", "开了个会", "视频会", "线上会", "电话会议", "腾讯会议", "钉钉会议", "飞书会议",
        "zoom", "teams", "meeting", "视频", "研讨会", "评审会", "例会", "沟通会", "交流会", "开了会",
    ),
}  # fmt: skip
"""Words that say how the contact went, by interaction kind (crm_store.vocab.INTERACTION_KINDS).
The longest word wins where they overlap: 微信语音 is 微信, 电话会议 is 会议."""

WEAK_VISIT_WORDS: Final = (
    "聊了", "聊聊", "谈了", "聊过", "谈过", "沟通", "交流", "演示", "找了", "去了", "过去了", "来了",
    "来公司", "到公司", "坐了坐", "见",
)  # fmt: skip
"""Talk without a channel: read as a visit, the commonest kind of a field salesperson's note. The
confirmation card shows it, and "改成电话" corrects it."""

NEXT_WORDS: Final = (
    "再", "下次", "下一步", "下步", "回头", "后续", "准备", "计划", "打算", "约了", "约好", "约在", "安排",
    "记得", "尽快", "跟进", "争取", "到时候", "待会", "之后", "以后", "等她", "等他", "回访", "回复她",
    "回复他", "我来", "我们来", "需要", "发过去", "寄过去", "给她发", "给他发", "follow", "next step",
    "todo",
)  # fmt: skip
"""Words that make a clause after the event a next step, even without a date."""

TITLES: Final = (
    "总经理", "副总", "董事长", "总监", "经理", "主任", "老板", "主管", "部长", "处长", "科长", "厂长",
    "院长", "校长", "所长", "局长", "总", "董", "老师", "先生", "女士", "小姐", "师傅", "律师", "医生",
    "教授", "博士", "工", "姐", "哥", "大哥", "阿姨",
)  # fmt: skip
"""What follows a surname to name a contact (王总, 孔总监, 王姐); 老 and 小 go before it (老王)."""

COMPOUND_SURNAMES: Final = frozenset(
    {
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
        "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离", "端木", "南宫", "西门", "独孤",
    }
)  # fmt: skip
_COMPANY_SUFFIX: Final = re.compile(
    r"(?:股份有限公司|有限责任公司|集团有限公司|有限公司|集团公司|集团|公司|工作室)$"
)
_INDUSTRY: Final = re.compile(
    r"(?:农业科技|医疗器械|机械制造|网络科技|信息技术|电子商务|科技|物流|贸易|家居|软件|教育|机械|农业|医疗|"
    r"制造|实业|电子|商贸|文化|传媒|建筑|工程|食品|餐饮|地产|置业|咨询|服务|能源|化工|汽车|网络|信息)$"
)
_PLACE_PREFIX: Final = re.compile(
    r"^(?:北京|上海|天津|重庆|广州|深圳|杭州|南京|苏州|武汉|成都|西安|长沙|郑州|济南|青岛|厦门|福州|合肥|"
    r"沈阳|大连|哈尔滨|长春|昆明|贵阳|南宁|兰州|乌鲁木齐|西宁|银川|呼和浩特|太原|石家庄|南昌|海口|宁波|无锡)(?:市)?"
)
_CUSTOMER_ID: Final = re.compile(r"(?<![A-Za-z0-9])[Cc][0-9]{3,8}(?![0-9])")
_PHONE: Final = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
_PHONE_SEPARATORS: Final = re.compile(r"(?<![0-9])1[3-9][0-9][- ][0-9]{4}[- ][0-9]{4}(?![0-9])")
_CLAUSE_BREAK: Final = re.compile(r"[，,。；;！!？?\n\r、~～]+|(?<=[^\x00-\x7f])\s+|\s+(?=[^\x00-\x7f])")
_EDGE: Final = " \t\r\n，,。；;！!？?、~～：:…"
_LEAD_CONNECTORS: Final = re.compile(
    r"^(?:然后|之后|以后|回头|后续|下一步|下步|下次|并且|并|另外|同时|顺便|还要|还得|准备|计划|打算|争取|尽快|"
    r"我们|我|再|就|要|得|需要|会|先|约好|约了|记得|的时候|时|前|之前|[，,\s])+"
)
_PRONOUN: Final = re.compile(r"[她他](?!们)")
_NOT_CLAUSE: Final = re.compile(r"(?:不是|并非|而不是)[^，,。；;！!？?\s]*")
_NEXT_STEP_CORRECTION: Final = re.compile(
    r"(?:下一步|下步|后续|跟进事项|下次)(?:要)?(?:改成|改为|换成|应该是|是|[:：])\s*(.+)$"
)
_SUMMARY_CORRECTION: Final = re.compile(r"(?:摘要|内容|纪要)(?:改成|改为|换成|应该是|是|[:：])\s*(.+)$")
_NO_NEXT_STEP: Final = re.compile(r"(?:没有|不用|不需要|无需|取消)(?:下一步|跟进|后续|再联系|待办)")
_OCCURRED_WORDS: Final = re.compile(r"拜访时间|发生|那天|是哪天|拜访日期|联系日期|日期")

DEFAULT_KIND: Final = None
"""No contact word at all: the kind stays unset and the bot asks for it."""


@dataclass(frozen=True)
class Candidate:
    """A customer the sentence may mean, shown as a button when there are several."""

    customer_id: str
    name: str
    company: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"customer_id": self.customer_id, "name": self.name, "company": self.company}


@dataclass(frozen=True)
class VisitExtraction:
    """What one sentence says about a contact, before the employee confirms it.

    `customer_id` is None when no customer, or more than one (`candidates`), matched. `kind` is
    None when the sentence names no way of contact. `next_step` and `next_date` are None when no
    next step is said; a next step may come without a date ("回头再约").
    """

    customer_id: str | None
    candidates: tuple[Candidate, ...]
    kind: str | None
    occurred_at: date
    summary: str
    next_step: str | None
    next_date: date | None
    customer_name: str | None = field(default=None, compare=False)
    """For showing the draft; never part of `to_json` (the id is the reference)."""

    def to_json(self) -> dict[str, Any]:
        """The contract of `crmbot visit parse --json`: ISO dates, null when absent."""
        return {
            "customer_id": self.customer_id,
            "candidates": [candidate.to_json() for candidate in self.candidates],
            "kind": self.kind,
            "occurred_at": self.occurred_at.isoformat(),
            "summary": self.summary,
            "next_step": self.next_step,
            "next_date": self.next_date.isoformat() if self.next_date is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VisitExtraction":
        """The draft back from `to_json` (the bot keeps it between turns)."""
        next_date = data.get("next_date")
        return cls(
            customer_id=data.get("customer_id"),
            candidates=tuple(
                Candidate(str(c["customer_id"]), str(c["name"]), c.get("company"))
                for c in data.get("candidates") or ()
            ),
            kind=data.get("kind"),
            occurred_at=date.fromisoformat(str(data["occurred_at"])),
            summary=str(data.get("summary") or ""),
            next_step=data.get("next_step"),
            next_date=date.fromisoformat(str(next_date)) if next_date else None,
        )


@dataclass(frozen=True)
class DirectoryEntry:
    customer_id: str
    name: str
    company: str | None
    phone: str | None


def _surname(name: str) -> str:
    return name[:2] if name[:2] in COMPOUND_SURNAMES else name[:1]


def company_short_names(company: str) -> list[str]:
    """华峰科技有限公司 → [华峰科技, 华峰]: what people call a company, longest first (≥ 2 characters)."""
    names: list[str] = []
    core = _COMPANY_SUFFIX.sub("", company.strip())
    core = _PLACE_PREFIX.sub("", core) or core
    for candidate in (core, _INDUSTRY.sub("", core)):
        if len(candidate) >= 2 and candidate != company and candidate not in names:
            names.append(candidate)
    return names


def contact_names(name: str) -> list[str]:
    """王芳 → [王总, 王经理 …, 老王, 小王]: surname + title, how a contact is addressed."""
    surname = _surname(name)
    if len(name) < 2 or surname == name:
        return []
    return [surname + title for title in TITLES] + ["老" + surname, "小" + surname]


@dataclass(frozen=True)
class _Alias:
    text: str
    label: str  # NAME, CONTACT, COMPANY, PRODUCT
    ids: frozenset[str]


class CustomerDirectory:
    """The customers one actor may see, by every name the extractor recognises."""

    def __init__(self, entries: Iterable[DirectoryEntry], products: Iterable[str] = ()) -> None:
        self.entries: dict[str, DirectoryEntry] = {entry.customer_id: entry for entry in entries}
        self.products: tuple[str, ...] = tuple(dict.fromkeys(p for p in products if p))
        by_alias: dict[tuple[str, str], set[str]] = {}
        for entry in self.entries.values():
            names: list[tuple[str, str]] = [(_normal(entry.name), "NAME")]
            names += [(alias, "CONTACT") for alias in contact_names(_normal(entry.name))]
            if entry.company:
                company = _normal(entry.company)
                names += [(company, "COMPANY")] + [(s, "COMPANY") for s in company_short_names(company)]
            for alias, label in names:
                if len(alias) >= 2:
                    by_alias.setdefault((alias, label), set()).add(entry.customer_id)
        self.aliases: dict[str, _Alias] = {}
        for (alias, label), ids in by_alias.items():
            known = self.aliases.get(alias)
            # A name that is also someone's title form (a customer called 王总?) counts as the name.
            if known is None or _RANK[label] < _RANK[known.label]:
                self.aliases[alias] = _Alias(alias, label, frozenset(ids))
        for product in self.products:
            normal = _normal(product)
            if normal not in self.aliases:
                self.aliases[normal] = _Alias(normal, "PRODUCT", frozenset())
        self.phones: dict[str, str] = {e.phone: e.customer_id for e in self.entries.values() if e.phone}

    @classmethod
    def load(cls, session: Session, actor: Actor) -> "CustomerDirectory":
        """The actor's scope from the store (nobody's for a non-staff actor)."""
        rows = session.execute(
            select(Customer.customer_id, Customer.name, Customer.company, Customer.phone).where(
                customer_scope(actor)
            )
        )
        entries = [DirectoryEntry(r.customer_id, r.name, r.company, r.phone) for r in rows]
        products = session.scalars(select(Product.name)).all()
        return cls(entries, products)

    def candidates(self, ids: Iterable[str]) -> tuple[Candidate, ...]:
        return tuple(
            Candidate(e.customer_id, e.name, e.company)
            for e in sorted((self.entries[i] for i in ids if i in self.entries), key=lambda e: e.customer_id)
        )


_RANK: Final = {"NAME": 0, "COMPANY": 1, "CONTACT": 2, "PRODUCT": 3}


def _normal(text: str) -> str:
    """Full-width digits and letters to half-width, lower case; one character for one.

    Chinese punctuation stays as typed: jionlp reads ",3天后" as a number, "，3天后" as a date.
    """
    return "".join(
        unicodedata.normalize("NFKC", ch).lower()
        if ch.isalnum() and len(unicodedata.normalize("NFKC", ch)) == 1
        else ch.lower()
        for ch in text
    )


@lru_cache(maxsize=65536)
def _syllable(character: str) -> str:
    return lazy_pinyin(character)[0] if "\u4e00" <= character <= "\u9fff" else character


@dataclass
class _Piece:
    start: int
    end: int
    text: str
    mentions: list[DateMention]
    kind_at: int | None = None  # position of the first contact word, if any
    next_word: bool = False


class VisitParser:
    """The extractor for one directory: a spaCy zh pipeline (jieba) with an EntityRuler of its names."""

    def __init__(self, directory: CustomerDirectory) -> None:
        import spacy

        jieba.setLogLevel(logging.WARNING)  # spaCy initialises jieba's global tokenizer, which logs
        self.directory = directory
        self._nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        tokenizer: Any = self._nlp.tokenizer  # spacy.lang.zh.ChineseTokenizer
        tokenizer.jieba_seg = _private_jieba(directory.aliases)
        ruler = self._nlp.add_pipe("entity_ruler", config={"validate": False})
        ruler.add_patterns(  # type: ignore[attr-defined]
            [{"label": alias.label, "pattern": text, "id": text} for text, alias in directory.aliases.items()]
        )
        long_names = sorted((a for a in directory.aliases if len(a) >= 3), key=len, reverse=True)
        self._substring = re.compile("|".join(map(re.escape, long_names))) if long_names else None
        self._sounds: dict[tuple[str, ...], list[str]] = {}
        for text, alias in directory.aliases.items():
            if alias.label in ("NAME", "COMPANY") and all("\u4e00" <= ch <= "\u9fff" for ch in text):
                self._sounds.setdefault(tuple(_syllable(ch) for ch in text), []).append(text)
        self._kinds = _word_pattern(KIND_WORDS)

    # -- customers -------------------------------------------------------------------------

    def _aliases_in(self, text: str) -> list[tuple[int, int, _Alias]]:
        doc = self._nlp(text)
        found = [(ent.start_char, ent.end_char, self.directory.aliases[ent.ent_id_]) for ent in doc.ents]
        taken = [(s, e) for s, e, _ in found]
        if self._substring is not None:
            for match in self._substring.finditer(text):
                if not any(s < match.end() and match.start() < e for s, e in taken):
                    found.append((match.start(), match.end(), self.directory.aliases[match.group()]))
                    taken.append((match.start(), match.end()))
        if not any(alias.label != "PRODUCT" for _, _, alias in found) and self._sounds:
            found += self._sound_alikes(text)
        return sorted(found, key=lambda item: item[0])

    def _sound_alikes(self, text: str) -> list[tuple[int, int, _Alias]]:
        sounds = [_syllable(ch) for ch in text]
        found: list[tuple[int, int, _Alias]] = []
        lengths = sorted({len(key) for key in self._sounds}, reverse=True)
        position = 0
        while position < len(text):
            for length in lengths:
                names = self._sounds.get(tuple(sounds[position : position + length]))
                if names:
                    found.append((position, position + length, self.directory.aliases[names[0]]))
                    position += length - 1
                    break
            position += 1
        return found

    def _customers(self, text: str) -> tuple[set[str], list[tuple[int, int]]]:
        """The ids the text may mean, and the spans naming them (to keep them out of the kind search)."""
        entries = self.directory.entries
        spans: list[tuple[int, int]] = []
        for match in _CUSTOMER_ID.finditer(text):
            spans.append(match.span())
            customer_id = match.group().upper()
            if customer_id in entries:
                return {customer_id}, spans
        for match in _PHONE.finditer(text):
            spans.append(match.span())
            if match.group() in self.directory.phones:
                return {self.directory.phones[match.group()]}, spans
        by_label: dict[str, list[frozenset[str]]] = {}
        for start, end, alias in self._aliases_in(text):
            spans.append((start, end))
            by_label.setdefault(alias.label, []).append(alias.ids)
        companies: set[str] = set().union(*by_label.get("COMPANY", []))
        for label in ("NAME", "CONTACT"):
            people: set[str] = set().union(*by_label.get(label, []))
            if people:
                narrowed = people & companies
                return (narrowed or people), spans
        return companies, spans

    # -- clauses ---------------------------------------------------------------------------

    def _pieces(self, text: str, mentions: list[DateMention], hidden: list[tuple[int, int]]) -> list[_Piece]:
        bounds: list[tuple[int, int]] = []
        position = 0
        for match in _CLAUSE_BREAK.finditer(text):
            if match.start() > position:
                bounds.append((position, match.start()))
            position = match.end()
        if position < len(text):
            bounds.append((position, len(text)))
        pieces: list[_Piece] = []
        for start, end in bounds:
            inside = [m for m in mentions if start <= m.start < end]
            cut = start
            for mention in inside:
                before = text[cut : mention.start]
                if (
                    mention.start > cut
                    and not mention.said_as_past
                    and (
                        any(m.start < mention.start for m in inside if m.start >= cut)
                        or self._kind_at(before, cut, hidden) is not None
                    )
                ):
                    pieces.append(self._piece(text, cut, mention.start, mentions, hidden))
                    cut = mention.start
            pieces.append(self._piece(text, cut, end, mentions, hidden))
        return pieces

    def _kind_at(self, text: str, offset: int, hidden: list[tuple[int, int]]) -> int | None:
        for match in self._kinds.finditer(text):
            at = offset + match.start()
            if not any(s <= at < e for s, e in hidden):
                return at
        return None

    def _piece(
        self, text: str, start: int, end: int, mentions: list[DateMention], hidden: list[tuple[int, int]]
    ) -> _Piece:
        words = text[start:end]
        return _Piece(
            start=start,
            end=end,
            text=words,
            mentions=[m for m in mentions if start <= m.start < end],
            kind_at=self._kind_at(words, start, hidden),
            next_word=any(word in _strip_dates(words, start, mentions) for word in NEXT_WORDS),
        )

    def kind_of(self, text: str, hidden: Sequence[tuple[int, int]] = ()) -> str | None:
        """The interaction kind a text names: its first contact word, the longest where they overlap."""
        for match in self._kinds.finditer(text):
            if not any(s <= match.start() < e for s, e in hidden):
                return _KIND_OF_WORD[match.group().lower()]
        if any(word in text for word in WEAK_VISIT_WORDS):
            return "拜访"
        return DEFAULT_KIND

    # -- the whole sentence ----------------------------------------------------------------

    def parse(self, text: str, *, today: date) -> VisitExtraction:
        """The extraction of one sentence (`today`: the project clock's day)."""
        original = text.strip()
        # Matching reads the NFKC, lower-case form; what is shown is cut from the text as typed
        # (the normal form keeps every character's position).
        text = _normal(original)
        ids, name_spans = self._customers(
            _PHONE_SEPARATORS.sub(
                lambda m: m.group().replace("-", "").replace(" ", "")[:11] + " " * (len(m.group()) - 11), text
            )
        )
        mentions = find_dates(text, today=today)
        pieces = self._pieces(text, mentions, name_spans)

        event = next((i for i, p in enumerate(pieces) if p.kind_at is not None and not _plans(p)), None)
        if event is None:
            event = next((i for i, p in enumerate(pieces) if any(m.said_as_past for m in p.mentions)), 0)
        is_next = [False] * len(pieces)
        started = False
        for index, piece in enumerate(pieces):
            # "…，today" or "今天" in a later clause is still the contact's day, not a next date.
            future_date = any(not m.said_as_past and m.resolve("future") > today for m in piece.mentions)
            if index == event or _NO_NEXT_STEP.search(piece.text):
                continue
            if index > event and (future_date or piece.next_word or (started and _continues(piece))):
                is_next[index] = True
                started = True
            elif index < event and future_date and piece.next_word:
                is_next[index] = True

        occurred_at: date | None = None
        ahead: list[DateMention] = []  # a date of the event's clause that can only lie ahead
        for index, piece in enumerate(pieces):
            if is_next[index] or index > event:
                continue
            for mention in piece.mentions:
                if mention.resolve("past") > today:
                    ahead.append(mention)  # "邵总说下周要开会": not when this contact happened
                elif occurred_at is None:
                    occurred_at = mention.resolve("past")
        next_pieces = [p for i, p in enumerate(pieces) if is_next[i] and p.mentions]
        # "年底有一批采购，月底再联系": the date of the clause that says what to do wins.
        next_pieces.sort(key=lambda p: (not p.next_word, _reported(p)))
        next_mentions = [m for p in next_pieces for m in p.mentions] or ahead
        next_date = next_mentions[0].resolve("future") if next_mentions else None

        event_text = "".join(p.text for i, p in enumerate(pieces) if not is_next[i])
        kind = self.kind_of(pieces[event].text, _shift(name_spans, -pieces[event].start)) if pieces else None
        if kind is None:
            hidden = name_spans + [(p.start, p.end) for i, p in enumerate(pieces) if is_next[i]]
            kind = self.kind_of(text, hidden) if event_text else None

        summary = _summary(original, pieces, is_next)
        next_step = _next_step(original, pieces, is_next, mentions)
        customer_id = next(iter(ids)) if len(ids) == 1 else None
        name = self.directory.entries[customer_id].name if customer_id else None
        if next_step is not None and name:
            next_step = _PRONOUN.sub(name, next_step)
        return VisitExtraction(
            customer_id=customer_id,
            candidates=self.directory.candidates(ids) if len(ids) > 1 else (),
            kind=kind,
            occurred_at=occurred_at or today,
            summary=summary,
            next_step=next_step,
            next_date=next_date,
            customer_name=name,
        )

    def revise(self, extraction: VisitExtraction, text: str, *, today: date) -> VisitExtraction:
        """The draft after a correction, with this directory to find a newly named customer."""
        return revise(extraction, text, today=today, directory=self)


def _shift(spans: Iterable[tuple[int, int]], by: int) -> list[tuple[int, int]]:
    return [(s + by, e + by) for s, e in spans]


def _plans(piece: _Piece) -> bool:
    # "下周二再打电话" names a kind, but of the next contact, not of this one.
    return piece.next_word and any(not m.said_as_past for m in piece.mentions)


_REPORTED: Final = re.compile(r"^\s*(?:她|他|对方|客户|人家|they|she|he)|说|想")


def _reported(piece: _Piece) -> bool:
    """ "她下个月生日", "他说下周定": the customer's news, a weaker next date than our own step."""
    return _REPORTED.search(piece.text) is not None


def _continues(piece: _Piece) -> bool:
    return re.match(r"^\s*(?:然后|并且|并|顺便|同时|还要|还得|以及|另外|再|和|跟)", piece.text) is not None


def _strip_dates(words: str, offset: int, mentions: Iterable[DateMention]) -> str:
    """`words` without the date expressions (`offset`: where `words` starts in the mentions' text)."""
    out = list(words)
    for m in mentions:
        for i in range(max(m.start - offset, 0), min(m.end - offset, len(out))):
            out[i] = ""
    return "".join(out)


def _summary(original: str, pieces: list[_Piece], is_next: list[bool]) -> str:
    """The sentence without its next-step clauses, as typed (punctuation and case kept)."""
    parts: list[str] = []
    previous: int | None = None
    for index, piece in enumerate(pieces):
        if is_next[index]:
            continue
        if previous is not None:
            between = original[pieces[previous].end : piece.start]
            parts.append(between if previous == index - 1 else "，")
        parts.append(original[piece.start : piece.end])
        previous = index
    return "".join(parts).strip(_EDGE) or original.strip(_EDGE)


def _next_step(
    original: str, pieces: list[_Piece], is_next: list[bool], mentions: list[DateMention]
) -> str | None:
    """The next-step clauses as typed, without their dates and leading connectors (再, 然后 …)."""
    parts: list[str] = []
    for index, piece in enumerate(pieces):
        if not is_next[index]:
            continue
        words = _strip_dates(original[piece.start : piece.end], piece.start, mentions)
        words = _LEAD_CONNECTORS.sub("", words).strip(_EDGE)
        if words:
            parts.append(words)
    if not any(is_next):
        return None
    return "，".join(parts) if parts else "跟进"


def _word_pattern(words: Mapping[str, Iterable[str]]) -> re.Pattern[str]:
    every = sorted({w.lower() for group in words.values() for w in group}, key=len, reverse=True)
    ascii_words = [re.escape(w) + r"(?![a-z])" if w.isascii() else re.escape(w) for w in every]
    return re.compile("|".join(ascii_words), re.IGNORECASE)


_KIND_OF_WORD: Final = {word.lower(): kind for kind, group in KIND_WORDS.items() for word in group}


_jieba_lock = threading.Lock()
_jieba: jieba.Tokenizer | None = None
_jieba_words: set[str] = set()


def _private_jieba(aliases: Iterable[str]) -> jieba.Tokenizer:
    """One jieba tokenizer of the visit parsers, with every directory's names as user words.

    Names of another actor's scope in the dictionary only change how words are cut, never what
    the EntityRuler (which holds only this scope) matches.
    """
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            jieba.setLogLevel(logging.WARNING)
            _jieba = jieba.Tokenizer()
            _jieba.initialize()
        for word in aliases:
            if word not in _jieba_words and not any(ch.isspace() for ch in word):
                _jieba.add_word(word, freq=100_000)
                _jieba_words.add(word)
        return _jieba


_cache_lock = threading.Lock()
_cache: dict[tuple[str, str, str | None, str | None], tuple[tuple[Any, ...], VisitParser]] = {}


def _signature(session: Session, actor: Actor) -> tuple[Any, ...]:
    customers = session.execute(
        select(func.count(), func.max(Customer.updated_at)).where(customer_scope(actor))
    ).one()
    products = session.execute(select(func.count(), func.max(Product.updated_at))).one()
    return (customers[0], _plain(customers[1]), products[0], _plain(products[1]))


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def parser_for(session: Session, actor: Actor) -> VisitParser:
    """The parser of the actor's scope, rebuilt when the scope's customers or the products changed."""
    bind = session.get_bind()
    url = bind.url if isinstance(bind, Engine) else bind.engine.url
    key = (str(url), actor.role, actor.employee_id, actor.region)
    signature = _signature(session, actor)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
    parser = VisitParser(CustomerDirectory.load(session, actor))
    with _cache_lock:
        _cache[key] = (signature, parser)
    return parser


def parse_visit(session: Session, actor: Actor, text: str, *, today: date) -> VisitExtraction:
    """Extract a visit note for `actor`, matching only the customers the actor may see."""
    return parser_for(session, actor).parse(text, today=today)


# -- corrections -------------------------------------------------------------------------------


def _new_part(text: str) -> str:
    """The part of a correction that says the new value: "不是周三，是周四" → "是周四"."""
    return _NOT_CLAUSE.sub(" ", text)


def _shift_within_week(old: date, mention: DateMention) -> date | None:
    if mention.weekday is None:
        return None
    monday = old.toordinal() - old.weekday()
    return date.fromordinal(monday + mention.weekday)


def revise(
    extraction: VisitExtraction,
    text: str,
    *,
    today: date,
    directory: "VisitParser | None" = None,
) -> VisitExtraction:
    """Apply a correction said before confirming; what it does not mention stays as it was.

    - "不是周三，是周四", "改到下周五": a new date replaces the next date when the draft has one (a
      bare weekday stays in that date's week: 下周三 corrected to 周四 is 下周四), otherwise the
      visit date; "拜访时间是昨天" or a date said as past (昨天, 上周五) always the visit date.
    - "客户是孔思远", "是C0004", "第二个": a candidate of the draft, or (with `directory`, the parser
      of the actor's scope) any customer of the scope.
    - "改成电话": the kind.
    - "下一步改成发合同" / "下一步是周五发合同": the next step (and its date when one is said);
      "不用跟进": no next step.
    - "摘要改成……": the summary.
    """
    text = _normal(text.strip())
    changes: dict[str, Any] = {}
    step = _NEXT_STEP_CORRECTION.search(text)
    summary = _SUMMARY_CORRECTION.search(text)

    if _NO_NEXT_STEP.search(text):
        changes.update(next_step=None, next_date=None)
    elif step is not None:
        new_step = step.group(1)
        mentions = find_dates(new_step, today=today)
        if mentions:
            changes["next_date"] = mentions[0].resolve("future")
            new_step = _strip_dates(new_step, 0, mentions)
        changes["next_step"] = (
            _LEAD_CONNECTORS.sub("", new_step).strip(_EDGE) or extraction.next_step or "跟进"
        )
    elif summary is not None:
        changes["summary"] = summary.group(1).strip(_EDGE)
    else:
        new = _new_part(text)
        mentions = find_dates(new, today=today)
        if mentions:
            mention = mentions[-1]
            to_visit = extraction.next_date is None or mention.said_as_past or _OCCURRED_WORDS.search(text)
            old = extraction.occurred_at if to_visit else extraction.next_date
            assert old is not None
            day = _shift_within_week(old, mention) or mention.resolve("past" if to_visit else "future")
            changes["occurred_at" if to_visit else "next_date"] = day
        kind = _kind_in(new)
        if kind is not None:
            changes["kind"] = kind
        chosen = _chosen_customer(extraction, new, directory)
        if chosen is not None:
            changes.update(customer_id=chosen[0], customer_name=chosen[1], candidates=())
    return replace(extraction, **changes)


def _kind_in(text: str) -> str | None:
    match = _word_pattern(KIND_WORDS).search(text)
    return _KIND_OF_WORD[match.group().lower()] if match else None


_ORDINALS: Final = {"第一": 0, "第1": 0, "第二": 1, "第2": 1, "第三": 2, "第3": 2, "第四": 3, "第4": 3}


def _chosen_customer(
    extraction: VisitExtraction, text: str, parser: "VisitParser | None"
) -> tuple[str, str] | None:
    candidates = extraction.candidates
    for word, index in _ORDINALS.items():
        if word in text and index < len(candidates):
            return candidates[index].customer_id, candidates[index].name
    for candidate in candidates:
        company = candidate.company or ""
        if (
            candidate.customer_id.lower() in text
            or candidate.name in text
            or (company and any(short in text for short in [company, *company_short_names(company)]))
        ):
            return candidate.customer_id, candidate.name
    if parser is not None:
        ids, _ = parser._customers(text)
        if len(ids) == 1:
            customer_id = next(iter(ids))
            return customer_id, parser.directory.entries[customer_id].name
    return None
