"""Asking the operator before a command that cannot be undone (`crmbot restore`, `crmbot privacy erase`)."""

import sys
from collections.abc import Sequence
from typing import Final

__all__ = ["YES", "confirmed"]

YES: Final = frozenset({"y", "yes", "是", "确定"})


def confirmed(lines: Sequence[str], question: str) -> bool:
    """Show what will happen, ask `question` ("确定要…吗？[y/N] "); True only for a yes (no input: no)."""
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in YES
