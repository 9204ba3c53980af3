"""The stack's supervisor (crmbot/supervisor.py) over real processes: a process killed with SIGKILL
comes back after its wait, one that keeps dying is retried ever more slowly while the others keep
serving, and Ctrl-C or SIGTERM leaves nothing running or listening."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api.routes.chat import UNAVAILABLE_REPLY
from crm_store.settings import PROJECT_ROOT, child_environment

# A server like the action server under Sanic: the leader forks a worker that holds the port.
FORKING_SERVER = r"""
import os, socket, sys, time
port = int(sys.argv[1])
worker = os.fork()
if worker == 0:
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    os.write(1, f"worker {os.getpid()} listening\n".encode())
    while True:
        listener.accept()[0].close()
os.waitpid(worker, 0)
"""

# Dies after a given time (0: at once) with exit code 3.
DYING = "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(3)"

# Refuses to stop on SIGTERM.
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
while True:
    time.sleep(1)
"""

STARTED = re.compile(r"system +\| (\S+) started \(pid=(\d+)\)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Supervised:
    """The supervisor as a real process, its output lines kept with the moment each arrived."""

    process: subprocess.Popen[str]
    lines: list[tuple[float, str]] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(
        self, pattern: str, *, count: int = 1, timeout_s: float = 20.0
    ) -> list[tuple[float, re.Match[str]]]:
        """The first `count` lines matching `pattern`, waiting up to `timeout_s` for them."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [(t, m) for t, line in list(self.lines) if (m := re.search(pattern, line))]
            if len(found) >= count:
                return found[:count]
            if time.monotonic() > deadline:
                pytest.fail(f"no {count} lines matching {pattern!r} in:\n" + self.output())
            time.sleep(0.05)

    def pids(self, name: str) -> list[int]:
        return [int(m[2]) for _, line in list(self.lines) if (m := STARTED.search(line)) and m[1] == name]

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)


Supervise = Callable[..., Supervised]
"""Start the supervisor over programs (name, command, env, cwd) with a backoff; see the fixture."""


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Supervise]:
    started: list[Supervised] = []

    def start(
        programs: list[dict[str, object]],
        *,
        first_s: float,
        max_s: float,
        reset_after_s: float = 60.0,
        **spec: float,
    ) -> Supervised:
        spec_file = tmp_path / f"spec-{len(started)}.json"
        backoff = {"first_s": first_s, "max_s": max_s, "reset_after_s": reset_after_s}
        spec_file.write_text(json.dumps({"programs": programs, "backoff": backoff, **spec}))
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.cli.supervisor_driver", str(spec_file)],
            cwd=PROJECT_ROOT,
            env=child_environment({"PYTHONUNBUFFERED": "1"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        supervised = Supervised(process)
        threading.Thread(target=supervised.read, daemon=True).start()
        started.append(supervised)
        return supervised

    yield start
    # A test that failed half-way: the supervisor stops what it still runs, as at Ctrl-C.
    for supervised in started:
        if supervised.process.poll() is None:
            supervised.process.terminate()
            try:
                supervised.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                supervised.process.kill()
                supervised.process.wait()


def _python(name: str, script: str, *args: object) -> dict[str, object]:
    return {"name": name, "command": [sys.executable, "-c", script, *map(str, args)]}


def test_a_process_killed_with_sigkill_is_restarted_and_its_forked_worker_does_not_keep_the_port(
    supervise: Supervise,
) -> None:
    port = _free_port()
    stack = supervise([_python("server", FORKING_SERVER, port)], first_s=0.5, max_s=4)

    [(_, first_worker)] = stack.wait_for(r"server +\| worker (\d+) listening")
    leader = stack.pids("server")[0]
    killed_at = time.monotonic()
    os.kill(leader, signal.SIGKILL)

    [(logged_at, stopped)] = stack.wait_for(
        r"system +\| server stopped \((.+?)\) after \d+ s; restarting in (\S+) s"
    )
    assert stopped.groups() == ("signal SIGKILL", "0.5")
    # The worker the killed leader forked is gone with it, and the next one serves the same port.
    assert not _alive(int(first_worker[1]))
    [_, (back_at, second_worker)] = stack.wait_for(r"server +\| worker (\d+) listening", count=2)
    assert back_at - logged_at >= 0.4
    assert back_at - killed_at < 10
    assert _listening(port)
    assert len(stack.pids("server")) == 2

    # Ctrl-C: everything stops, nothing keeps listening, and the exit code is a shell's for SIGINT.
    assert stack.stop(signal.SIGINT) == 130
    assert "SIGINT received" in stack.output()
    assert not _alive(int(second_worker[1])) and not any(_alive(pid) for pid in stack.pids("server"))
    assert not _listening(port)


def test_a_process_that_keeps_dying_is_retried_ever_more_slowly_while_the_others_keep_serving(
    supervise: Supervise,
) -> None:
    port = _free_port()
    stack = supervise(
        [_python("server", FORKING_SERVER, port), _python("dying", DYING, 0)], first_s=0.2, max_s=0.8
    )

    restarts = stack.wait_for(
        r"system +\| dying stopped \(exit code 3\) after \d+ s; "
        r"restarting in (\S+) s \(failure (\d+) in a row\)",
        count=5,
    )
    assert [(m[1], m[2]) for _, m in restarts] == [
        ("0.2", "1"),
        ("0.4", "2"),
        ("0.8", "3"),
        ("0.8", "4"),
        ("0.8", "5"),
    ]
    # Loosely timed: each stop comes at least the announced wait after the one before.
    gaps = [later - earlier for (earlier, _), (later, _) in zip(restarts, restarts[1:], strict=False)]
    for gap, wait_s in zip(gaps, (0.2, 0.4, 0.8, 0.8), strict=True):
        assert gap >= wait_s * 0.8, gaps
    # The other process was started once and kept serving all along.
    assert len(stack.pids("server")) == 1 and _listening(port)

    assert stack.stop(signal.SIGTERM) == 143
    assert not any(_alive(pid) for pid in stack.pids("server") + stack.pids("dying"))
    assert not _listening(port)


def test_a_process_that_stayed_up_a_while_is_restarted_after_the_first_wait_again(
    supervise: Supervise,
) -> None:
    stack = supervise([_python("dying", DYING, 0.6)], first_s=0.2, max_s=5, reset_after_s=0.5)

    restarts = stack.wait_for(r"dying stopped \(exit code 3\) after \d+ s; restarting in (\S+) s", count=3)

    assert [m[1] for _, m in restarts] == ["0.2", "0.2", "0.2"]
    assert stack.stop(signal.SIGTERM) == 143


def test_a_process_that_ignores_sigterm_is_killed_after_the_stop_timeout(supervise: Supervise) -> None:
    stack = supervise([_python("stubborn", STUBBORN)], first_s=1, max_s=1, stop_timeout_s=0.5)
    stack.wait_for(r"stubborn +\| ignoring SIGTERM")

    started = time.monotonic()
    assert stack.stop(signal.SIGINT) == 130

    assert time.monotonic() - started < 10
    assert "stubborn still running after 0.5 s: SIGKILL" in stack.output()
    assert "stubborn stopped (signal SIGKILL)" in stack.output()
    assert not _alive(stack.pids("stubborn")[0])


# Rasa's stand-in for the whole-stack test (starting Rasa takes minutes; the e2e suite does it once):
# `rasa run … --port N` answering /status with a model and the REST webhook with one message.
FAKE_RASA = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Rasa(BaseHTTPRequestHandler):
    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer({"model_file": "stand-in.tar.gz"} if self.path.startswith("/status") else {})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer([{"recipient_id": "c", "text": "您好，我是小助手～"}])

    def log_message(self, *args):
        pass

port = int(sys.argv[sys.argv.index("--port") + 1])
ThreadingHTTPServer(("127.0.0.1", port), Rasa).serve_forever()
"""


def test_crmbot_up_brings_back_rasa_and_the_action_server_killed_with_sigkill(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """run_stack with the real action server, API and care, and a stand-in for Rasa on loopback."""
    bot_venv = tmp_path / "venv"
    (bot_venv / "bin").mkdir(parents=True)
    # The stack serves a model with the bot environment's python (`python -m bot.rasa_server run …`).
    (bot_venv / "bin" / "python").write_text(f"#!{sys.executable}\n{FAKE_RASA}")
    (bot_venv / "bin" / "python").chmod(0o755)
    shutil.copyfile(sqlite_template, tmp_path / "crm.db")
    ports = {"api": _free_port(), "rasa": _free_port(), "actions": _free_port()}
    log_file = tmp_path / "stack.log"
    api = f"http://127.0.0.1:{ports['api']}"
    env = child_environment(
        {
            "CRM_BOT_VENV": str(bot_venv),
            "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
            "CRM_TRACKER_URL": f"sqlite:///{tmp_path / 'tracker.db'}",
            "CRM_API_HOST": "127.0.0.1",
            "CRM_API_PORT": str(ports["api"]),
            "CRM_RASA_PORT": str(ports["rasa"]),
            "CRM_ACTION_PORT": str(ports["actions"]),
            "CRM_HEALTH_STARTUP_GRACE_S": "0",
            # A first wait long enough to look at the stack while both are down, on a busy machine.
            "CRM_RESTART_WAIT_S": "4",
            "KNOWLEDGE_DIR": str(tmp_path / "knowledge"),
            "CRM_CARE_SPOOL_DIR": str(tmp_path / "spool"),
        }
    )
    code = (
        "import sys; from pathlib import Path; from crmbot.stack import Stack, run_stack; "
        f"sys.exit(run_stack(Stack.from_settings(), Path({str(tmp_path / 'model.tar.gz')!r})))"
    )
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:

        def wait_healthy(timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{api}/health", timeout=5).status_code == 200:
                        return
                time.sleep(0.3)
            pytest.fail("the stack was not healthy:\n" + log_file.read_text(errors="replace")[-3000:])

        def chat() -> httpx.Response:
            return httpx.post(f"{api}/api/chat", json={"sender": "c-restart", "message": "你好"}, timeout=10)

        def pids(name: str) -> list[int]:
            found = STARTED.findall(log_file.read_text(errors="replace"))
            return [int(pid) for process_name, pid in found if process_name == name]

        wait_healthy(120)
        assert chat().json() == [{"recipient_id": "c", "text": "您好，我是小助手～"}]

        os.kill(pids("rasa")[0], signal.SIGKILL)
        os.kill(pids("actions")[0], signal.SIGKILL)
        # Once both are stopped (their groups swept), within the restart's wait: the customer gets
        # the apology and /health names the parts that are down.
        stopped = r"(rasa|actions) stopped \(signal SIGKILL\) after \d+ s; restarting in 4 s"
        deadline = time.monotonic() + 10
        while len(re.findall(stopped, log_file.read_text())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        down = chat()
        health = httpx.get(f"{api}/health", timeout=5)
        assert (down.status_code, down.json()) == (503, [{"text": UNAVAILABLE_REPLY}])
        assert health.status_code == 503
        assert {part: c["ok"] for part, c in health.json()["components"].items()} == {
            "database": True,
            "rasa": False,
            "action_server": False,
        }
        wait_healthy(120)
        assert chat().status_code == 200
        assert len(pids("actions")) == 2
        assert sorted(re.findall(stopped, log_file.read_text())) == ["actions", "rasa"]
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=60)
    assert returncode == 130
    assert not [name for name, port in ports.items() if _listening(port)]
