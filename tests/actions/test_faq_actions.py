"""FAQ answers in the dialogue: the real knowledge base on the demo store, trackers as Rasa sends them."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from action_support import make_tracker, rendered_buttons
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import actions.support
from actions.faq import ActionAnswerFaq, ActionRecordFaqFeedback
from actions.handoff import ActionHandleFallback
from crm_store.faqs import delete_faq
from crm_store.models import FaqFeedback, FaqUnanswered, HandoffCase
from crm_store.settings import KnowledgeSettings
from knowledge.encoder import SentenceEncoder
from knowledge.holder import KnowledgeHolder
from knowledge.service import KnowledgeService


@pytest.fixture
def knowledge(
    action_store: sessionmaker[Session],
    encoder: SentenceEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> KnowledgeService:
    service = KnowledgeService(action_store, KnowledgeSettings(dir=tmp_path / "knowledge"), encoder)
    holder = KnowledgeHolder(action_store, load=lambda _sessions: service)
    monkeypatch.setattr(actions.support, "knowledge_holder", lambda: holder)
    return service


def _texts(dispatcher: CollectingDispatcher) -> list[str]:
    return [m.get("text") or m.get("response") or "" for m in dispatcher.messages]


def _buttons(dispatcher: CollectingDispatcher, domain: dict[str, Any]) -> list[dict[str, str]]:
    """The buttons the customer sees, as Rasa renders the dispatched messages."""
    return [b for m in dispatcher.messages for b in rendered_buttons(domain, m)]


def _ask(dispatcher: CollectingDispatcher, domain: dict[str, Any], text: str, **tracker: Any) -> list[Any]:
    return asyncio.run(
        ActionAnswerFaq().run(dispatcher, make_tracker(text=text, intent="ask_faq", **tracker), domain)
    )


def test_a_clear_question_gets_the_answer_and_thumbs(
    knowledge: KnowledgeService, dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    events = _ask(dispatcher, domain, "发票怎么开啊")

    assert "电子普通发票或增值税专用发票" in _texts(dispatcher)[0]
    assert [b["title"] for b in _buttons(dispatcher, domain)] == ["👍 有帮助", "👎 没帮助"]
    payload = _buttons(dispatcher, domain)[0]["payload"]
    assert payload.startswith("/faq_feedback") and json.loads(payload.removeprefix("/faq_feedback")) == {
        "faq_vote": "up",
        "faq_id": "F003",
    }
    # Exactly the payload the feedback intent's entities are read from (as json.dumps writes it).
    assert payload == '/faq_feedback{"faq_vote": "up", "faq_id": "F003"}'
    assert {"event": "slot", "timestamp": None, "name": "faq_answered_id", "value": "F003"} in events


def test_a_vague_question_offers_three_faqs_and_none_of_these(
    knowledge: KnowledgeService, dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _ask(dispatcher, domain, "钱的事情怎么弄")

    assert dispatcher.messages[0]["response"] == "utter_faq_suggest"
    buttons = _buttons(dispatcher, domain)
    assert len(buttons) == 4
    assert all(b["payload"].startswith('/ask_faq{"faq_id": "F') for b in buttons[:3])
    assert buttons[3] == {"title": "都不是", "payload": '/faq_feedback{"faq_vote": "none_of_these"}'}


def test_a_chosen_suggestion_is_answered_without_searching(
    knowledge: KnowledgeService, dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    tracker = make_tracker(text='/ask_faq{"faq_id": "F004"}', intent="ask_faq")
    tracker.latest_message["entities"] = [{"entity": "faq_id", "value": "F004"}]
    asyncio.run(ActionAnswerFaq().run(dispatcher, tracker, domain))

    assert "满99元包邮" in _texts(dispatcher)[0]


def test_an_unanswerable_question_is_admitted_queued_and_offers_a_person(
    knowledge: KnowledgeService,
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
) -> None:
    _ask(dispatcher, domain, "商品可以刻字吗？我电话13812345678")

    assert dispatcher.messages[0]["response"] == "utter_faq_none"
    assert domain["responses"]["utter_faq_none"][0]["buttons"] == [
        {"title": "转人工客服", "payload": "/request_human"}
    ]
    with action_store() as session:
        queued = session.scalars(select(FaqUnanswered)).all()
    assert len(queued) == 1
    assert "13812345678" not in queued[0].question
    assert "可以刻字" in queued[0].question


def test_the_faq_button_without_a_question_asks_for_one(
    knowledge: KnowledgeService, dispatcher: CollectingDispatcher, domain: dict[str, Any]
) -> None:
    _ask(dispatcher, domain, "/ask_faq")
    assert _texts(dispatcher) == ["utter_faq_ask_question"]


@pytest.mark.parametrize(
    ("vote", "helpful", "reply"),
    [("up", True, "utter_faq_thanks_helpful"), ("down", False, "utter_faq_sorry_unhelpful")],
)
def test_thumbs_are_stored_for_the_deflection_rate(
    knowledge: KnowledgeService,
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
    vote: str,
    helpful: bool,
    reply: str,
) -> None:
    tracker = make_tracker(text="👍", intent="faq_feedback", slots={"faq_question": "发票怎么开啊"})
    tracker.latest_message["entities"] = [
        {"entity": "faq_vote", "value": vote},
        {"entity": "faq_id", "value": "F003"},
    ]
    asyncio.run(ActionRecordFaqFeedback().run(dispatcher, tracker, domain))

    assert _texts(dispatcher) == [reply]
    with action_store() as session:
        stored = session.scalars(select(FaqFeedback)).all()
    assert [(f.faq_id, f.helpful) for f in stored] == [("F003", helpful)]


def test_a_vote_on_a_faq_deleted_meanwhile_is_answered_politely(
    knowledge: KnowledgeService,
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
) -> None:
    with action_store.begin() as session:
        delete_faq(session, "F003")
    tracker = make_tracker(text="👎", intent="faq_feedback", slots={"faq_answered_id": "F003"})
    tracker.latest_message["entities"] = [{"entity": "faq_vote", "value": "down"}]
    asyncio.run(ActionRecordFaqFeedback().run(dispatcher, tracker, domain))

    assert _texts(dispatcher) == ["utter_faq_sorry_unhelpful"]


def test_none_of_these_queues_the_question_and_offers_a_person(
    knowledge: KnowledgeService,
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
) -> None:
    tracker = make_tracker(text="都不是", intent="faq_feedback", slots={"faq_question": "钱的事情怎么弄"})
    tracker.latest_message["entities"] = [{"entity": "faq_vote", "value": "none_of_these"}]
    asyncio.run(ActionRecordFaqFeedback().run(dispatcher, tracker, domain))

    assert _texts(dispatcher) == ["utter_faq_none"]
    with action_store() as session:
        assert [q.question for q in session.scalars(select(FaqUnanswered))] == ["钱的事情怎么弄"]


def test_a_misunderstood_question_is_answered_from_the_faqs(
    knowledge: KnowledgeService,
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
) -> None:
    tracker = make_tracker(text="满多少钱可以包邮？", intent="nlu_fallback")
    asyncio.run(ActionHandleFallback().run(dispatcher, tracker, domain))

    assert "满99元包邮" in _texts(dispatcher)[0]
    with action_store() as session:
        assert session.scalar(select(HandoffCase)) is None


def test_a_misunderstood_question_no_faq_answers_is_queued_then_clarified(
    knowledge: KnowledgeService,
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
) -> None:
    tracker = make_tracker(text="北京到上海的高铁要坐多久？", intent="nlu_fallback")
    tracker.latest_message["intent_ranking"] = [{"name": "nlu_fallback"}, {"name": "check_order_status"}]
    asyncio.run(ActionHandleFallback().run(dispatcher, tracker, domain))

    assert dispatcher.messages[0]["response"] == "utter_clarify"
    with action_store() as session:
        assert len(session.scalars(select(FaqUnanswered)).all()) == 1


def test_a_broken_knowledge_base_gets_an_apology_not_an_error(
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_sessions: sessionmaker[Session]) -> KnowledgeService:
        raise RuntimeError("index file unreadable")

    holder = KnowledgeHolder(action_store, load=broken)
    monkeypatch.setattr(actions.support, "knowledge_holder", lambda: holder)
    _ask(dispatcher, domain, "发票怎么开")
    tracker = make_tracker(text='/ask_faq{"faq_id": "F004"}', intent="ask_faq")
    tracker.latest_message["entities"] = [{"entity": "faq_id", "value": "F004"}]
    asyncio.run(ActionAnswerFaq().run(dispatcher, tracker, domain))

    assert _texts(dispatcher) == ["utter_faq_unavailable", "utter_faq_unavailable"]
    assert holder.state == "failed"


def test_a_question_during_the_start_up_load_waits_for_it(
    action_store: sessionmaker[Session],
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    knowledge: KnowledgeService,
) -> None:
    loads: list[int] = []

    def slow_load(_sessions: sessionmaker[Session]) -> KnowledgeService:
        loads.append(1)
        return knowledge

    holder = KnowledgeHolder(action_store, load=slow_load)
    monkeypatch.setattr(actions.support, "knowledge_holder", lambda: holder)
    holder.start_loading()  # what the server's start does (actions/__main__.py)
    _ask(dispatcher, domain, "发票怎么开啊")

    assert "电子普通发票或增值税专用发票" in _texts(dispatcher)[0]
    assert loads == [1]
