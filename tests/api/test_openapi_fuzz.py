"""Property-based fuzzing of every endpoint from the app's own OpenAPI schema (schemathesis).

Schemathesis reads `/openapi.json` from the app in-process (ASGI, lifespan included), generates
requests for every operation (valid bodies, parameters and headers from the schema, and some that
break it) and sends them as the demo company's admin, E08, so that the requests reach past
sign-in into the services. Each answer must not be a server error (5xx) and must match the
schema the app publishes for its status. The store is the demo company on a fresh SQLite copy;
Rasa and the action server are the in-process stubs of api_stubs.py. Fuzzing may change or erase
records: the store exists only for this module.

Bounded to stay well under a minute: `MAX_EXAMPLES` per operation, derandomized (the same cases
on every run, so a failure reproduces), no example database, no deadline. docs/security.md says
how to fuzz harder by hand.
"""

import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from api_stubs import ACTION_SERVER_URL, JWT_SECRET, RASA_URL, STAFF_PASSWORD_HASH, StubServices
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import update

from api.auth import issue_token
from api.deps import api_settings, get_http_client, get_uptime_s
from api.main import create_app
from crm_store.accounts import stamp_of
from crm_store.db import create_engine_for, make_session_factory
from crm_store.importer import import_csv_dir
from crm_store.models import Employee
from crm_store.settings import DEMO_DIR, ApiSettings, get_api_settings

MAX_EXAMPLES = 5
ADMIN = "E08"


@pytest.fixture(scope="module")
def fuzzed_app(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The app on a copy of the demo company (every password the stubs'), its Rasa the stub."""
    path = tmp_path_factory.mktemp("fuzz") / "crm.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = create_engine_for(url)
    sessions = make_session_factory(engine)
    assert import_csv_dir(sessions, DEMO_DIR).ok
    with sessions.begin() as session:
        session.execute(update(Employee).values(password_hash=STAFF_PASSWORD_HASH))
    engine.dispose()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CRM_DATABASE_URL", url)
        env.setenv("CRM_TODAY", "2026-11-23")
        env.setenv("KNOWLEDGE_DIR", str(path.parent / "knowledge"))
        get_api_settings.cache_clear()
        stubs = StubServices()
        fuzz_settings = ApiSettings(
            rasa_url=RASA_URL, action_server_url=ACTION_SERVER_URL, jwt_secret=SecretStr(JWT_SECRET)
        )
        app = create_app()

        async def stub_http_client() -> AsyncIterator[httpx.AsyncClient]:
            async with httpx.AsyncClient(transport=httpx.MockTransport(stubs.handle)) as client:
                yield client

        app.dependency_overrides[get_http_client] = stub_http_client
        app.dependency_overrides[api_settings] = lambda: fuzz_settings
        app.dependency_overrides[get_uptime_s] = lambda: 1e9
        app.state.fuzz_token = issue_token(fuzz_settings, ADMIN, stamp_of(STAFF_PASSWORD_HASH)).access_token
        yield app
    get_api_settings.cache_clear()


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: FastAPI) -> schemathesis.BaseSchema:
    """The schema as the app serves it."""
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def _load_knowledge(app: FastAPI) -> None:
    """Wait until the FAQ search answers: it is 503 ("loading", documented) while the encoder loads.

    Schemathesis's pytest plugin ends the app's lifespan after each test, so each test's app loads
    its knowledge base anew; only the search needs it.
    """
    with schemathesis.python.asgi.get_client(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/api/faq/search", params={"q": "发票"}).status_code == 503:
            assert time.monotonic() < deadline, "the knowledge base did not load"
            time.sleep(0.1)


# The customer's side of the chat runs other code (no token: a customer conversation), so these
# operations are fuzzed as a customer too.
CUSTOMER_OPERATIONS = {("POST", "/api/chat"), ("GET", "/api/chat/updates")}


def _operations() -> list[pytest.ParameterSet]:
    # Building the app reads no store: the schema is known at collection time.
    paths = create_app().openapi()["paths"]
    operations = [(method.upper(), path) for path, methods in paths.items() for method in methods]
    return [pytest.param(m, p, ADMIN, id=f"{m} {p}") for m, p in operations] + [
        pytest.param(m, p, None, id=f"{m} {p} as a customer")
        for m, p in operations
        if (m, p) in CUSTOMER_OPERATIONS
    ]


@pytest.mark.parametrize(("method", "path", "caller"), _operations())
def test_every_endpoint_answers_without_a_server_error_and_as_documented(
    method: str, path: str, caller: str | None, api_schema: schemathesis.BaseSchema, fuzzed_app: FastAPI
) -> None:
    operation = api_schema[path][method]
    if path == "/api/faq/search":
        _load_knowledge(fuzzed_app)
    auth = {"Authorization": f"Bearer {fuzzed_app.state.fuzz_token}"} if caller else {}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=auth, checks=[not_a_server_error, response_schema_conformance])

    answers_as_documented()
