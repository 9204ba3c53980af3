"""Tests of `GET /health`: per-component flags, 200 only when everything is ok."""

from pathlib import Path
from typing import Any

import pytest
from api_stubs import StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.deps import get_uptime_s
from crm_store.settings import ApiSettings


def components(client: TestClient) -> tuple[int, Any]:
    response = client.get("/health")
    return response.status_code, response.json()


def test_health_ok_when_all_components_up(client: TestClient) -> None:
    status_code, body = components(client)

    assert status_code == 200
    assert body == {
        "status": "ok",
        "components": {
            "database": {"ok": True, "dialect": "sqlite"},
            "rasa": {"ok": True, "model_loaded": True},
            "action_server": {"ok": True},
        },
    }


def test_health_503_when_rasa_down(client: TestClient, stubs: StubServices) -> None:
    stubs.rasa_up = False

    status_code, body = components(client)

    assert status_code == 503
    assert body["status"] == "degraded"
    assert body["components"] == {
        "database": {"ok": True, "dialect": "sqlite"},
        "rasa": {"ok": False, "detail": "unreachable (ConnectError)"},
        "action_server": {"ok": True},
    }


def test_health_503_when_action_server_down(client: TestClient, stubs: StubServices) -> None:
    stubs.action_server_up = False

    status_code, body = components(client)

    assert status_code == 503
    assert body["status"] == "degraded"
    assert body["components"] == {
        "database": {"ok": True, "dialect": "sqlite"},
        "rasa": {"ok": True, "model_loaded": True},
        "action_server": {"ok": False, "detail": "unreachable (ConnectError)"},
    }


@pytest.mark.parametrize("status_body", [{"model_file": None}, {"model_file": ""}, {}, ["x"]])
def test_health_503_when_rasa_has_no_model(
    client: TestClient, stubs: StubServices, status_body: object
) -> None:
    stubs.rasa_status_body = status_body

    status_code, body = components(client)

    assert status_code == 503
    assert body["components"]["rasa"] == {"ok": False, "model_loaded": False, "detail": "no model loaded"}


def test_health_503_when_rasa_status_answers_500(client: TestClient, stubs: StubServices) -> None:
    stubs.rasa_status_code = 500

    status_code, body = components(client)

    assert status_code == 503
    assert body["components"]["rasa"] == {"ok": False, "detail": "/status answered HTTP 500"}


@pytest.mark.parametrize("closed_status", [401, 403, 404])
def test_health_falls_back_to_rasa_root_when_status_closed(
    client: TestClient, stubs: StubServices, closed_status: int
) -> None:
    stubs.rasa_status_code = closed_status

    status_code, body = components(client)

    assert status_code == 200
    rasa = body["components"]["rasa"]
    assert rasa["ok"] is True
    assert "model_loaded" not in rasa
    assert str(closed_status) in rasa["detail"]
    assert [r.url.path for r in stubs.requests if r.url.host == "rasa.test"] == ["/status", "/"]


def test_health_503_when_rasa_status_closed_and_root_fails(client: TestClient, stubs: StubServices) -> None:
    stubs.rasa_status_code = 404
    stubs.rasa_root_status = 502

    status_code, body = components(client)

    assert status_code == 503
    assert body["components"]["rasa"] == {"ok": False, "detail": "/ answered HTTP 502"}


def test_health_sends_rasa_token_when_configured(
    client: TestClient, stubs: StubServices, settings: ApiSettings
) -> None:
    settings.rasa_token = SecretStr("s3cr3t")

    components(client)

    status_calls = [r for r in stubs.requests if r.url.path == "/status"]
    assert [r.url.params.get("token") for r in status_calls] == ["s3cr3t"]


def test_health_sends_no_token_by_default(client: TestClient, stubs: StubServices) -> None:
    components(client)

    status_calls = [r for r in stubs.requests if r.url.path == "/status"]
    assert len(status_calls) == 1
    assert "token" not in status_calls[0].url.params


def test_health_503_when_database_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: FastAPI
) -> None:
    # A directory is not a database file: SQLite cannot open it, so SELECT 1 fails for real.
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path}")

    with TestClient(app) as client:
        status_code, body = components(client)

    assert status_code == 503
    assert body["components"]["database"] == {"ok": False, "dialect": "sqlite", "detail": "SELECT 1 failed"}
    assert body["components"]["rasa"]["ok"] is True
    assert body["components"]["action_server"]["ok"] is True


def test_health_reports_starting_during_startup_grace(
    app: FastAPI, client: TestClient, stubs: StubServices
) -> None:
    stubs.rasa_up = False
    app.dependency_overrides[get_uptime_s] = lambda: 5.0

    status_code, body = components(client)

    assert status_code == 503
    assert body["status"] == "starting"


def test_health_reports_ok_during_startup_grace_when_all_up(app: FastAPI, client: TestClient) -> None:
    app.dependency_overrides[get_uptime_s] = lambda: 5.0

    status_code, body = components(client)

    assert status_code == 200
    assert body["status"] == "ok"
