"""Chinese text for lexical matching: one normalisation and one jieba tokenisation, used both
when FAQs are indexed and when a query is searched."""

import logging
import re
import unicodedata
from functools import lru_cache

import jieba

# Searched text is cut here: a FAQ question is short, and a 5,000-character paste must not
# cost seconds of segmentation. The encoder truncates at 512 tokens on its own.
MAX_QUERY_CHARS = 512

# Particles and pronouns that carry no topic; BM25's IDF would down-weight them anyway, but on
# a small FAQ set they are rare enough to look informative.
_STOPWORDS = frozenset(
    {
        "的",
        "了",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "哦",
        "嘛",
        "么",
        "我",
        "你",
        "您",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "是",
        "在",
        "有",
        "和",
        "就",
        "都",
        "也",
        "还",
        "请问",
        "请",
        "一下",
        "一个",
        "这个",
        "那个",
        "怎么",
        "如何",
        "什么",
        "可以",
        "能",
        "能不能",
        "可不可以",
        "要",
        "想",
        "会",
    }
)
_TOKEN = re.compile(r"[\w]+", re.UNICODE)

jieba.setLogLevel(logging.WARNING)


def normalise(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation to half-width), lower case, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


@lru_cache(maxsize=4096)
def lexical_tokens(text: str) -> tuple[str, ...]:
    """Jieba search-mode words, without punctuation or stopwords.

    Search mode also emits the shorter words inside long ones (退货流程 → 退货, 流程). Single
    characters were tried as extra tokens (to keep a typo such as 发漂 partly matchable) and
    lowered hit@1 on the dev paraphrases (bench/results/faq_calibration.md): one shared
    character like 天 or 发 says little about the question.
    """
    words: list[str] = []
    for word in jieba.cut_for_search(normalise(text)[:MAX_QUERY_CHARS]):
        word = word.strip()
        if not word or not _TOKEN.fullmatch(word) or word in _STOPWORDS:
            continue
        words.append(word)
    return tuple(words)
