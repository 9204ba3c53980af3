"""The scale profile's layout (`crmbot up --scale`, crmbot/stack.py): which settings it needs,
which processes it runs with which addresses, and the lock store its Rasa replicas share."""

import stat
from pathlib import Path

import pytest
import yaml

from crm_store.settings import ApiSettings
from crmbot.cli import main
from crmbot.stack import (
    LOCK_LIFETIME_S,
    ScaleRefused,
    Stack,
    process_commands,
    process_environment,
    rasa_lock_store,
    stack_programs,
    write_scale_endpoints,
)

POSTGRES = "postgresql+psycopg://crm@db.internal:5432/crm"
LOCK_STORE = "redis://:s3cret@cache.internal:6380/3"


@pytest.fixture
def scale_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", POSTGRES)
    monkeypatch.setenv("CRM_LOCK_STORE_URL", LOCK_STORE)
    monkeypatch.setenv("CRM_RASA_PORT", "6005")
    monkeypatch.setenv("CRM_ACTION_PORT", "6055")
    monkeypatch.delenv("CRM_REDIS_URL", raising=False)
    monkeypatch.delenv("CRM_RASA_REPLICAS", raising=False)
    monkeypatch.delenv("CRM_API_WORKERS", raising=False)


def test_scale_is_refused_on_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'crm.db'}")
    monkeypatch.setenv("CRM_LOCK_STORE_URL", LOCK_STORE)

    with pytest.raises(ScaleRefused, match="PostgreSQL"):
        Stack.from_settings(scale=True)


def test_scale_is_refused_without_a_lock_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", POSTGRES)
    monkeypatch.delenv("CRM_LOCK_STORE_URL", raising=False)

    with pytest.raises(ScaleRefused, match="CRM_LOCK_STORE_URL"):
        Stack.from_settings(scale=True)


def test_crmbot_up_scale_says_what_is_missing_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'crm.db'}")

    assert main(["up", "--scale"]) == 2
    assert "多副本运行需要 PostgreSQL" in caplog.text
    # Nothing was started or created.
    assert not (tmp_path / "crm.db").exists()


def test_without_scale_the_embedded_stack_is_unchanged(scale_env: None) -> None:
    stack = Stack.from_settings()

    assert (stack.rasa_replicas, stack.api_workers, stack.scaled) == (1, 1, False)
    assert list(process_commands(stack, Path("model.tar.gz"))) == ["rasa", "actions", "api", "care"]


def test_scale_runs_two_replicas_each_with_its_action_server(scale_env: None, tmp_path: Path) -> None:
    stack = Stack.from_settings(scale=True)
    endpoints = tmp_path / "endpoints.yml"

    commands = process_commands(stack, tmp_path / "model.tar.gz", endpoints)

    assert list(commands) == ["rasa-1", "actions-1", "rasa-2", "actions-2", "api", "care"]
    assert _option(commands["rasa-1"], "--port") == "6005"
    assert _option(commands["rasa-2"], "--port") == "6006"
    assert _option(commands["rasa-2"], "--endpoints") == str(endpoints)
    assert _option(commands["actions-2"], "--port") == "6056"
    assert _option(commands["api"], "--workers") == "2"


def test_each_replica_calls_its_own_action_server(
    scale_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("crmbot.stack.RUN_DIR", tmp_path)
    stack = Stack.from_settings(scale=True)

    programs = {p.name: p for p in stack_programs(stack, tmp_path / "model.tar.gz")}

    assert programs["rasa-1"].env["CRM_ACTION_WEBHOOK_URL"] == "http://127.0.0.1:6055/webhook"
    assert programs["rasa-2"].env["CRM_ACTION_WEBHOOK_URL"] == "http://127.0.0.1:6056/webhook"


def test_the_api_learns_every_replica_and_shares_its_state_in_redis(scale_env: None) -> None:
    env = process_environment(Stack.from_settings(scale=True))

    settings = ApiSettings(rasa_url=env["CRM_RASA_URL"], action_server_url=env["CRM_ACTION_SERVER_URL"])
    assert settings.rasa_servers == ("http://127.0.0.1:6005", "http://127.0.0.1:6006")
    assert settings.action_servers == ("http://127.0.0.1:6055", "http://127.0.0.1:6056")
    assert env["CRM_REDIS_URL"] == LOCK_STORE
    assert env["TICKET_LOCK_LIFETIME"] == str(LOCK_LIFETIME_S)


def test_replicas_and_workers_follow_the_settings(scale_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_RASA_REPLICAS", "3")
    monkeypatch.setenv("CRM_API_WORKERS", "4")

    stack = Stack.from_settings(scale=True)

    assert stack.rasa_urls == [f"http://127.0.0.1:{port}" for port in (6005, 6006, 6007)]
    assert _option(process_commands(stack, Path("m.tar.gz"))["api"], "--workers") == "4"


def test_rasa_lock_store_splits_the_redis_url_as_rasa_wants_it() -> None:
    assert rasa_lock_store(LOCK_STORE) == {
        "type": "redis",
        "url": "cache.internal",
        "port": 6380,
        "db": 3,
        "key_prefix": "xiaozhushou",
        "use_ssl": False,
        "password": "s3cret",
    }
    assert rasa_lock_store("rediss://127.0.0.1")["use_ssl"] is True
    assert rasa_lock_store("redis://127.0.0.1")["db"] == 1


def test_scale_endpoints_keep_rasa_s_variables_and_hide_the_password(scale_env: None, tmp_path: Path) -> None:
    path = write_scale_endpoints(Stack.from_settings(scale=True), tmp_path)

    text = path.read_text(encoding="utf-8")
    # Rasa expands ${VAR} only in plain (unquoted) scalars.
    assert "url: ${CRM_ACTION_WEBHOOK_URL}" in text
    assert "url: ${CRM_TRACKER_URL}" in text
    assert yaml.safe_load(text)["lock_store"]["password"] == "s3cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]
