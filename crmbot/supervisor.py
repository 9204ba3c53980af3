"""Keep the stack's processes running: restart one that dies, stop them all on Ctrl-C or SIGTERM.

honcho's Manager runs a Procfile as one group and stops every process when one exits; a shop's
assistant should rather lose one part for a few seconds than all of them until someone notices. So
each process is restarted when it exits, after a wait that doubles with each quick failure
(`Backoff`: 1 s, 2 s, 4 s … up to a minute) and falls back to the first wait once the process has
stayed up for a while; a process that keeps failing is still tried again, slowly, while the others
go on serving.

Each process is started in a session of its own, so that it and whatever it forks (Sanic's worker,
uvicorn's reloader) form one process group: a stop or a restart signals the whole group, and a
group whose leader was killed with SIGKILL is swept before the next start, so no orphan keeps the
port. Output lines keep honcho's look (`HH:MM:SS name | line`, coloured on a terminal); the
supervisor's own lines carry the name `system`.
"""

import contextlib
import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from honcho.colour import get_colours
from honcho.printer import Message, Printer

SYSTEM_NAME = "system"

# The exit code of the supervisor after a stop signal, as a shell reports a process it killed.
_STOP_RETURNCODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a process that exited (see the module docstring)."""

    first_s: float = 1.0
    max_s: float = 60.0
    reset_after_s: float = 60.0

    def wait_s(self, quick_failures: int) -> float:
        """The wait before the restart that follows `quick_failures` failures in a row (≥ 1)."""
        return float(min(self.first_s * 2 ** max(quick_failures - 1, 0), self.max_s))


@dataclass(frozen=True)
class Program:
    """One process to keep running: its name in the log, its command (no shell) and environment."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None


@dataclass
class _Child:
    program: Program
    colour: str | None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_failures: int = 0
    restart_at: float = 0.0
    readers: list[threading.Thread] = field(default_factory=list)


def describe_exit(returncode: int) -> str:
    """`exit code 1` or `signal SIGKILL`, from a Popen return code."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class Supervisor:
    """Run `programs` until `stop` (or SIGINT/SIGTERM with `run`), restarting any that exits."""

    def __init__(
        self,
        programs: Sequence[Program],
        *,
        backoff: Backoff | None = None,
        stop_timeout_s: float = 10.0,
        output: IO[str] | None = None,
    ) -> None:
        names = [program.name for program in programs]
        if len(set(names)) != len(names):
            raise RuntimeError(f"process names must be unique: {names}")
        self.backoff = backoff or Backoff()
        self.stop_timeout_s = stop_timeout_s
        self._printer = Printer(output or sys.stdout, width=max([len(SYSTEM_NAME), *map(len, names)]))
        self._print_lock = threading.Lock()
        colours = get_colours()
        self._children = [_Child(program, next(colours)) for program in programs]
        # A plain flag, not a threading.Event: setting an Event from a signal handler can deadlock
        # on its lock when the signal lands while the main thread is inside Event.wait.
        self._stop_requested = False
        self._stop_signal: signal.Signals | None = None
        self.returncode = 0

    def run(self) -> int:
        """Supervise until SIGINT or SIGTERM (from the main thread); return 130 or 143 like honcho."""

        def stop_on_signal(signum: int, _frame: Any) -> None:
            # Nothing printed here: the main thread may be inside a write, holding the print lock.
            self._stop_signal = signal.Signals(signum)
            self.returncode = _STOP_RETURNCODES.get(self._stop_signal, 128 + signum)
            self.stop()

        previous = {signum: signal.signal(signum, stop_on_signal) for signum in _STOP_RETURNCODES}
        try:
            self.loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.returncode

    def stop(self) -> None:
        """Ask `loop` to stop every process and return; safe from a signal handler or another thread."""
        self._stop_requested = True

    def loop(self, poll_s: float = 0.1) -> None:
        """Start every process, restart those that exit, and stop them all once `stop` was called."""
        try:
            while not self._stop_requested:
                now = time.monotonic()
                for child in self._children:
                    if child.process is None:
                        if now >= child.restart_at:
                            self._start(child)
                    elif _has_exited(child.process):
                        self._schedule_restart(child)
                time.sleep(poll_s)
        finally:
            self._stop_all()

    def pids(self) -> dict[str, int]:
        """The process id of each running process, by name."""
        return {c.program.name: c.process.pid for c in self._children if c.process is not None}

    def say(self, text: str) -> None:
        """One line of the supervisor's own, prefixed `system`."""
        self._write(SYSTEM_NAME, text, None)

    def _write(self, name: str, data: bytes | str, colour: str | None) -> None:
        message = Message(type="line", data=data, time=datetime.datetime.now(), name=name, colour=colour)
        with self._print_lock:
            self._printer.write(message)

    def _start(self, child: _Child) -> None:
        program = child.program
        child.started_at = time.monotonic()
        try:
            process = subprocess.Popen(
                list(program.command),
                env=dict(program.env) if program.env is not None else None,
                cwd=program.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Its own process group: a signal reaches what it forks, and Ctrl-C in the terminal
                # reaches only the supervisor, which then stops the processes in order.
                start_new_session=True,
            )
        except OSError as exc:
            self.say(f"{program.name} could not start: {exc}")
            self._count_failure(child, time.monotonic())
            return
        child.process = process
        reader = threading.Thread(
            target=self._relay, args=(child, process), name=f"relay-{program.name}", daemon=True
        )
        reader.start()
        child.readers = [*filter(threading.Thread.is_alive, child.readers), reader]
        self.say(f"{program.name} started (pid={process.pid})")

    def _relay(self, child: _Child, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            self._write(child.program.name, line, child.colour)
        process.stdout.close()

    def _schedule_restart(self, child: _Child) -> None:
        assert child.process is not None
        # The leader is gone but not yet reaped, so its group id cannot be reused: sweep what it
        # forked (a Sanic worker would keep the port), then reap it.
        _signal_group(child.process.pid, signal.SIGKILL)
        _wait_groups_gone([child.process.pid])
        returncode = child.process.wait()
        child.process = None
        now = time.monotonic()
        uptime_s = now - child.started_at
        wait_s = self._count_failure(child, now)
        self.say(
            f"{child.program.name} stopped ({describe_exit(returncode)}) after {uptime_s:.0f} s; "
            f"restarting in {wait_s:g} s (failure {child.quick_failures} in a row)"
        )

    def _count_failure(self, child: _Child, now: float) -> float:
        if now - child.started_at >= self.backoff.reset_after_s:
            child.quick_failures = 0
        child.quick_failures += 1
        wait_s = self.backoff.wait_s(child.quick_failures)
        child.restart_at = now + wait_s
        return wait_s

    def _stop_all(self) -> None:
        if self._stop_signal is not None:
            self.say(f"{self._stop_signal.name} received")
        running = [c for c in self._children if c.process is not None]
        for child in running:
            assert child.process is not None
            self.say(f"sending SIGTERM to {child.program.name} (pid {child.process.pid})")
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while time.monotonic() < deadline and not all(_has_exited(c.process) for c in running if c.process):
            time.sleep(0.05)
        for child in running:
            assert child.process is not None
            if not _has_exited(child.process):
                self.say(f"{child.program.name} still running after {self.stop_timeout_s:g} s: SIGKILL")
            # SIGKILL the group whether the leader stopped or not: a forked worker may outlive it.
            _signal_group(child.process.pid, signal.SIGKILL)
        # Leaders are reaped last: until then no new group can take their ids.
        _wait_groups_gone([c.process.pid for c in running if c.process is not None])
        for child in running:
            assert child.process is not None
            returncode = child.process.wait()
            self.say(f"{child.program.name} stopped ({describe_exit(returncode)})")
        for child in self._children:
            for reader in child.readers:
                reader.join(timeout=1.0)
            child.process = None


def _has_exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it (its pid stays reserved until `wait`)."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_groups_gone(pgids: Sequence[int], timeout_s: float = 2.0) -> None:
    """Wait (briefly) until no live process is left in the groups, so that their ports are free.

    SIGKILL is delivered asynchronously. Zombies do not count: they hold no port, and a forked
    worker whose leader was reaped is init's to reap, in its own time (over a second here).
    """
    deadline = time.monotonic() + timeout_s
    while any(map(_has_live_members, pgids)) and time.monotonic() < deadline:
        time.sleep(0.02)


def _has_live_members(pgid: int) -> bool:
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: zombies count too
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left in the group
        os.killpg(pgid, signum)
