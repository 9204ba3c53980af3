"""Action tests: real actions against a real demo store, with trackers as Rasa would send them."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session, sessionmaker

import actions.support

DOMAIN_DIR = Path(__file__).resolve().parents[2] / "bot" / "domain"


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    """The real domain, merged from bot/domain/*.yml the way Rasa merges a domain directory."""
    merged: dict[str, Any] = {}
    for file in sorted(DOMAIN_DIR.glob("*.yml")):
        for key, value in yaml.safe_load(file.read_text(encoding="utf-8")).items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    return merged


@pytest.fixture
def action_store(demo_store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> sessionmaker[Session]:
    """The action server's store, pointed at the demo company on the reference day."""
    monkeypatch.setattr(actions.support, "_session_factory", lambda: demo_store)
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    return demo_store


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()
