"""`crmbot import DIR` as a person runs it: exit codes, `file:line: reason` lines, idempotence."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_store.db import create_engine_for, make_session_factory
from crm_store.models import Customer, Order, OrderItem, Ticket
from crmbot.cli import main


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    return url


def _counts(url: str) -> dict[str, int]:
    engine = create_engine_for(url)
    with make_session_factory(engine)() as session:
        counts = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Customer, Order, OrderItem, Ticket)
        }
    engine.dispose()
    return counts


def _break(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], f"{path.name}:{line} changed"
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_importing_the_demo_twice_gives_the_same_counts(
    database_url: str, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(demo_dir), "--no-progress"]) == 0
    first = _counts(database_url)
    assert main(["import", str(demo_dir), "--no-progress"]) == 0

    assert (
        _counts(database_url) == first == {"customers": 60, "orders": 254, "order_items": 504, "tickets": 16}
    )
    assert capsys.readouterr().err == ""


def test_three_broken_rows_are_reported_by_file_and_line_and_the_rest_loads(
    database_url: str, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "broken"
    shutil.copytree(demo_dir, data)
    for path in data.iterdir():
        path.chmod(0o644)
    _break(data / "tickets.csv", 3, "2026-11-02", "2026-13-02")
    _break(data / "order_items.csv", 4, ",P006,2,", ",P999,2,")
    _break(data / "interactions.csv", 2, ",拜访,", ",飞鸽传书,")

    exit_code = main(["import", str(data), "--no-progress"])

    assert exit_code == 2
    reported = [line.split(": ", 1)[0] for line in capsys.readouterr().err.splitlines()]
    assert reported == ["order_items.csv:4", "tickets.csv:3", "interactions.csv:2"]
    assert _counts(database_url) == {"customers": 60, "orders": 254, "order_items": 503, "tickets": 15}


def test_missing_directory_is_a_clear_error(database_url: str, tmp_path: Path) -> None:
    assert main(["import", str(tmp_path / "nope")]) == 1
