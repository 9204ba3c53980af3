"""The dimension values a question names, from the store's vocabulary plus the forms people type.

`NameIndex(vocabulary)` knows every value by its canonical spelling and by the colloquial forms
derived from it: 华东区 / 华东地区 for 华东, 上海市 for 上海, "Air3" and "耳机" for 无线蓝牙耳机 Air3
(a word shared by several products names all of them: "耳机" is both headphones), 华峰科技 and
华峰 for 华峰科技有限公司, A类客户 for the value tier 关键, 报价阶段 for the stage 报价. A derived
form never overrides a value spelled exactly ("办公" is the category, not a word of 办公椅).

Names of people (staff and customers) typed with a wrong character are found by `similar`: the
same toneless pinyin (刘阳 for 刘洋, 陈思源 for 陈思远), or one character off for names of three
characters or more. The caller asks back when two are equally near.
"""

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from pypinyin import lazy_pinyin

from crm_store.analytics.vocabulary import Vocabulary
from crm_store.lookups import product_short_name
from knowledge.manager_query.lexicon import (
    COMPLAINT_ALIASES,
    GENERIC_PRODUCT_WORDS,
    METRIC_WORDS,
    STAGE_SUFFIXES,
    TIER_ALIASES,
)
from knowledge.visits import company_short_names

__all__ = ["Entity", "NameIndex", "normalise"]

_ASCII_MODEL: Final = re.compile(r"[a-z0-9][a-z0-9.+-]*")
_UNIT: Final = re.compile(r"\d+(?:\.\d+)?(?:kg|g|ml|l|cm|mm|m|寸|斤)?")
_HAN_RUN: Final = re.compile(r"[\u4e00-\u9fff]+")


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), lower case, no spaces: the form every word is matched in."""
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


@dataclass(frozen=True)
class Entity:
    """A dimension value (or several, for a shared word) that a piece of text names."""

    dimension: str
    values: tuple[str, ...]
    exact: bool = True
    """The store's own spelling or a fixed affix of it; False for a derived short form."""
    needs_context: bool = False
    """A complaint category said loosely (质量, 物流): only read in a question about complaints."""


@dataclass(frozen=True)
class Similar:
    """A person's name near a typed one: `score` 0 sounds the same, 1 is one character off."""

    typed: str
    entity: Entity
    name: str
    score: int


def _product_words(short: str) -> list[str]:
    """Words people use for a product: the words of its name and their tails (蓝牙耳机, 耳机)."""
    import jieba  # the global tokenizer: its words are not changed by this module

    words = [w for w in jieba.lcut(short, HMM=False) if w.strip()]
    found: list[str] = []
    for i in range(1, len(words)):
        found.append("".join(words[i:]))
    found += [w for w in words if len(w) >= 2]
    last = words[-1] if words else ""
    found += [last[i:] for i in range(1, len(last) - 2)] if len(last) >= 4 else []
    return [w for w in found if len(w) >= 2 and w != short]


class NameIndex:
    """Every way of naming a dimension value, looked up by exact text (longest first by the caller)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        exact: dict[str, dict[str, set[str]]] = {}
        derived: dict[str, dict[str, set[str]]] = {}
        context: set[str] = set()

        def add(alias: str, dimension: str, value: str, *, is_exact: bool = True) -> None:
            alias = normalise(alias)
            if len(alias) < 2 and not alias.isascii():
                return
            if len(alias) < 2:
                return
            table = exact if is_exact else derived
            table.setdefault(alias, {}).setdefault(dimension, set()).add(value)

        for region in vocabulary.regions:
            add(region, "region", region)
            base = region[:-1] if region.endswith("区") and len(region) > 2 else region
            for affix in ("", "区", "地区", "大区", "片区"):
                add(base + affix, "region", region)
        for city in vocabulary.cities:
            base = city[:-1] if city.endswith("市") and len(city) > 2 else city
            add(base, "city", city)
            add(base + "市", "city", city)
        for category in vocabulary.categories:
            add(category, "category", category)
            add(category + "类", "category", category)
            if len(category) >= 4:
                add(category[:2], "category", category, is_exact=False)
        metric_words = {w for words in METRIC_WORDS.values() for w in words}
        for product in vocabulary.products:
            add(product, "product", product)
            short = product_short_name(product)
            if short:
                add(short, "product", product)
                for token in _ASCII_MODEL.findall(normalise(product)):
                    if (len(token) >= 3 and not _UNIT.fullmatch(token)) and token not in metric_words:
                        add(token, "product", product, is_exact=False)
            for word in _product_words(short or product.strip()):
                if word not in GENERIC_PRODUCT_WORDS and word not in metric_words:
                    add(word, "product", product, is_exact=False)
        for name, employee_id in vocabulary.staff.items():
            del employee_id
            add(name, "sales_rep", name)
        for name, ids in vocabulary.customers.items():
            for customer_id in ids:
                add(name, "customer", customer_id)
        for company, ids in vocabulary.companies.items():
            for customer_id in ids:
                add(company, "customer", customer_id)
                for short in company_short_names(company):
                    add(short, "customer", customer_id, is_exact=False)
        for tier, words in TIER_ALIASES.items():
            if tier in vocabulary.tiers:
                for word in words:
                    add(word, "customer_tier", tier)
        for stage in vocabulary.opportunity_stages:
            add(stage, "opportunity_stage", stage)
            for suffix in STAGE_SUFFIXES:
                add(stage + suffix, "opportunity_stage", stage)
        for category, words in COMPLAINT_ALIASES.items():
            if category in vocabulary.complaint_categories:
                for word in (category, *words):
                    add(word, "complaint_category", category, is_exact=False)
                    context.add(normalise(word))
        for category in vocabulary.complaint_categories - set(COMPLAINT_ALIASES):
            add(category, "complaint_category", category)

        self._aliases: dict[str, tuple[Entity, ...]] = {}
        for alias in set(exact) | set(derived):
            chosen, is_exact = (exact[alias], True) if alias in exact else (derived[alias], False)
            self._aliases[alias] = tuple(
                Entity(
                    dimension,
                    tuple(sorted(values)),
                    exact=is_exact,
                    needs_context=(dimension == "complaint_category" and alias in context),
                )
                for dimension, values in sorted(chosen.items())
            )
        self.max_length = max((len(alias) for alias in self._aliases), default=0)

    def lookup(self, text: str) -> tuple[Entity, ...]:
        """What `text` names (one entity per dimension), () when nothing."""
        return self._aliases.get(text, ())

    def longest_at(self, text: str, start: int, *, blocked: str = "\u3000") -> tuple[int, tuple[Entity, ...]]:
        """The longest alias starting at `start` (its end and entities), (start, ()) when none."""
        for end in range(min(len(text), start + self.max_length), start + 1, -1):
            piece = text[start:end]
            if blocked in piece:
                continue
            found = self._aliases.get(piece)
            if found:
                return end, found
        return start, ()

    @cached_property
    def _people(self) -> dict[str, list[tuple[str, Entity]]]:
        """Keys of the people's names for `similar`: pinyin ("py:liu yang") and one-character gaps ("刘?")."""
        keys: dict[str, list[tuple[str, Entity]]] = {}

        def add(name: str, entity: Entity) -> None:
            keys.setdefault("py:" + " ".join(lazy_pinyin(name)), []).append((name, entity))
            if len(name) >= 3:
                for i in range(len(name)):
                    keys.setdefault(name[:i] + "?" + name[i + 1 :], []).append((name, entity))

        for name in self.vocabulary.staff:
            add(name, Entity("sales_rep", (name,)))
        for name, ids in self.vocabulary.customers.items():
            add(name, Entity("customer", tuple(ids)))
        return keys

    def similar(self, typed: str) -> list[Similar]:
        """People whose name is near `typed` (which is no known name), the nearest first."""
        found: dict[tuple[str, str], Similar] = {}
        for name, entity in self._people.get("py:" + " ".join(lazy_pinyin(typed)), []):
            if name != typed and (len(typed) > 2 or name[0] == typed[0]):
                found[(entity.dimension, name)] = Similar(typed, entity, name, 0)
        if len(typed) >= 3:
            for i in range(len(typed)):
                for name, entity in self._people.get(typed[:i] + "?" + typed[i + 1 :], []):
                    if name != typed and (entity.dimension, name) not in found:
                        found[(entity.dimension, name)] = Similar(typed, entity, name, 1)
        return sorted(found.values(), key=lambda s: (s.score, s.name))


def han_runs(text: str) -> Iterable[re.Match[str]]:
    """The runs of Chinese characters of `text` (where a mistyped name can hide)."""
    return _HAN_RUN.finditer(text)
