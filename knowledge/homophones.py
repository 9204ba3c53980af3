"""Sound-alike typos, corrected against the FAQs' own words.

Chinese is typed through pinyin input methods and spoken to assistants, so the commonest typo is
a character that sounds like the right one: "开发漂" for 开发票, "积粉" for 积分, "运废" for 运费.
The encoder has never seen most such pairs, and BM25 cannot match a word that is not there.

A window of the question is read as a word of the knowledge base when
- the word occurs in the FAQs (their questions and alternative phrasings) and no other FAQ word
  sounds the same (tones ignored: input methods and speech recognisers confuse them too);
- the window differs from it in exactly one character;
- jieba leaves that character standing alone: inside a word of its own dictionary (几 in 几天) a
  character is seldom a typo.

This only proposes a reading. "来点音乐" reads as 来电 in a bank that has that word, and "七天无理由"
as 物理; `knowledge.index.FaqIndex.rank` keeps the reading only when it matches a FAQ clearly
better than what was typed, which on the dev sets rejected every such misreading.
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import jieba
from pypinyin import lazy_pinyin

_HAN: Final = re.compile(r"[\u4e00-\u9fff]+")
# Longer words are rarely mistyped in only one character, and each length is one more lookup
# per character of the question.
_MAX_WORD_CHARS: Final = 6


@lru_cache(maxsize=65536)
def _syllable(character: str) -> str:
    """The toneless pinyin of one character (its commonest reading for a polyphone)."""
    return lazy_pinyin(character)[0]


def sound(text: str) -> tuple[str, ...]:
    return tuple(_syllable(character) for character in text)


@dataclass(frozen=True)
class HomophoneCorrector:
    """The knowledge base's words by their sound; `correct` proposes a reading of a question."""

    words: frozenset[str] = frozenset()
    word_by_sound: Mapping[tuple[str, ...], str] = field(default_factory=dict)
    lengths: tuple[int, ...] = ()

    @classmethod
    def from_words(cls, words: Iterable[str]) -> "HomophoneCorrector":
        known = frozenset(
            word for word in words if 2 <= len(word) <= _MAX_WORD_CHARS and _HAN.fullmatch(word)
        )
        by_sound: defaultdict[tuple[str, ...], set[str]] = defaultdict(set)
        for word in known:
            by_sound[sound(word)].add(word)
        # Two FAQ words with one sound (时间 / 事件) leave a typo ambiguous: neither is proposed.
        unique = {key: next(iter(group)) for key, group in by_sound.items() if len(group) == 1}
        return cls(known, unique, tuple(sorted({len(key) for key in unique}, reverse=True)))

    def correct(self, text: str) -> str:
        """`text` with each sound-alike typo replaced by the FAQ word it sounds like (the text
        itself when there is none). Expects normalised text (knowledge.text.normalise)."""
        if not self.word_by_sound or not _HAN.search(text):
            return text
        lone = _lone_characters(text)
        characters = list(text)
        position = 0
        while position < len(characters):
            position += self._fix_at(characters, position, lone)
        return "".join(characters)

    def _fix_at(self, characters: list[str], position: int, lone: set[int]) -> int:
        """Correct the longest word starting at `position`; return how many characters to skip."""
        for length in self.lengths:
            window = "".join(characters[position : position + length])
            if len(window) < length or not _HAN.fullmatch(window):
                continue
            if window in self.words:
                return length
            word = self.word_by_sound.get(sound(window))
            if word is None:
                continue
            different = [offset for offset in range(length) if window[offset] != word[offset]]
            if len(different) == 1 and position + different[0] in lone:
                characters[position : position + length] = list(word)
                return length
        return 1


def _lone_characters(text: str) -> set[int]:
    """Positions of the characters jieba's dictionary puts in no longer word."""
    lone: set[int] = set()
    position = 0
    for token in jieba.cut(text, HMM=False):
        if len(token) == 1:
            lone.add(position)
        position += len(token)
    return lone
