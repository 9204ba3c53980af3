"""Whether a message the classifier did not understand is still worth searching the FAQs for."""

import re

# Interrogative words and sentence-final particles of Mandarin questions, and the question mark.
_QUESTION = re.compile(
    r"[?？]|吗|么|呢|怎么|怎样|咋|如何|什么|啥|为什么|为何|多少|多久|几[天个点号次块元岁]|哪|谁|"
    r"能否|能不能|可不可以|可以.{0,8}吗|是否|有没有|是不是|要不要|行不行|会不会|支持.{0,10}吗"
)
# Shorter than this is "ok", "嗯" or a typo, not a question about the shop.
_MIN_CHARS = 3


def looks_like_question(text: str) -> bool:
    """True for a message that reads like a question (怎么开发票, 运费多少?), not a bare statement."""
    stripped = text.strip()
    if len(stripped) < _MIN_CHARS or stripped.startswith("/"):
        return False
    return bool(_QUESTION.search(stripped))
