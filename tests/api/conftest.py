"""Fixtures for the API tests: a fresh app on a temporary, migrated SQLite CRM database, with
Rasa and the action server stood in by an in-process HTTP stub (`httpx.MockTransport`).

The schema is migrated once per run into a template file (`sqlite_template`, tests/conftest.py),
which each test copies: a real store for every test without paying for Alembic each time.

The stub is wired through the app's own seam, `app.dependency_overrides[get_http_client]`,
so every byte the gateway sends to Rasa is recorded and can be asserted on.

`api_stubs` is imported as a top-level module: tests/api has no `__init__.py` (one would make
the folder a package named `api`, shadowing the real one), so pytest puts this folder on
`sys.path` (its default "prepend" import mode).
"""

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from api_stubs import ACTION_SERVER_URL, RASA_URL, STAFF_TOKEN, StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.deps import get_http_client, get_uptime_s
from api.main import create_app
from crm_store.settings import ApiSettings, get_api_settings


@pytest.fixture
def stubs() -> StubServices:
    return StubServices()


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path) -> str:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    return url


@pytest.fixture
def settings() -> ApiSettings:
    return ApiSettings(
        rasa_url=RASA_URL,
        action_server_url=ACTION_SERVER_URL,
        rasa_token=None,
        staff_token=SecretStr(STAFF_TOKEN),
    )


@pytest.fixture
def app(database_url: str, stubs: StubServices, settings: ApiSettings) -> FastAPI:
    del database_url  # only needed in the environment before create_app
    app = create_app()

    async def stub_http_client() -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(stubs.handle)) as client:
            yield client

    app.dependency_overrides[get_http_client] = stub_http_client
    app.dependency_overrides[get_api_settings] = lambda: settings
    # Past the start-up grace period unless a test says otherwise.
    app.dependency_overrides[get_uptime_s] = lambda: 1e9
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # raise_server_exceptions=False: assert what a real client would receive on a 500.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
