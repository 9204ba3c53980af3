"""Supervise the programs of a JSON file the way `crmbot up` supervises the stack (crmbot.stack.run_stack).

    python -m tests.cli.supervisor_driver SPEC.json

SPEC: {"programs": [{"name", "command", "env"?}], "backoff": {Backoff's fields}, "stop_timeout_s"?}.
tests/cli/test_supervisor.py runs it as a real process, so that SIGINT, SIGTERM and the exit code
are those a person at the terminal would see.
"""

import json
import sys
from pathlib import Path

from crmbot.supervisor import Backoff, Program, Supervisor


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    programs = [
        Program(p["name"], p["command"], env=p.get("env"), cwd=p.get("cwd")) for p in spec["programs"]
    ]
    supervisor = Supervisor(
        programs, backoff=Backoff(**spec["backoff"]), stop_timeout_s=spec.get("stop_timeout_s", 10.0)
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
