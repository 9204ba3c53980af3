"""Several Rasa replicas behind the API (`crmbot up --scale`): which one takes a turn, failover,
and `/health` per replica (api/rasa_servers.py, api/gateway.py, api/routes/health.py)."""

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_stubs import ACTION_SERVER_URL, RASA_URL, StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.rasa_servers import RasaServers, rasa_servers
from api.routes.chat import UNAVAILABLE_REPLY
from crm_store.settings import ApiSettings

RASA_1, RASA_2 = "http://rasa-1.test:5005", "http://rasa-2.test:5006"
ACTIONS_1, ACTIONS_2 = "http://actions-1.test:5055", "http://actions-2.test:5056"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- RasaServers ------------------------------------------------------------------------------


def test_each_conversation_keeps_its_own_order_and_both_servers_get_some() -> None:
    servers = RasaServers((RASA_1, RASA_2), retry_after_s=10)

    firsts = [servers.order(f"web-{i}")[0] for i in range(400)]

    assert all(servers.order(f"web-{i}")[0] == first for i, first in enumerate(firsts))
    assert all(sorted(servers.order(f"web-{i}")) == [RASA_1, RASA_2] for i in range(400))
    # Rendezvous hashing spreads conversations about evenly.
    assert 140 <= firsts.count(RASA_1) <= 260


def test_a_third_replica_takes_conversations_only_from_the_others_share() -> None:
    two = RasaServers((RASA_1, RASA_2), retry_after_s=10)
    three = RasaServers((RASA_1, RASA_2, "http://rasa-3.test:5007"), retry_after_s=10)

    moved = [c for c in (f"web-{i}" for i in range(300)) if two.order(c)[0] != three.order(c)[0]]

    # Only conversations that now prefer the new replica move; the others stay where they were.
    assert moved
    assert all(three.order(c)[0] == "http://rasa-3.test:5007" for c in moved)


def test_failed_server_rests_until_retry_after_then_comes_back_first() -> None:
    clock = FakeClock()
    servers = RasaServers((RASA_1, RASA_2), retry_after_s=10, clock=clock)
    conversation = next(c for c in (f"web-{i}" for i in range(50)) if servers.order(c)[0] == RASA_1)

    servers.failed(RASA_1, "ConnectError")
    assert servers.order(conversation) == [RASA_2, RASA_1]

    clock.now += 10.5
    assert servers.order(conversation) == [RASA_1, RASA_2]


def test_answer_puts_a_resting_server_back_at_once() -> None:
    servers = RasaServers((RASA_1, RASA_2), retry_after_s=10, clock=FakeClock())
    conversation = next(c for c in (f"web-{i}" for i in range(50)) if servers.order(c)[0] == RASA_1)
    servers.failed(RASA_1, "HTTP 500")

    servers.answered(RASA_1)

    assert servers.order(conversation)[0] == RASA_1


def test_all_servers_are_still_tried_when_all_rest() -> None:
    servers = RasaServers((RASA_1, RASA_2), retry_after_s=10, clock=FakeClock())
    servers.failed(RASA_1, "ConnectError")
    servers.failed(RASA_2, "ConnectError")

    assert sorted(servers.order("web-1")) == [RASA_1, RASA_2]


def test_leaving_rotation_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    servers = RasaServers((RASA_1, RASA_2), retry_after_s=10, clock=FakeClock())

    with caplog.at_level(logging.INFO, logger="api.rasa_servers"):
        servers.failed(RASA_1, "ConnectError")
        servers.failed(RASA_1, "ConnectError")
        servers.answered(RASA_1)

    assert [r.getMessage() for r in caplog.records] == [
        f"Rasa server {RASA_1} out of rotation for 10 s: ConnectError",
        f"Rasa server {RASA_1} back in rotation",
    ]


def test_no_server_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RasaServers((), retry_after_s=10)


# --- settings ---------------------------------------------------------------------------------


def test_settings_take_comma_separated_servers_without_trailing_slashes() -> None:
    settings = ApiSettings(rasa_url=f" {RASA_1}/ ,{RASA_2}", action_server_url=f"{ACTIONS_1},{ACTIONS_2}/")

    assert settings.rasa_servers == (RASA_1, RASA_2)
    assert settings.action_servers == (ACTIONS_1, ACTIONS_2)


@pytest.mark.parametrize(
    ("rasa_url", "action_server_url"),
    [
        (f"{RASA_1},{RASA_2}", f"{ACTIONS_1},{ACTIONS_2},http://actions-3.test:5057"),
        (RASA_1, f"{ACTIONS_1},{ACTIONS_2}"),
        (f"{RASA_1},", ACTIONS_1),
        ("rasa-1.test:5005", ACTIONS_1),
    ],
)
def test_settings_refuse_mismatched_or_malformed_servers(rasa_url: str, action_server_url: str) -> None:
    with pytest.raises(ValidationError):
        ApiSettings(rasa_url=rasa_url, action_server_url=action_server_url)


# --- the gateway and /health with two replicas ------------------------------------------------


class Replicas:
    """Two stand-ins for a Rasa replica and its action server, told apart by host."""

    def __init__(self) -> None:
        self.stubs = {RASA_1: StubServices(), RASA_2: StubServices()}
        self.by_host = {
            httpx.URL(RASA_1).host: (self.stubs[RASA_1], RASA_URL),
            httpx.URL(RASA_2).host: (self.stubs[RASA_2], RASA_URL),
            httpx.URL(ACTIONS_1).host: (self.stubs[RASA_1], ACTION_SERVER_URL),
            httpx.URL(ACTIONS_2).host: (self.stubs[RASA_2], ACTION_SERVER_URL),
        }
        for url, stubs in self.stubs.items():
            stubs.rasa_reply = [{"recipient_id": "web-u1", "text": f"来自 {url} 的回复"}]

    def handle(self, request: httpx.Request) -> httpx.Response:
        stubs, base = self.by_host[request.url.host]
        target = httpx.URL(base)
        forwarded = httpx.Request(
            request.method,
            request.url.copy_with(host=target.host, port=target.port),
            headers=request.headers,
            content=request.content,
        )
        return stubs.handle(forwarded)


@pytest.fixture
def replicas(app: FastAPI, settings: ApiSettings) -> Iterator[Replicas]:
    from api.deps import get_http_client

    replicas = Replicas()

    async def replicas_client() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(replicas.handle)) as client:
            yield client

    app.dependency_overrides[get_http_client] = replicas_client
    settings.rasa_url = f"{RASA_1},{RASA_2}"
    settings.action_server_url = f"{ACTIONS_1},{ACTIONS_2}"
    # Each test starts with both replicas in rotation.
    rasa_servers.cache_clear()
    yield replicas
    rasa_servers.cache_clear()


def preferring(server: str) -> str:
    """A web chat sender whose conversation prefers `server`."""
    servers = RasaServers((RASA_1, RASA_2), retry_after_s=10)
    return next(s for s in (f"web-u{i}" for i in range(100)) if servers.order(s)[0] == server)


def say(client: TestClient, sender: str, message: str = "你好") -> httpx.Response:
    return client.post("/api/chat", json={"sender": sender, "message": message})


def test_each_conversation_is_answered_by_its_own_replica(client: TestClient, replicas: Replicas) -> None:
    one, two = preferring(RASA_1), preferring(RASA_2)

    for _ in range(2):
        assert say(client, one).json() == [{"recipient_id": "web-u1", "text": f"来自 {RASA_1} 的回复"}]
        assert say(client, two).json() == [{"recipient_id": "web-u1", "text": f"来自 {RASA_2} 的回复"}]

    assert [c["sender"] for c in replicas.stubs[RASA_1].webhook_calls] == [one, one]
    assert [c["sender"] for c in replicas.stubs[RASA_2].webhook_calls] == [two, two]


def test_a_replica_that_refuses_connections_is_skipped_and_taken_back_when_it_answers(
    client: TestClient, replicas: Replicas, settings: ApiSettings
) -> None:
    sender = preferring(RASA_1)
    replicas.stubs[RASA_1].rasa_up = False
    settings.rasa_retry_after_s = 0.3

    first = say(client, sender, "我的订单到哪了")
    second = say(client, sender, "SO202611180001")

    assert first.status_code == second.status_code == 200
    assert first.json()[0]["text"] == f"来自 {RASA_2} 的回复"
    # The turn went once, to the replica that answered; the next one did not knock on the dead one.
    assert [c["message"] for c in replicas.stubs[RASA_2].webhook_calls] == [
        "我的订单到哪了",
        "SO202611180001",
    ]
    refused = [r for r in replicas.stubs[RASA_1].requests if r.url.path == "/webhooks/rest/webhook"]
    assert len(refused) == 1

    # Back up: after the rest period the conversation returns to its own replica.
    replicas.stubs[RASA_1].rasa_up = True
    time.sleep(0.4)

    assert say(client, sender).json()[0]["text"] == f"来自 {RASA_1} 的回复"


def test_a_turn_that_may_have_reached_a_replica_is_not_sent_again(
    client: TestClient, replicas: Replicas
) -> None:
    sender = preferring(RASA_1)

    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    replicas.stubs[RASA_1].handle = read_timeout  # type: ignore[method-assign]

    response = say(client, sender, "我要投诉")

    # A second replica could answer the same complaint twice: the customer is asked to retry.
    assert response.status_code == 503
    assert response.json() == [{"text": UNAVAILABLE_REPLY}]
    assert replicas.stubs[RASA_2].webhook_calls == []
    # …and the next turn goes to the other replica while the first one rests.
    assert say(client, sender).json()[0]["text"] == f"来自 {RASA_2} 的回复"


def test_a_replica_answering_5xx_gets_the_apology_then_rests(client: TestClient, replicas: Replicas) -> None:
    sender = preferring(RASA_2)
    replicas.stubs[RASA_2].rasa_webhook_status = 500

    assert say(client, sender).status_code == 503
    assert say(client, sender).json()[0]["text"] == f"来自 {RASA_1} 的回复"


def test_chat_apologises_when_every_replica_is_down(client: TestClient, replicas: Replicas) -> None:
    for stubs in replicas.stubs.values():
        stubs.rasa_up = False

    response = say(client, "web-u1")

    assert response.status_code == 503
    assert response.json() == [{"text": UNAVAILABLE_REPLY}]


def test_health_reports_each_replica(client: TestClient, replicas: Replicas) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["components"]["rasa"] == {"ok": True}
    assert body["components"]["replicas"] == [
        {
            "rasa_url": url,
            "rasa": {"ok": True, "model_loaded": True},
            "action_server": {"ok": True},
        }
        for url in (RASA_1, RASA_2)
    ]


def test_health_is_degraded_but_serving_while_one_replica_is_down(
    client: TestClient, replicas: Replicas
) -> None:
    replicas.stubs[RASA_2].action_server_up = False

    response = client.get("/health")

    # A load balancer keeps sending customers: the other replica serves them.
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["action_server"] == {"ok": True, "detail": "1 of 2 action servers answer"}
    assert [r["action_server"]["ok"] for r in body["components"]["replicas"]] == [True, False]


def test_health_503_when_no_replica_can_serve(client: TestClient, replicas: Replicas) -> None:
    replicas.stubs[RASA_1].rasa_up = False
    replicas.stubs[RASA_2].action_server_up = False

    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["components"]["rasa"] == {"ok": True, "detail": "1 of 2 Rasa servers answer"}
