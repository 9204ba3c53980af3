"""`KnowledgeHolder`: one background load per process, shared by every caller, and its failures."""

import threading
from typing import Any, cast

import pytest
from sqlalchemy.orm import Session, sessionmaker

from knowledge.errors import EncoderUnavailable, KnowledgeError, KnowledgeUnavailable
from knowledge.holder import KnowledgeHolder
from knowledge.service import KnowledgeService

SESSIONS = cast(sessionmaker[Session], object())


class StubService:
    """Stands in for a loaded `KnowledgeService`: counts the change notices it gets."""

    def __init__(self) -> None:
        self.notices = 0

    def notify_changed(self) -> None:
        self.notices += 1


class Loader:
    """Builds the stub service when released, counting how often it was asked to."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.service = StubService()
        self._fail = fail

    def __call__(self, sessions: sessionmaker[Session]) -> KnowledgeService:
        assert sessions is SESSIONS
        self.calls += 1
        self.release.wait(10)
        if self._fail is not None:
            raise self._fail
        return cast(KnowledgeService, self.service)


def test_a_holder_loads_nothing_until_the_service_is_asked_for() -> None:
    loader = Loader()
    holder = KnowledgeHolder(SESSIONS, load=loader)
    assert (holder.state, loader.calls) == ("idle", 0)
    assert holder.wait(0) is False
    holder.notify_changed()  # nothing loaded: nothing to tell


def test_get_never_waits_and_callers_share_one_load() -> None:
    loader = Loader()
    holder = KnowledgeHolder(SESSIONS, load=loader)

    assert holder.get() is None
    assert holder.state == "loading"
    holder.start_loading()
    got: list[Any] = []
    waiting = [threading.Thread(target=lambda: got.append(holder.require())) for _ in range(3)]
    for thread in waiting:
        thread.start()
    loader.release.set()
    for thread in waiting:
        thread.join(10)

    assert got == [loader.service] * 3
    assert loader.calls == 1
    assert holder.state == "ready"
    assert holder.get() is loader.service
    holder.notify_changed()
    assert loader.service.notices == 1


def test_require_gives_up_after_its_timeout_and_the_load_goes_on() -> None:
    loader = Loader()
    holder = KnowledgeHolder(SESSIONS, load=loader)

    with pytest.raises(KnowledgeUnavailable, match="not loaded within 0.05 s"):
        holder.require(timeout=0.05)
    assert holder.state == "loading"

    loader.release.set()
    assert holder.require(timeout=10) is loader.service
    assert loader.calls == 1


def test_a_failed_load_stays_failed_and_names_its_cause() -> None:
    cause = EncoderUnavailable("no model in var/models")
    loader = Loader(fail=cause)
    loader.release.set()
    holder = KnowledgeHolder(SESSIONS, load=loader)

    with pytest.raises(KnowledgeUnavailable, match="EncoderUnavailable") as caught:
        holder.require(timeout=10)

    assert caught.value.__cause__ is cause
    assert isinstance(caught.value, KnowledgeError)
    assert holder.state == "failed"
    assert holder.get() is None
    assert loader.calls == 1
