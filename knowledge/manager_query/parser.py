"""A manager's question in Chinese → a `QuerySpec`, by rules over the store's dictionaries.

"上个月华东区销售额最高的五个客户" is read in passes over the normalised text (NFKC, lower case, no
spaces), each pass masking what it took so that the next cannot read it again:

1. questions about one record (an order number, a phone) and figures the layer lacks (利润, 库存)
   are turned away with examples of what can be asked;
2. customer ids (C0001), then time ranges (knowledge.manager_query.periods), then top-N ("前五",
   "top 10", "最高的三个", "倒数三名", "十大客户");
3. one left-to-right scan takes the longest word at each position among metric words, dimension
   values (knowledge.manager_query.names), dimension nouns (客户, 地区, 产品, 销售 …), grouping
   markers (按, 各, 每个, 哪个) and words of order (最高, 最少);
4. what is left of Chinese text is tried as a mistyped name (陈思源 → 陈思远).

Then the slots: a noun groups when a marker is before it ("按地区", "哪个销售"), a ranking after it
("销售员排名"), or a superlative or top-N before it ("最多的客户", "前五名客户"); "谁" groups by the
salesperson, or by the customer when buying is asked about. A value names a filter; several values
of one dimension are one filter ("华东和华南"), grouped as well when compared ("哪个卖得好").
"业绩" is sales. "我的客户" from a salesperson is a filter on their own name.

Defaults: no period said → 本月 for flow metrics (`lexicon.FLOW_METRICS`), none for pipeline
metrics and lapsed customers (as of today). 累计 / 历史 → no period. "趋势" without a grain →
by day over a month or less, by month over more. "哪个…最多" without a number → top_n None,
order desc; "最少" and its like → asc.

Follow-ups (`previous` set): a question without a metric, or one that starts with 那 / 换成 / 只看 or
ends with 呢, changes only what it says: "那上上个月呢" the period, "换成按产品" the grouping (再按 …
adds one), "只看华南" adds or replaces the region filter, "华南呢" replaces the place (region and
city are one family, as are product and category), "订单数呢" the metric.

Ambiguity is asked back (`Clarify`): a name that is both a customer and a colleague, several
customers of one name, two names equally near a typo, two metrics in one question, or a figure
asked for without a metric ("华东怎么样", a bare "多少").
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal

from crm_store.access import Actor
from crm_store.analytics.spec import METRICS, Filter, Period, QuerySpec
from crm_store.analytics.vocabulary import Vocabulary
from knowledge.manager_query import lexicon
from knowledge.manager_query.names import Entity, NameIndex, Similar, han_runs, normalise
from knowledge.manager_query.outcome import Clarify, Parsed, ParseOutcome, Unsupported
from knowledge.manager_query.periods import (
    ALL_TIME,
    MASK,
    NUM,
    PeriodMention,
    cn_int,
    find_periods,
    month_to_date,
)
from knowledge.manager_query.texts import examples, render

__all__ = ["parse_question"]

Kind = Literal["metric", "weak", "entity", "noun", "marker", "suffix", "order"]
_PRIORITY: Final[dict[str, int]] = {
    "metric": 6,
    "entity": 5,
    "noun": 4,
    "suffix": 3,
    "marker": 2,
    "order": 1,
    "weak": 0,
}
_PLACE: Final = frozenset({"region", "city"})
_GOODS: Final = frozenset({"product", "category"})
_PEOPLE: Final = frozenset({"customer", "sales_rep"})
_TIME_GRAINS: Final = frozenset({"day", "week", "month", "quarter", "year"})
_NAME_STOP: Final = frozenset(
    "的了吗呢吧啊是在和与跟把给这那哪个多少几么什怎样有没不最按各每年月日天周季前后里中上下本今去"
)
_CUSTOMER_ID: Final = re.compile(r"(?<![a-z0-9])c\d{4,8}(?![0-9])")
_GAP: Final = re.compile(r"(?:的|之|间|之间|里|中|当中|中间|里面|来|按|上)*")
_JOINED: Final = re.compile(r"和|与|及|以及|、|跟|,|加")
_ME: Final = re.compile(r"(?<![帮给让跟叫替请诉])我(?![们想要看问查需觉知])")
"""我 as the subject or owner ("我的客户", "我这个月卖了多少"), not "帮我看下"."""
_COMPARE: Final = re.compile(r"对比|比较|相比|分别|各自|哪个|哪家|哪里|哪")
_GRAIN_BEFORE_METRIC: Final = {
    "日": "day",
    "每日": "day",
    "每天": "day",
    "周": "week",
    "每周": "week",
    "月": "month",
    "每月": "month",
}
_BUY_WORDS: Final = ("买", "消费", "下单", "采购", "花", "贡献", "订")
_TOPN: Final[tuple[tuple[re.Pattern[str], str | None], ...]] = (
    (re.compile(rf"倒数(?:前)?第?({NUM})(?:名|个|位|家|款|条|种)?"), "asc"),
    (re.compile(rf"(?:排名|排行|排在)?(?:前|top|头)({NUM})(?:名|个|位|家|款|大|条|种|强)?"), None),
    (re.compile(rf"(?:后|末)({NUM})(?:名|个|位|家|款|条|种)"), "asc"),
    (
        re.compile(
            rf"(最高|最多|最大|最好|最强|最火|最畅销|最受欢迎|最能卖|最低|最少|最小|最差|最弱|最冷门)的?({NUM})"
            r"(?:个|位|名|家|款|条|种|大)"
        ),
        None,
    ),
    (re.compile(rf"({NUM})大(?=客户|产品|城市|地区|区域|销售|品类|商品|单品)"), "desc"),
    (re.compile(r"倒数第一"), "asc"),
    (re.compile(r"第一名|排第一|排名第一|冠军|榜首|第1名"), "desc"),
)


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    kind: Kind
    text: str
    metric: str = ""
    dimension: str = ""
    entities: tuple[Entity, ...] = ()
    ascending: bool = False


@dataclass
class _Reading:
    """Everything one question says, before it becomes a spec."""

    text: str
    metrics: list[str] = field(default_factory=list)
    weak_sales: bool = False
    group_by: list[str] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)
    period: Period | None = None
    period_said: bool = False
    top_n: int | None = None
    order: Literal["desc", "asc"] | None = None
    corrected: dict[str, str] = field(default_factory=dict)
    clarify: Clarify | None = None
    asks: bool = False


class _Words:
    """Lexicon words by length, for the longest-match scan."""

    def __init__(self) -> None:
        self.table: dict[str, tuple[Kind, str]] = {}
        for word in lexicon.WEAK_SALES_WORDS:
            self.table[word] = ("weak", "sales")
        for word in (*lexicon.DESC_WORDS, *lexicon.ASC_WORDS):
            self.table[word] = ("order", "asc" if word in lexicon.ASC_WORDS else "desc")
        for word in lexicon.GROUP_MARKERS:
            self.table[word] = ("marker", word)
        for word in lexicon.GROUP_SUFFIXES:
            self.table[word] = ("suffix", word)
        for dimension, nouns in lexicon.DIMENSION_NOUNS.items():
            for noun in nouns:
                self.table[noun] = ("noun", dimension)
        for metric, words in lexicon.METRIC_WORDS.items():
            for word in words:
                self.table[word] = ("metric", metric)
        self.max_length = max(len(word) for word in self.table)


_WORDS: Final = _Words()
_INDEXES: dict[int, tuple[Vocabulary, NameIndex]] = {}


def _index_for(vocabulary: Vocabulary) -> NameIndex:
    """One NameIndex per vocabulary object (the vocabulary is kept so its id is not reused)."""
    cached = _INDEXES.get(id(vocabulary))
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    if len(_INDEXES) >= 8:
        _INDEXES.clear()
    index = NameIndex(vocabulary)
    _INDEXES[id(vocabulary)] = (vocabulary, index)
    return index


def _mask(work: list[str], start: int, end: int) -> None:
    work[start:end] = MASK * (end - start)


def _scan(text: str, index: NameIndex) -> list[_Token]:
    """The longest word at each position (ties: metric > value > noun > suffix > marker > order)."""
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        if text[i] == MASK:
            i += 1
            continue
        best: _Token | None = None
        for end in range(min(len(text), i + _WORDS.max_length), i, -1):
            piece = text[i:end]
            if MASK in piece:
                continue
            found = _WORDS.table.get(piece)
            if found is not None:
                kind, value = found
                token = _Token(
                    i,
                    end,
                    kind,
                    piece,
                    metric=value if kind in ("metric", "weak") else "",
                    dimension=value if kind == "noun" else "",
                    ascending=(kind == "order" and value == "asc"),
                )
                if best is None or (len(piece), _PRIORITY[kind]) > (len(best.text), _PRIORITY[best.kind]):
                    best = token
                break
        end, entities = index.longest_at(text, i)
        if entities and (best is None or (end - i, 5) > (len(best.text), _PRIORITY[best.kind])):
            best = _Token(i, end, "entity", text[i:end], entities=entities)
        if best is None:
            i += 1
            continue
        tokens.append(best)
        i = best.end
    return tokens


def _top_n(work: list[str], reading: _Reading) -> list[tuple[int, int]]:
    """Take the top-N phrases; their spans, next to which may be the noun they rank."""
    ends: list[tuple[int, int]] = []
    for pattern, fixed_order in _TOPN:
        for match in pattern.finditer("".join(work)):
            numbers = [g for g in match.groups() if g and re.fullmatch(NUM, g)]
            count = cn_int(numbers[-1]) if numbers else 1
            if count < 1 or reading.top_n is not None:
                continue
            words = match.group(0)
            before = "".join(work[max(0, match.start() - 2) : match.start()])
            order: Literal["desc", "asc"] = "desc"
            if fixed_order == "asc" or before.endswith("倒数") or any(w in words for w in lexicon.ASC_WORDS):
                order = "asc"
            reading.top_n, reading.order = count, order
            ends.append((match.start(), match.end()))
            _mask(work, match.start(), match.end())
    return ends


def _gap_end(text: str, position: int) -> int:
    gap = _GAP.match(text, position)
    return gap.end() if gap else position


def _noun_after(tokens: Sequence[_Token], position: int, text: str, *, allow_bare: bool) -> _Token | None:
    """The noun token right after `position` (past 的 / 里 …), if any."""
    position = _gap_end(text, position)
    for token in tokens:
        if (
            token.start == position
            and token.kind == "noun"
            and (allow_bare or token.text not in lexicon.BARE_NOUNS)
        ):
            return token
        if token.start >= position:
            break
    return None


def _add_group(reading: _Reading, dimension: str) -> None:
    if dimension not in reading.group_by:
        reading.group_by.append(dimension)


_MARKER_NOUN: Final = {
    "哪款": "product",
    "哪几款": "product",
    "哪家": "customer",
    "哪几家": "customer",
    "哪类": "category",
    "哪一类": "category",
}
_CLASSIFIERS: Final = "个位家款名种只类"


def _groupings(tokens: list[_Token], text: str, reading: _Reading, top_ends: list[tuple[int, int]]) -> None:
    """Dimensions grouped by markers, suffixes, superlatives and top-N phrases; 谁 and bare 哪个."""
    used: set[int] = set()
    for number, token in enumerate(tokens):
        if token.kind == "marker":
            position = token.end
            if position < len(text) and text[position] in _CLASSIFIERS:
                longer = _noun_after(tokens, position + 1, text, allow_bare=False)
                if longer is not None:
                    _add_group(reading, longer.dimension)
                    used.add(longer.start)
                    continue
            noun = _noun_after(tokens, position, text, allow_bare=token.text != "分")
            if noun is not None and noun.start == position:
                _add_group(reading, noun.dimension)
                used.add(noun.start)
                # 按地区和品类: the nouns joined to it group as well.
                while (joined := _JOINED.match(text, noun.end)) is not None:
                    noun = _noun_after(tokens, joined.end(), text, allow_bare=False)
                    if noun is None or noun.start != joined.end():
                        break
                    _add_group(reading, noun.dimension)
                    used.add(noun.start)
            elif token.text in _MARKER_NOUN:
                _add_group(reading, _MARKER_NOUN[token.text])
            elif token.text.startswith("哪") or token.text == "哪位":
                reading.asks = True
                _bare_which(tokens, number, reading, used)
        elif token.kind == "suffix":
            previous = _previous_noun(tokens, number, text)
            if previous is not None:
                _add_group(reading, previous.dimension)
                used.add(previous.start)
        elif token.kind == "order" or (token.kind in ("metric", "weak") and "最" in token.text):
            noun = _noun_after(tokens, token.end, text, allow_bare=False)
            if noun is not None:
                _add_group(reading, noun.dimension)
                used.add(noun.start)
    for start, end in top_ends:
        noun = _noun_after(tokens, end, text, allow_bare=False)
        if noun is None:
            noun = _noun_before(tokens, start, text)
        if noun is not None:
            _add_group(reading, noun.dimension)
    if "谁" in text:
        reading.asks = True
        if not any(d in reading.group_by for d in _PEOPLE):
            _add_group(reading, "customer" if any(w in text for w in _BUY_WORDS) else "sales_rep")


def _previous_noun(tokens: Sequence[_Token], number: int, text: str) -> _Token | None:
    return _noun_before(tokens, tokens[number].start, text)


def _noun_before(tokens: Sequence[_Token], position: int, text: str) -> _Token | None:
    """The noun ranked by what starts at `position`: "销售员排名", "客户销售额前五" (past a metric)."""
    for token in reversed([t for t in tokens if t.end <= position]):
        between = text[token.end : position].replace(MASK, "")
        if not _GAP.fullmatch(between):
            return None
        if token.kind == "noun" and token.text not in lexicon.BARE_NOUNS:
            return token
        if token.kind not in ("metric", "weak"):
            return None
        position = token.start
    return None


def _bare_which(tokens: Sequence[_Token], number: int, reading: _Reading, used: set[int]) -> None:
    """哪个 / 哪些 without a noun: the noun said before it ("产品里哪个最好"), else the compared values."""
    for token in reversed(tokens[:number]):
        if token.kind == "noun" and token.text not in lexicon.BARE_NOUNS and token.start not in used:
            _add_group(reading, token.dimension)
            return
    for token in tokens:
        if token.kind == "entity" and len(token.entities) == 1:
            dimension = token.entities[0].dimension
            if sum(1 for t in tokens if t.kind == "entity" and t.entities[0].dimension == dimension) > 1:
                _add_group(reading, dimension)
                return


def _entity_dimension(token: _Token, tokens: Sequence[_Token], number: int, text: str) -> Entity | None:
    """The one entity a value token names, by the words around it; None when still ambiguous."""
    if len(token.entities) == 1:
        return token.entities[0]
    before = text[max(0, token.start - 4) : token.start]
    after = text[token.end : token.end + 4]
    by_dimension = {entity.dimension: entity for entity in token.entities}
    if "customer" in by_dimension and re.search(r"(?:客户|顾客|客人)$", before):
        return by_dimension["customer"]
    if "sales_rep" in by_dimension and (
        re.search(r"(?:销售员|销售|员工|同事|业务员|经理)$", before)
        or re.match(r"(?:的客户|负责|名下|手下|手上|团队|的团队|带的)", after)
    ):
        return by_dimension["sales_rep"]
    del tokens, number
    return None


def _option_for(entity: Entity, name: str, vocabulary: Vocabulary) -> list[str]:
    if entity.dimension == "sales_rep":
        return [render("option.staff", name=name)]
    names = {cid: n for n, ids in vocabulary.customers.items() for cid in ids if n == name}
    return [render("option.customer", name=names.get(cid, name), customer_id=cid) for cid in entity.values]


def _values(reading: _Reading, entity: Entity) -> None:
    values = reading.filters.setdefault(entity.dimension, [])
    for value in entity.values:
        if value not in values:
            values.append(value)


def _entities(tokens: list[_Token], text: str, reading: _Reading, index: NameIndex) -> None:
    complaint_context = any(word in text for word in lexicon.COMPLAINT_CONTEXT) or any(
        m in ("complaints", "avg_csat") for m in reading.metrics
    )
    vocabulary = index.vocabulary
    for number, token in enumerate(tokens):
        if token.kind != "entity":
            continue
        usable = tuple(e for e in token.entities if complaint_context or not e.needs_context)
        if not usable:
            continue
        entity = _entity_dimension(
            _Token(token.start, token.end, "entity", token.text, entities=usable), tokens, number, text
        )
        if entity is None:
            options = [o for e in usable for o in _option_for(e, token.text, vocabulary)]
            reading.clarify = Clarify(
                render("clarify.customer_or_staff", name=token.text),
                tuple(options),
                None,
                "customer_or_staff",
            )
            continue
        if entity.dimension == "customer" and len(entity.values) > 1 and token.text in vocabulary.customers:
            options = _option_for(entity, token.text, vocabulary)
            reading.clarify = Clarify(
                render("clarify.same_name_customers", name=token.text),
                tuple(options),
                None,
                "same_name_customers",
            )
            continue
        _values(reading, entity)


def _typos(text: str, tokens: Sequence[_Token], reading: _Reading, index: NameIndex) -> None:
    """Chinese text no rule took, tried as a person's name typed with a wrong character."""
    taken = [False] * len(text)
    for token in tokens:
        for i in range(token.start, token.end):
            taken[i] = True
    free = "".join(MASK if taken[i] or text[i] in _NAME_STOP else ch for i, ch in enumerate(text))
    for run in han_runs(free):
        piece = run.group(0)
        best: list[Similar] = []
        for length in (4, 3, 2):
            for start in range(0, len(piece) - length + 1):
                typed = piece[start : start + length]
                if index.lookup(typed):
                    continue
                found = index.similar(typed)
                if found and (not best or found[0].score < best[0].score):
                    best = [s for s in found if s.score == found[0].score]
            if best:
                break
        if not best:
            continue
        if len({(s.entity.dimension, s.name) for s in best}) > 1:
            options = [o for s in best for o in _option_for(s.entity, s.name, index.vocabulary)]
            reading.clarify = Clarify(
                render("clarify.similar_names", typed=best[0].typed), tuple(options), None, "similar_names"
            )
            return
        chosen = best[0]
        if chosen.entity.dimension == "customer" and len(chosen.entity.values) > 1:
            options = _option_for(chosen.entity, chosen.name, index.vocabulary)
            reading.clarify = Clarify(
                render("clarify.same_name_customers", name=chosen.name),
                tuple(options),
                None,
                "same_name_customers",
            )
            return
        reading.corrected[chosen.typed] = chosen.name
        _values(reading, chosen.entity)


def _metrics(tokens: Sequence[_Token], reading: _Reading) -> None:
    said = [t.metric for t in tokens if t.kind == "metric"]
    found = list(dict.fromkeys(said))
    for winner, loser in lexicon.METRIC_PRECEDENCE:
        if winner in found and loser in found:
            found.remove(loser)
    reading.metrics = found
    reading.weak_sales = any(t.kind == "weak" for t in tokens)


def _grain_before(text: str, position: int) -> str | None:
    """日销售额, 每月订单数: a time grain said right before the metric."""
    for word, grain in _GRAIN_BEFORE_METRIC.items():
        start = position - len(word)
        if start >= 0 and text[start:position] == word:
            before = text[start - 1] if start > 0 else ""
            if before not in "本上下这今去前当每各按分" or word.startswith("每"):
                return grain
    return None


def _unnamed_metric(tokens: Sequence[_Token], normal: str, reading: _Reading) -> None:
    """A count of customers said with 多少 / 最多 ("A类客户有多少", "哪个城市的客户最多"); a ranking
    of customers, products or people without a metric ("十大客户", "倒数三名的销售员") is by sales."""
    counted = any(
        (t.kind == "noun" and t.dimension == "customer" and t.start not in _grouping_nouns(reading, tokens))
        or (t.kind == "entity" and t.text.endswith("客户"))
        for t in tokens
    )
    if counted and re.search(r"多少|几[个位家]|最多|最少|数量|数目|人数", normal):
        reading.metrics = ["customers"]
    else:
        ranked = reading.top_n is not None or any(
            t.kind == "suffix" and t.text in lexicon.RANK_WORDS for t in tokens
        )
        rankable = ("customer", "product", "sales_rep", "category", "city", "region")
        if ranked and any(g in rankable for g in reading.group_by):
            reading.weak_sales = True


def _grouping_nouns(reading: _Reading, tokens: Sequence[_Token]) -> set[int]:
    """Positions of the nouns that only name the grouping (哪个城市 → city), when grouped by customer."""
    if "customer" in reading.group_by:
        return {t.start for t in tokens if t.kind == "noun" and t.dimension == "customer"}
    return set()


def _trend_grain(reading: _Reading, today: date) -> str:
    period = reading.period or month_to_date(today)
    return "day" if (period.end - period.start).days <= 31 else "month"


def _read(text: str, *, index: NameIndex, today: date, asker: Actor | None) -> _Reading | Unsupported:
    normal = normalise(text).rstrip("?？。!！.,，~")
    reading = _Reading(text=normal)
    if re.search(lexicon.RECORD_LOOKUP, normal):
        return Unsupported(render("unsupported.record_lookup"), examples(), "record_lookup")
    for word in lexicon.UNSUPPORTED_METRIC_WORDS:
        if word in normal:
            return Unsupported(
                render("unsupported.metric_not_available", word=word), examples(), "metric_not_available"
            )
    work = list(normal)
    for match in _CUSTOMER_ID.finditer(normal):
        customer_id = match.group(0).upper()
        if customer_id in index.vocabulary.customer_ids:
            _values(reading, Entity("customer", (customer_id,)))
            _mask(work, match.start(), match.end())
    mentions: list[PeriodMention] = find_periods("".join(work), today=today)
    for mention in mentions:
        _mask(work, mention.start, mention.end)
    if mentions:
        first = mentions[0].period
        reading.period = None if first is ALL_TIME else first  # type: ignore[assignment]
        reading.period_said = True
    top_ends = _top_n(work, reading)
    masked = "".join(work)
    tokens = _scan(masked, index)
    _metrics(tokens, reading)
    _groupings(tokens, masked, reading, top_ends)
    _entities(tokens, masked, reading, index)
    if reading.clarify is None:
        _typos(masked, tokens, reading, index)
    for dimension, values in reading.filters.items():
        if len(values) > 1 and _COMPARE.search(normal) and dimension not in reading.group_by:
            reading.group_by.append(dimension)
    for token in tokens:
        if token.kind == "metric":
            grain = _grain_before(masked, token.start)
            if grain and grain not in reading.group_by:
                reading.group_by.append(grain)
    if any(m in ("complaints", "avg_csat") for m in reading.metrics):
        reading.group_by = ["complaint_category" if g == "category" else g for g in reading.group_by]
    if not reading.metrics and not reading.weak_sales:
        _unnamed_metric(tokens, normal, reading)
    if reading.order is None:
        orders = [t for t in tokens if t.kind == "order"]
        if orders:
            reading.order = "asc" if orders[0].ascending else "desc"
    if any(word in normal for word in lexicon.TREND_WORDS) and not any(
        g in _TIME_GRAINS for g in reading.group_by
    ):
        reading.group_by.append(_trend_grain(reading, today))
    is_sales = asker is not None and asker.role == "sales" and asker.name
    if (
        is_sales
        and asker is not None
        and asker.name
        and "sales_rep" not in reading.filters
        and _ME.search(normal)
    ):
        reading.filters["sales_rep"] = [asker.name]
    reading.asks = (
        reading.asks or any(w in normal for w in lexicon.QUESTION_WORDS) or reading.top_n is not None
    )
    return reading


def _is_follow_up(reading: _Reading) -> bool:
    text = reading.text
    cue = text.startswith(lexicon.FOLLOW_UP_STARTS) or text.endswith(lexicon.FOLLOW_UP_ENDS)
    return cue or not reading.metrics


def _only_metric(reading: _Reading) -> bool:
    """The whole text is a metric (an answer to "哪一项数据？"): a follow-up, not a new question."""
    return bool(reading.metrics) and not (
        reading.filters or reading.group_by or reading.period_said or reading.top_n
    )


def _merge(
    reading: _Reading, previous: QuerySpec, today: date
) -> tuple[str, tuple[str, ...], dict[str, list[str]], Period | None, bool]:
    text = reading.text
    metric = (
        reading.metrics[0]
        if reading.metrics
        else ("sales" if reading.weak_sales and not _only_filters(reading) else previous.metric)
    )
    group_by: tuple[str, ...] = previous.group_by
    if reading.group_by:
        if text.startswith(lexicon.REGROUP_ADD_CUES) or any(cue in text for cue in lexicon.REGROUP_ADD_CUES):
            group_by = tuple(dict.fromkeys((*previous.group_by, *reading.group_by)))
        else:
            group_by = tuple(reading.group_by)
    elif any(word in text for word in lexicon.UNGROUP_WORDS):
        group_by = ()
    filters: dict[str, list[str]] = {f.dimension: list(f.values) for f in previous.filters}
    if any(word in text for word in lexicon.DROP_FILTER_WORDS):
        for dimension in _PLACE:
            filters.pop(dimension, None)
    only = text.startswith(lexicon.ONLY_CUES)
    add = text.startswith(lexicon.ADD_CUES) or any(text.startswith("那" + c) for c in lexicon.ADD_CUES)
    for dimension, values in reading.filters.items():
        if add and dimension in filters:
            filters[dimension] = list(dict.fromkeys((*filters[dimension], *values)))
            continue
        if not only:
            for family in (_PLACE, _GOODS, _PEOPLE):
                if dimension in family:
                    for other in family - {dimension}:
                        if other not in reading.filters and other not in group_by:
                            filters.pop(other, None)
        filters[dimension] = list(values)
    period_said = reading.period_said
    if reading.period_said:
        period = reading.period
    elif metric != previous.metric and metric in ("pipeline_amount", "weighted_pipeline"):
        period, period_said = None, False
    elif metric != previous.metric and metric not in lexicon.FLOW_METRICS:
        said_before = bool(previous.extra.get("period_said")) or (
            previous.period is not None and previous.period != month_to_date(today)
        )
        period = previous.period if said_before else None
        period_said = said_before
    elif (
        metric != previous.metric and previous.period is None and previous.metric not in lexicon.FLOW_METRICS
    ):
        period = month_to_date(today)
    else:
        period = previous.period
        period_said = bool(previous.extra.get("period_said", previous.period is not None))
    return metric, group_by, filters, period, period_said


def _only_filters(reading: _Reading) -> bool:
    return bool(reading.filters) and not reading.metrics


def _metric_options(metrics: Sequence[str]) -> tuple[str, ...]:
    return tuple(METRICS[m].label for m in metrics)


_COMMON_METRICS: Final = ("sales", "orders", "customers", "avg_order_value", "complaints", "pipeline_amount")


def parse_question(
    text: str,
    *,
    vocabulary: Vocabulary,
    today: date,
    previous: QuerySpec | None = None,
    asker: Actor | None = None,
) -> ParseOutcome:
    """The question as a spec, a clarifying question, or a polite refusal with examples.

    `previous` is the spec of the last answered question (follow-ups change only what they say);
    `asker` the employee asking ("我的客户" from a salesperson filters on their name; scope itself is
    the query layer's). Nothing is read from the store here: `vocabulary` holds the names.
    """
    index = _index_for(vocabulary)
    reading = _read(text, index=index, today=today, asker=asker)
    if isinstance(reading, Unsupported):
        return reading
    follow_up = previous is not None and (_is_follow_up(reading) or _only_metric(reading))

    if len(reading.metrics) > 1:
        first = _spec(reading, reading.metrics[0], today=today)
        return Clarify(render("clarify.one_metric"), _metric_options(reading.metrics), first, "one_metric")

    if follow_up and previous is not None:
        if reading.clarify is not None:
            asked = reading.clarify
            return Clarify(asked.question, asked.options, previous, asked.code)
        metric, group_by, filters, period, period_said = _merge(reading, previous, today)
        top_n = reading.top_n if reading.top_n is not None else previous.top_n
        order = reading.order or (previous.order if reading.top_n is None else "desc")
        return Parsed(
            QuerySpec(
                metric=metric,
                group_by=group_by,
                filters=tuple(Filter(d, tuple(v)) for d, v in filters.items() if v),
                period=period,
                top_n=top_n,
                order=order,
                extra=_extra(reading, period_said),
            )
        )

    said_metric = reading.metrics[0] if reading.metrics else ("sales" if reading.weak_sales else None)
    if reading.clarify is not None:
        partial = _spec(reading, said_metric, today=today) if said_metric else None
        return Clarify(reading.clarify.question, reading.clarify.options, partial, reading.clarify.code)
    if said_metric is None:
        if reading.asks and (
            reading.filters
            or reading.group_by
            or reading.top_n
            or "多少" in reading.text
            or "几" in reading.text
        ):
            return Clarify(
                render("clarify.which_metric"),
                _metric_options(_COMMON_METRICS),
                _spec(reading, "sales", today=today),
                "which_metric",
            )
        return Unsupported(render("unsupported.not_a_metrics_question"), examples(), "not_a_metrics_question")
    return Parsed(_spec(reading, said_metric, today=today))


def _extra(reading: _Reading, period_said: bool) -> Mapping[str, object]:
    extra: dict[str, object] = {"period_said": period_said}
    if reading.corrected:
        extra["corrected"] = dict(reading.corrected)
    return extra


def _spec(reading: _Reading, metric: str, *, today: date) -> QuerySpec:
    period = reading.period
    if not reading.period_said and metric in lexicon.FLOW_METRICS:
        period = month_to_date(today)
    return QuerySpec(
        metric=metric,
        group_by=tuple(reading.group_by),
        filters=tuple(Filter(d, tuple(v)) for d, v in reading.filters.items() if v),
        period=period,
        top_n=reading.top_n,
        order=reading.order or "desc",
        extra=_extra(reading, reading.period_said),
    )
