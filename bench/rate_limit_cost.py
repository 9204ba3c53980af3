"""CPU a chat turn spends in the in-memory rate limit, by how many conversations it counts.

    .venv-app/bin/python -m bench.rate_limit_cost [--turns 200]

For 1, 100, 500 and 5,000 conversations seen within the budget's window (`60/minute`), counts
`--turns` turns at 40 a second (the embedded stack's pace at 20 conversations) against each of
two in-memory counters, and prints and writes bench/results/rate_limit_cost.md:

- `limits`' asyncio memory storage, which the API used until 2026-12-07: after a hit it clears
  expired entries by sending every key, one by one, to a worker thread;
- `api.rate_limit.InMemoryLimiter`, `limits`' synchronous memory storage, which clears them in
  place.

CPU milliseconds of this process per turn, its threads included; the event loop's own waking
between turns is in every row (the floor, with one conversation). Issue 20, item 3.
"""

import argparse
import asyncio
import sys
import time

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from api.rate_limit import InMemoryLimiter
from bench.results_table import report

BUDGET = parse("60/minute")
TURN_INTERVAL_S = 0.025


async def cpu_ms_per_turn(
    limiter: MovingWindowRateLimiter | InMemoryLimiter, conversations: int, turns: int
) -> float:
    for number in range(conversations):
        await limiter.hit(BUDGET, "chat", f"sender-{number}")
    await asyncio.sleep(0.2)
    started = time.process_time()
    for turn in range(turns):
        await limiter.hit(BUDGET, "chat", f"sender-{turn % conversations}")
        await asyncio.sleep(TURN_INTERVAL_S)
    return 1000 * (time.process_time() - started) / turns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=200, help="turns counted per row and counter")
    args = parser.parse_args(argv)
    rows = []
    for conversations in (1, 100, 500, 5000):
        print(f"{conversations} conversations…", file=sys.stderr, flush=True)
        before = asyncio.run(
            cpu_ms_per_turn(MovingWindowRateLimiter(MemoryStorage()), conversations, args.turns)
        )
        after = asyncio.run(cpu_ms_per_turn(InMemoryLimiter(), conversations, args.turns))
        rows.append([conversations, f"{before:.2f}", f"{after:.2f}"])
    path = report(
        "rate_limit_cost",
        "CPU ms a chat turn spends in the in-memory rate limit, by conversations in the window",
        ("conversations in the window", "limits' asyncio memory storage", "InMemoryLimiter (synchronous)"),
        rows,
        note=f"`.venv-app/bin/python -m bench.rate_limit_cost --turns {args.turns}`: {args.turns} turns at "
        f"{1 / TURN_INTERVAL_S:.0f} a second per row and counter, budget {BUDGET}; this process's CPU "
        "(all its threads) per turn, the event loop's own sleeping included.",
    )
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
