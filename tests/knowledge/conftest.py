"""Fixtures for the knowledge tests (the encoder itself is in tests/conftest.py)."""

import pytest

from knowledge.types import FaqEntry


@pytest.fixture(scope="session")
def demo_faq_entries() -> list[FaqEntry]:
    from bench.faq_data import demo_faqs

    return demo_faqs()
