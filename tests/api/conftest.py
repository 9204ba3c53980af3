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
from api_stubs import (
    ACTION_SERVER_URL,
    JWT_SECRET,
    RASA_URL,
    STAFF_ID,
    STAFF_NAME,
    STAFF_PASSWORD_HASH,
    Headers,
    StaffHeaders,
    StubServices,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.auth import issue_token
from api.deps import api_settings, get_http_client, get_uptime_s
from api.main import create_app
from crm_store.accounts import stamp_of
from crm_store.db import create_engine_for, make_session_factory
from crm_store.importer import import_csv_dir
from crm_store.models import Employee
from crm_store.settings import ApiSettings


@pytest.fixture
def stubs() -> StubServices:
    return StubServices()


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path) -> str:
    path = tmp_path / "crm.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    add_test_admin(url)
    return url


def add_test_admin(url: str) -> None:
    """Add the admin whose token is `api_stubs.STAFF_TOKEN` (signed-in staff of the staff-endpoint tests)."""
    add_employee(url, STAFF_ID, role="admin", region="全国", name=STAFF_NAME)


def add_employee(url: str, employee_id: str, *, role: str, region: str | None, name: str) -> None:
    """Add an employee whose password is `api_stubs.STAFF_PASSWORD`."""
    engine = create_engine_for(url)
    try:
        with make_session_factory(engine).begin() as session:
            session.add(
                Employee(
                    employee_id=employee_id,
                    name=name,
                    role=role,
                    region=region,
                    password_hash=STAFF_PASSWORD_HASH,
                )
            )
    finally:
        engine.dispose()


@pytest.fixture
def staff_headers(database_url: str, settings: ApiSettings) -> StaffHeaders:
    """`staff_headers("E70", role="sales")`: add such an employee and answer their bearer header."""

    def make(
        employee_id: str, *, role: str, region: str | None = "华东", name: str = "测试员工"
    ) -> dict[str, str]:
        add_employee(database_url, employee_id, role=role, region=region, name=name)
        token = issue_token(settings, employee_id, stamp_of(STAFF_PASSWORD_HASH)).access_token
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def settings() -> ApiSettings:
    return ApiSettings(
        rasa_url=RASA_URL,
        action_server_url=ACTION_SERVER_URL,
        rasa_token=None,
        jwt_secret=SecretStr(JWT_SECRET),
    )


@pytest.fixture
def app(database_url: str, stubs: StubServices, settings: ApiSettings) -> FastAPI:
    del database_url  # only needed in the environment before create_app
    app = create_app()

    async def stub_http_client() -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(stubs.handle)) as client:
            yield client

    app.dependency_overrides[get_http_client] = stub_http_client
    app.dependency_overrides[api_settings] = lambda: settings
    # Past the start-up grace period unless a test says otherwise.
    app.dependency_overrides[get_uptime_s] = lambda: 1e9
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # raise_server_exceptions=False: assert what a real client would receive on a 500.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def demo(
    database_url: str, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """The demo company, each employee's password `STAFF_PASSWORD`, the clock on the demo day."""
    monkeypatch.setenv("CRM_TODAY", "2026-11-23")
    engine = create_engine_for(database_url)
    sessions = make_session_factory(engine)
    assert import_csv_dir(sessions, demo_dir).ok
    with sessions.begin() as session:
        session.execute(update(Employee).values(password_hash=STAFF_PASSWORD_HASH))
    try:
        yield sessions
    finally:
        engine.dispose()


@pytest.fixture
def as_(demo: sessionmaker[Session], settings: ApiSettings) -> Headers:
    """`as_("E02")`: the bearer header of a demo employee's real, signed token."""

    def headers(employee_id: str) -> dict[str, str]:
        token = issue_token(settings, employee_id, stamp_of(STAFF_PASSWORD_HASH)).access_token
        return {"Authorization": f"Bearer {token}"}

    return headers
