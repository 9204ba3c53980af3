"""Chat under load: simulated Chinese customers at rising concurrency, `/api/chat` and bare Rasa side by side.

    .venv-app/bin/python -m bench.chat_load [--levels 1,5,10,20] [--duration-s 60] [--max-turns N]
        [--replicas 1,2 | --no-scale] [--postgres-url URL] [--lock-store-url URL] [--kill-replica-at S]
        [--api-url URL --rasa-url URL [--tracker-url URL]] [--floor]

What it does, in order:

1. Starts its own stack as the end-to-end tests do (tests/e2e/conftest.py): `crmbot up --no-tuning`
   on free loopback ports, a scratch SQLite store loaded with the demo company and Rasa's tracker
   store beside it, `CRM_TODAY=2026-11-23`, and the chat rate limit raised: a simulated customer
   has no think time, and `CRM_CHAT_RATE_LIMIT`'s 60 turns a minute per conversation would refuse
   it. The model is the trained demo model (`crmbot.preparation.prepare_demo_model`, trained first
   only if var/models has none for these inputs: 13 minutes). `--api-url` and `--rasa-url` use a
   running stack instead; its rate limit must be raised, the complaints' tickets stay in its
   store, and the tracker check needs `--tracker-url`.
   Then, unless `--no-scale`, one scale-profile stack per count of `--replicas` (issue 20, item 1:
   `crmbot up --scale` with that many Rasa replicas and two API workers), each on a scratch
   PostgreSQL database of its own on the server of `--postgres-url` (dropped at the end) and
   Rasa's lock store on `--lock-store-url`. With `--floor`, also bench/floor_forwarder.py in
   front of the embedded stack's Rasa (target `floor`): a Python HTTP hop that does nothing but
   forward, the least any gateway costs. All stacks stay up for the whole run; the ones not being
   measured idle.
2. Warms each path up with one conversation of each kind (not counted).
3. For each level of concurrency and each target in turn (the project through `POST /api/chat`,
   then the same Rasa, model and action server through Rasa's REST channel
   `/webhooks/rest/webhook`, with the metadata the gateway stamps for a web customer, then each
   scale stack through its `/api/chat`: targets `scale-1`, `scale-2` …), runs that
   many simulated customers, locust users on loopback with no think time, for `--duration-s`
   seconds or `--max-turns` turns, whichever comes first. A user is one conversation at a time,
   with its own sender id, each turn sent when the previous one was answered: order status by
   number, "我的订单" with verification (phone and order number) and the list, FAQ questions, a
   complaint through its form to the ticket and the rating; then the next conversation, under a
   new sender id. A user stops between turns, never during one. A progress line every 5 s. A turn
   answered with the gateway's polite 503 ("稍后再试") is sent again a second later, as a person
   would, at most three times.
   With `--kill-replica-at S`, S seconds into the last level of the scale stack with the most
   replicas, its `rasa-1` gets SIGKILL (the supervisor restarts it; the API sends its
   conversations to the other replica meanwhile).
4. Counts each sender's user events in the tracker store and compares them with the turns sent:
   fewer than the turns answered is a lost turn (a turn refused with the 503 may or may not have
   been saved), more than the turns sent a duplicated one.
5. Prints the table, writes bench/results/chat_load.md, and stops the stack (Ctrl-C, as a person
   would: `crmbot up` stops its processes; the ports are checked closed).

Per level and target: turns/s (answered turns over the level's wall time), p50/p95/p99 of a turn's
latency (request sent to reply read), errors (a status other than 200, no reply, or the service's
apology: the gateway's unavailable or internal-error text, the rate limit's, Rasa's fallback
`utter_default`), off script (a reply without what the step expects: the order number, "工单号"…,
so the conversation went another way), and the ratios to bare Rasa at the same level (targets of
issue 20: throughput ≥ 0.9×, p95 ≤ 1.2×).

The scale stacks run on the same two cores as the embedded one: a second replica there adds no
core, so their rows say what the replicas, the lock store and PostgreSQL cost, not what a second
machine would give.

`--levels 1 --duration-s 5` checks the script in a few minutes, most of it the stacks starting.
"""

import argparse
import csv
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any, ClassVar, Final

import httpx
import yaml
from locust import FastHttpUser, constant, task
from locust.env import Environment
from locust.exception import StopUser
from sqlalchemy import func, make_url, select

from api.gateway import RASA_WEBHOOK_PATH, UNAVAILABLE_REPLY
from api.rate_limit import CHAT_LIMITED_REPLY
from api.texts import wording
from bench.cpu_load import _machine_busy_seconds
from bench.results_table import report
from crm_store.analytics.service_metrics import TRACKER_EVENTS, tracker_engine
from crm_store.db import run_outside_transaction
from crm_store.settings import child_environment, get_store_settings
from crmbot import paths
from crmbot.preparation import prepare_demo_model

REFERENCE_DAY: Final = "2026-11-23"
CHAT_PATH: Final = "/api/chat"
# High enough that no simulated conversation meets it: the benchmark measures turns, not refusals.
RAISED_RATE_LIMIT: Final = "1000000 per minute"
STARTUP_TIMEOUT_S: Final = 900.0
# A level stops sending at its deadline; the turns still under way get this long to be answered.
DRAIN_TIMEOUT_S: Final = 90.0
PROGRESS_EVERY_S: Final = 5.0
TURN_TIMEOUT_S: Final = 60.0
# A customer told "稍后再试" sends the same message again this long after, at most this many times.
RESEND_AFTER_S: Final = 1.0
RESEND_LIMIT: Final = 3
SENDER_PREFIX: Final = "load"
MIN_THROUGHPUT_RATIO: Final = 0.9
MAX_P95_RATIO: Final = 1.2
TARGET_RATIOS: Final = f"throughput ≥ {MIN_THROUGHPUT_RATIO} × bare Rasa, p95 ≤ {MAX_P95_RATIO} × bare Rasa"
# What api.gateway stamps on a web customer's turn (`_metadata`), so that bare Rasa does the same work.
WEB_CUSTOMER_METADATA: Final = {"channel": "web", "role": "customer", "principal_id": None}
# The bot's own apologies (bot/domain/): not understood, out of scope, the store or the FAQ index failed.
APOLOGY_RESPONSES: Final = frozenset(
    {
        "utter_default",
        "utter_out_of_scope",
        "utter_service_unavailable",
        "utter_faq_none",
        "utter_faq_unavailable",
        "utter_handoff_failed",
    }
)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- what customers say ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One customer turn and a piece of text its reply must hold when the conversation is on script."""

    text: str
    expect: str | None = None


@dataclass(frozen=True)
class Conversation:
    kind: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class DemoCustomer:
    phone: str
    orders: tuple[str, ...]

    @property
    def masked_phone(self) -> str:
        """As the bot shows a verified customer's phone (182****4104)."""
        return f"{self.phone[:3]}****{self.phone[-4:]}"


# Customers' words for the FAQs, each with a piece of the demo FAQ's answer (demo/faqs.csv).
FAQ_QUESTIONS: Final = (
    ("请问运费是怎么算的？", "99元包邮"),
    ("退货要怎么申请啊", "无理由退货"),
    ("下单以后多久能发货？", "24小时内发货"),
    ("退款一般几天能到账", "工作日"),
    ("你们用的是什么快递", "顺丰"),
    ("怎么开发票？", "发票"),
    ("商品保修多长时间", "一年免费保修"),
    ("优惠券怎么用", "每笔订单限用一张"),
)
ORDER_QUESTIONS: Final = ("帮我查一下订单{order}到哪了", "我的订单{order}怎么还没到", "订单{order}什么状态")
# Ordinary complaints only: a serious one (a hazard) hands the conversation to a person, whose
# turns then go to staff and not to Rasa.
COMPLAINTS: Final = (
    "买的智能手环用了两天就坏了，屏幕不亮",
    "收到的无线蓝牙耳机左耳没有声音",
    "快递太慢了，等了一个多星期才到",
)


def demo_customers() -> list[DemoCustomer]:
    """The demo company's customers that have a phone and at least one order."""
    demo = paths.demo_fixture_dir()
    orders: dict[str, list[str]] = {}
    with (demo / "orders.csv").open(encoding="utf-8") as rows:
        for row in csv.DictReader(rows):
            orders.setdefault(row["customer_id"], []).append(row["order_id"])
    with (demo / "customers.csv").open(encoding="utf-8") as rows:
        return [
            DemoCustomer(row["phone"], tuple(orders[row["customer_id"]]))
            for row in csv.DictReader(rows)
            if row["phone"] and row["customer_id"] in orders
        ]


def order_status(rng: random.Random, customers: Sequence[DemoCustomer]) -> Conversation:
    order = rng.choice(rng.choice(customers).orders)
    return Conversation(
        "order status",
        (
            Step("你好"),
            Step(rng.choice(ORDER_QUESTIONS).format(order=order), order),
            Step("好的，谢谢"),
        ),
    )


def my_orders(rng: random.Random, customers: Sequence[DemoCustomer]) -> Conversation:
    customer = rng.choice(customers)
    return Conversation(
        "my orders",
        (
            Step("我的订单", "手机号"),
            Step(customer.phone, "订单号"),
            Step(rng.choice(customer.orders), customer.masked_phone),
            Step("第一个", "SO"),
        ),
    )


def faq(rng: random.Random, _customers: Sequence[DemoCustomer]) -> Conversation:
    return Conversation("faq", tuple(Step(q, a) for q, a in rng.sample(FAQ_QUESTIONS, 3)))


def complaint(rng: random.Random, customers: Sequence[DemoCustomer]) -> Conversation:
    return Conversation(
        "complaint",
        (
            Step("我要投诉", "描述"),
            Step(rng.choice(COMPLAINTS), "订单"),
            Step("没有"),
            Step("对", "联系电话"),
            Step(rng.choice(customers).phone, "工单号"),
            Step('/rate{"rating":"4"}', "4 分"),
        ),
    )


# Weights of the mix: mostly orders and FAQs, as in a shop's chat.
KINDS: Final[tuple[tuple[Callable[[random.Random, Sequence[DemoCustomer]], Conversation], int], ...]] = (
    (order_status, 3),
    (my_orders, 2),
    (faq, 3),
    (complaint, 2),
)


def next_conversation(rng: random.Random, customers: Sequence[DemoCustomer]) -> Conversation:
    (make,) = rng.choices([kind for kind, _ in KINDS], weights=[weight for _, weight in KINDS])
    return make(rng, customers)


# -- where turns go ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One way into the bot: the project's API or bare Rasa."""

    name: str
    base_url: str
    path: str
    tracker_url: str | None

    def payload(self, sender: str, message: str) -> dict[str, Any]:
        if self.path == CHAT_PATH:
            return {"sender": sender, "message": message}
        return {"sender": sender, "message": message, "metadata": WEB_CUSTOMER_METADATA}


def apologies() -> tuple[str, ...]:
    """The service's own apologies: a turn answered with one of them was not served."""
    bot = [
        str(variant["text"])
        for domain in sorted((paths.BOT_DIR / "domain").glob("*.yml"))
        for name, variants in (
            yaml.safe_load(domain.read_text(encoding="utf-8")).get("responses") or {}
        ).items()
        if name in APOLOGY_RESPONSES
        for variant in variants
    ]
    rate_limited = CHAT_LIMITED_REPLY.split("{", 1)[0]
    return (UNAVAILABLE_REPLY, wording("gateway.internal_error"), rate_limited, *bot)


@dataclass
class Measure:
    """What one level of one target did."""

    target: Target
    level: int
    started: float = 0.0
    ended: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    off_script: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    # Turns answered with the polite 503 (sent again by the customer, as a person would).
    refused: Counter[str] = field(default_factory=Counter)
    conversations: int = 0
    fault: str = ""
    others_cpu: str = "?"
    lost: int | None = None
    duplicated: int | None = None

    @property
    def turns(self) -> int:
        return len(self.latencies)

    @property
    def seconds(self) -> float:
        return max((self.ended or time.monotonic()) - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.turns / self.seconds

    def percentile(self, share: float) -> float | None:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else None
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(share * 100) - 1]

    @property
    def sender_prefix(self) -> str:
        return f"{self.target.name}-{self.level}-"


class Customer(FastHttpUser):
    """A simulated customer: conversations one after the other, each turn waiting for its reply."""

    abstract = True
    wait_time = constant(0)
    network_timeout = TURN_TIMEOUT_S
    connection_timeout = TURN_TIMEOUT_S

    measure: ClassVar[Measure]
    run_id: ClassVar[str]
    deadline: ClassVar[float]
    max_turns: ClassVar[int]
    customers: ClassVar[Sequence[DemoCustomer]]
    apologies: ClassVar[tuple[str, ...]]
    numbers: ClassVar[Iterator[int]]

    def on_start(self) -> None:
        self.rng = random.Random(next(self.numbers))

    def _must_stop(self) -> bool:
        return time.monotonic() >= self.deadline or sum(self.measure.sent.values()) >= self.max_turns

    @task
    def converse(self) -> None:
        conversation = next_conversation(self.rng, self.customers)
        sender = f"{SENDER_PREFIX}-{self.run_id}-{self.measure.sender_prefix}{next(self.numbers)}"
        for step in conversation.steps:
            if self._must_stop():
                raise StopUser()
            self.turn(sender, conversation.kind, step)
        self.measure.conversations += 1

    def turn(self, sender: str, kind: str, step: Step) -> None:
        """One step; after the polite 503 (a replica just died), the same message again, as a
        person would send it, at most `RESEND_LIMIT` times."""
        for _ in range(RESEND_LIMIT):
            if not self._send(sender, kind, step):
                return
            time.sleep(RESEND_AFTER_S)  # gevent's sleep: locust patches time

    def _send(self, sender: str, kind: str, step: Step) -> bool:
        """Send one turn and judge the reply; True when it was refused with the polite 503."""
        target = self.measure.target
        self.measure.sent[sender] += 1
        started = time.perf_counter()
        with self.client.post(
            target.path, json=target.payload(sender, step.text), name=target.name, catch_response=True
        ) as response:
            try:
                messages = response.json() if response.status_code == 200 else None
            except ValueError:
                messages = None
            elapsed = time.perf_counter() - started
            if response.status_code == 503 and _is_apology(response):
                self.measure.refused[sender] += 1
                self.measure.errors["HTTP 503, the apology (sent again)"] += 1
                response.failure("HTTP 503")
                return True
            if response.status_code != 200:
                self.measure.errors[f"HTTP {response.status_code}"] += 1
                response.failure(f"HTTP {response.status_code}")
                return False
            self.measure.latencies.append(elapsed)
            texts = [str(m.get("text") or "") for m in messages if isinstance(m, dict)] if messages else []
            reply = "\n".join(texts)
            if not reply:
                self.measure.errors["no reply"] += 1
                response.failure("no reply")
            elif apology := next((text for text in texts if text.startswith(self.apologies)), None):
                self.measure.errors[f"apology «{apology[:12]}…»"] += 1
                response.failure("apology")
            elif step.expect is not None and step.expect not in reply:
                self.measure.off_script[f"{kind}: no «{step.expect}»"] += 1
        return False


def _is_apology(response: Any) -> bool:
    """Whether a 503 is the gateway's polite answer (api/gateway.py), which says to send again."""
    try:
        messages = response.json()
    except ValueError:
        return False
    return isinstance(messages, list) and bool(messages) and messages[-1] == {"text": UNAVAILABLE_REPLY}


@dataclass(frozen=True)
class Fault:
    """Something done to a stack `at_s` seconds into one level of one target."""

    at_s: float
    label: str
    fire: Callable[[], None]


def kill_program(log_path: Path, program: str) -> None:
    """SIGKILL to the stack's `program` (`rasa-1` …): its pid from the supervisor's latest start line."""
    pids = re.findall(rf"\b{re.escape(program)} started \(pid=(\d+)\)", log_path.read_text(errors="replace"))
    if not pids:
        raise SystemExit(f"{program} never started in {log_path}")
    os.kill(int(pids[-1]), signal.SIGKILL)


def run_level(
    measure: Measure,
    *,
    run_id: str,
    duration_s: float,
    max_turns: int,
    customers: Sequence[DemoCustomer],
    known_apologies: tuple[str, ...],
    seed: int,
    stack_pids: set[int],
    fault: Fault | None = None,
) -> None:
    """`measure.level` simulated customers on `measure.target` until the deadline, then drain;
    `fault` fired on the way."""
    others = OthersCpu(stack_pids)
    measure.started = time.monotonic()
    deadline = measure.started + duration_s
    user = type(
        f"Customer_{measure.target.name}_{measure.level}",
        (Customer,),
        {
            "abstract": False,
            "host": measure.target.base_url,
            "measure": measure,
            "run_id": run_id,
            "deadline": deadline,
            "max_turns": max_turns,
            "customers": customers,
            "apologies": known_apologies,
            "numbers": count(seed),
        },
    )
    environment = Environment(user_classes=[user], catch_exceptions=True)
    runner = environment.create_local_runner()
    runner.start(measure.level, spawn_rate=measure.level)
    drain_until = deadline + DRAIN_TIMEOUT_S
    said = measure.started
    # Sleeping yields to the users' greenlets (locust patches time.sleep with gevent's).
    time.sleep(0.5)
    while runner.user_count > 0 and time.monotonic() < drain_until:
        time.sleep(0.2)
        if fault is not None and not measure.fault and time.monotonic() - measure.started >= fault.at_s:
            _say(f"  {fault.label}")
            fault.fire()
            measure.fault = fault.label
        if time.monotonic() - said >= PROGRESS_EVERY_S:
            said = time.monotonic()
            _say(_progress_line(measure, f"{said - measure.started:4.0f} s"))
    measure.ended = time.monotonic()
    if runner.user_count > 0:
        measure.errors["unanswered at the end"] += runner.user_count
    runner.quit()
    measure.others_cpu = others.describe()
    _say(_progress_line(measure, f"done in {measure.seconds:.0f} s"))
    for what, times in [*measure.errors.most_common(), *measure.off_script.most_common()]:
        _say(f"    {times} × {what}")


def _progress_line(measure: Measure, when: str) -> str:
    p95 = measure.percentile(0.95)
    return (
        f"  {measure.target.name} × {measure.level}, {when}: {measure.turns} turns, {measure.rate:.1f}/s, "
        f"p95 {'-' if p95 is None else f'{p95:.2f} s'}, errors {sum(measure.errors.values())}, "
        f"off script {measure.off_script.total()}"
    )


def warm_up(target: Target, run_id: str, customers: Sequence[DemoCustomer]) -> None:
    """One conversation of each kind, uncounted: the first turns of a fresh stack load lazily."""
    rng = random.Random(0)
    with httpx.Client(base_url=target.base_url, timeout=TURN_TIMEOUT_S * 2) as client:
        for number, (make, _) in enumerate(KINDS):
            sender = f"{SENDER_PREFIX}-{run_id}-warm-{target.name}-{number}"
            for step in make(rng, customers).steps:
                client.post(target.path, json=target.payload(sender, step.text)).raise_for_status()


# -- integrity: the tracker store against the turns sent ---------------------------------------


def check_tracker(measures: Sequence[Measure], run_id: str) -> None:
    """Fill each measure's lost and duplicated turns from the user events in the tracker store."""
    by_url: dict[str, list[Measure]] = {}
    for measure in measures:
        if measure.target.tracker_url is not None:
            by_url.setdefault(measure.target.tracker_url, []).append(measure)
    for url, group in by_url.items():
        engine = tracker_engine(url)
        if engine is None:
            _say(f"no tracker store at {url}: lost and duplicated turns not checked")
            continue
        events = TRACKER_EVENTS.c
        with engine.connect() as connection:
            tracked: dict[str, int] = dict(
                connection.execute(
                    select(events.sender_id, func.count())
                    .where(events.type_name == "user", events.sender_id.like(f"{SENDER_PREFIX}-{run_id}-%"))
                    .group_by(events.sender_id)
                ).all()
            )
        engine.dispose()
        for measure in group:
            prefix = f"{SENDER_PREFIX}-{run_id}-{measure.sender_prefix}"
            mine = {sender: int(n) for sender, n in tracked.items() if sender.startswith(prefix)}
            # A turn refused with the polite 503 may be in the tracker or not (Rasa died before or
            # after saving it): lost is an answered turn missing, duplicated one counted twice.
            measure.lost = sum(
                max(0, sent - measure.refused[sender] - mine.get(sender, 0))
                for sender, sent in measure.sent.items()
            )
            measure.duplicated = sum(max(0, n - measure.sent.get(sender, 0)) for sender, n in mine.items())


# -- the stack -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    api_url: str
    rasa_url: str
    tracker_url: str | None
    pid: int | None = None
    log_path: Path | None = None


@dataclass(frozen=True)
class ScaleOptions:
    """Where the scale stacks keep their data: a PostgreSQL server and Rasa's Redis lock store."""

    replicas: tuple[int, ...]
    postgres_url: str
    lock_store_url: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports that nothing listens on."""
    while True:
        first = _free_port()
        if all(not _port_is_open(first + i) for i in range(1, count)):
            return first


@contextmanager
def scratch_postgres(server_url: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of `server_url`; its URL. Dropped after."""
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    database = f"{name}_{secrets.token_hex(4)}"
    run_outside_transaction(server, f'CREATE DATABASE "{database}"')
    try:
        yield server.set(database=database).render_as_string(hide_password=False)
    finally:
        run_outside_transaction(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@contextmanager
def own_stack(
    workdir: Path, *, replicas: int | None = None, scale: ScaleOptions | None = None
) -> Iterator[Endpoints]:
    """`crmbot up --no-tuning` on a scratch demo store and free loopback ports, stopped by Ctrl-C.

    With `replicas`, the scale profile instead (`crmbot up --scale`): that many Rasa replicas and
    two API workers on a scratch PostgreSQL database and `scale`'s lock store.
    """
    _say("the trained demo model (trained only if var/models has none for these inputs)…")
    prepare_demo_model()
    if replicas is None:
        with _stack(workdir, f"sqlite:///{workdir / 'crm.db'}", {}, []) as endpoints:
            yield endpoints
        return
    assert scale is not None
    with scratch_postgres(scale.postgres_url, f"bench_scale_{replicas}") as database_url:
        extra = {
            "CRM_LOCK_STORE_URL": scale.lock_store_url,
            "CRM_RASA_REPLICAS": str(replicas),
            "CRM_API_WORKERS": "2",
        }
        with _stack(workdir, database_url, extra, ["--scale"], replicas=replicas) as endpoints:
            yield endpoints


@contextmanager
def _stack(
    workdir: Path, database_url: str, extra_env: dict[str, str], extra_args: list[str], *, replicas: int = 1
) -> Iterator[Endpoints]:
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {"api": _free_port(), "rasa": _free_ports(replicas), "action": _free_ports(replicas)}
    env = child_environment(
        {
            **extra_env,
            "CRM_DATABASE_URL": database_url,
            "CRM_TODAY": REFERENCE_DAY,
            "CRM_RASA_PORT": str(ports["rasa"]),
            "CRM_ACTION_PORT": str(ports["action"]),
            "CRM_API_PORT": str(ports["api"]),
            "CRM_API_HOST": "127.0.0.1",
            "CRM_CHAT_RATE_LIMIT": RAISED_RATE_LIMIT,
            "RASA_TELEMETRY_ENABLED": "false",
            "KNOWLEDGE_DIR": str(workdir / "knowledge"),
            "CRM_CARE_SPOOL_DIR": str(workdir / "spool"),
        }
    )
    # The scratch store's own tracker (tracker.db beside crm.db, or its PostgreSQL database), and
    # rate-limit counters in memory (in the lock store's Redis for the scale profile).
    env.pop("CRM_TRACKER_URL", None)
    env.pop("CRM_REDIS_URL", None)
    log_path = workdir / "stack.log"
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    endpoints = Endpoints(
        api_url=f"http://127.0.0.1:{ports['api']}",
        rasa_url=f"http://127.0.0.1:{ports['rasa']}",
        tracker_url=f"sqlite:///{workdir / 'tracker.db'}" if sqlite else database_url,
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "crmbot.cli", "up", "--no-tuning", *extra_args],
            cwd=paths.PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_healthy(endpoints.api_url, process, log_path)
            yield Endpoints(
                endpoints.api_url, endpoints.rasa_url, endpoints.tracker_url, process.pid, log_path
            )
        finally:
            _say("stopping the stack (Ctrl-C)…")
            if not _interrupt(process, timeout_s=90):
                _say("the stack did not stop within 90 s of Ctrl-C: killed")
    still_open = [
        f"{name}+{i}"
        for name, port in ports.items()
        for i in range(replicas if name != "api" else 1)
        if _port_is_open(port + i)
    ]
    if still_open:
        _say(f"WARNING: ports still open after the stack stopped: {', '.join(still_open)}")


@contextmanager
def floor_forwarder(endpoints: Endpoints) -> Iterator[Endpoints]:
    """bench/floor_forwarder.py on a free loopback port, in front of `endpoints`' Rasa; stopped after."""
    port = _free_port()
    command = ["-m", "bench.floor_forwarder", "--rasa-url", endpoints.rasa_url, "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=paths.PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _port_is_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench/floor_forwarder.py did not start (exit code {process.poll()})")
            time.sleep(0.2)
        _say(f"floor forwarder listening on port {port}")
        yield Endpoints(f"http://127.0.0.1:{port}", endpoints.rasa_url, endpoints.tracker_url, process.pid)
    finally:
        _interrupt(process, timeout_s=30)


def _interrupt(process: subprocess.Popen[bytes], *, timeout_s: float) -> bool:
    """Ctrl-C `process` and wait for it; killed if it is still running after `timeout_s` (False)."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return True


def _wait_until_healthy(api_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    started = time.monotonic()
    last_said = started
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        if process.poll() is not None:
            tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:])
            raise SystemExit(f"crmbot up exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                _say(f"stack healthy after {time.monotonic() - started:.0f} s (log: {log_path})")
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() - last_said >= 15:
            _say(f"  waiting for the stack: {time.monotonic() - started:.0f} s")
            last_said = time.monotonic()
        time.sleep(1)
    process.send_signal(signal.SIGINT)
    raise SystemExit(f"the stack was not healthy after {STARTUP_TIMEOUT_S:.0f} s (log: {log_path})")


# -- others' CPU -------------------------------------------------------------------------------------


def _tree_seconds(roots: set[int]) -> float:
    """CPU seconds of the processes under `roots` (them included, their reaped children too)."""
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
            after_name = stat.rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        parents[pid] = int(after_name[1])
        # utime stime cutime cstime: fields 14-17 of proc(5), 11-14 after the name.
        seconds[pid] = sum(int(value) for value in after_name[11:15]) / tick
    total = 0.0
    for pid, own in seconds.items():
        walk = pid
        while walk > 1 and walk not in roots:
            walk = parents.get(walk, 0)
        if walk in roots:
            total += own
    return total


class OthersCpu:
    """The share of both cores that processes other than this benchmark and its stack used.

    `bench.cpu_load.OtherLoad` counts this process only; here the stack's processes, loaded by
    this benchmark, are ours too.
    """

    def __init__(self, stack_pids: set[int]) -> None:
        self._roots = {os.getpid(), *stack_pids}
        self._wall = time.monotonic()
        self._busy = _machine_busy_seconds()
        self._ours = _tree_seconds(self._roots)

    def describe(self) -> str:
        busy = _machine_busy_seconds()
        if busy is None or self._busy is None:
            return "?"
        others = (busy - self._busy) - (_tree_seconds(self._roots) - self._ours)
        wall = max(time.monotonic() - self._wall, 1e-9)
        return f"{max(0.0, others / (wall * (os.cpu_count() or 1))):.0%}"


# -- the run -------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "-"
    return f"{value / base:.2f}"


def table_rows(measures: Sequence[Measure]) -> list[list[object]]:
    bare = {m.level: m for m in measures if m.target.name == "rasa"}
    rows: list[list[object]] = []
    for m in measures:
        base = bare.get(m.level)
        is_base = m.target.name == "rasa"
        rows.append(
            [
                m.level,
                m.target.name,
                m.turns,
                f"{m.rate:.1f}",
                _seconds(m.percentile(0.50)),
                _seconds(m.percentile(0.95)),
                _seconds(m.percentile(0.99)),
                ", ".join(f"{k} {v}" for k, v in sorted(m.errors.items())) or "0",
                m.off_script.total(),
                "not checked" if m.lost is None else m.lost,
                "not checked" if m.duplicated is None else m.duplicated,
                m.fault,
                "" if is_base or base is None else _ratio(m.rate, base.rate),
                "" if is_base or base is None else _ratio(m.percentile(0.95), base.percentile(0.95)),
                m.others_cpu,
            ]
        )
    return rows


COLUMNS: Final = (
    "conversations",
    "target",
    "turns",
    "turns/s",
    "p50 s",
    "p95 s",
    "p99 s",
    "errors",
    "off script",
    "lost",
    "duplicated",
    "fault",
    "throughput / rasa",
    "p95 / rasa",
    "others' CPU",
)


def measure_all(
    endpoints: Endpoints,
    *,
    scale_stacks: Sequence[tuple[int, Endpoints]],
    floor: Endpoints | None = None,
    kill_replica_at: float | None = None,
    levels: Sequence[int],
    duration_s: float,
    max_turns: int,
    seed: int,
) -> list[Measure]:
    run_id = secrets.token_hex(3)
    customers = demo_customers()
    known_apologies = apologies()
    targets = [
        Target("api", endpoints.api_url, CHAT_PATH, endpoints.tracker_url),
        Target("rasa", endpoints.rasa_url, RASA_WEBHOOK_PATH, endpoints.tracker_url),
    ]
    if floor is not None:
        targets.append(Target("floor", floor.api_url, CHAT_PATH, endpoints.tracker_url))
    targets += [
        Target(f"scale-{replicas}", stack.api_url, CHAT_PATH, stack.tracker_url)
        for replicas, stack in scale_stacks
    ]
    for target in targets:
        _say(f"warming up {target.name} ({target.base_url}{target.path})…")
        warm_up(target, run_id, customers)
    # The kill: rasa-1 of the stack with the most replicas, at the last level.
    killed = max(scale_stacks, key=lambda item: item[0], default=None)
    fault_at: tuple[str, int] | None = None
    fault: Fault | None = None
    if kill_replica_at is not None and killed is not None and killed[0] >= 2 and killed[1].log_path:
        fault_at = (f"scale-{killed[0]}", levels[-1])
        fault = Fault(
            kill_replica_at,
            f"kill -9 of rasa-1 at {kill_replica_at:g} s",
            partial(kill_program, killed[1].log_path, "rasa-1"),
        )
    measures: list[Measure] = []
    for number, level in enumerate(levels):
        # Alternately first and last, so that neither target always meets the stack as the other left it.
        for target in targets if number % 2 == 0 else targets[::-1]:
            _say(f"{target.name}: {level} conversation(s) at once for {duration_s:.0f} s…")
            measure = Measure(target, level)
            run_level(
                measure,
                run_id=run_id,
                duration_s=duration_s,
                max_turns=max_turns,
                customers=customers,
                known_apologies=known_apologies,
                seed=seed + 1000 * level,
                stack_pids={
                    p
                    for p in (endpoints.pid, floor.pid if floor else None, *(s.pid for _, s in scale_stacks))
                    if p
                },
                fault=fault if (target.name, level) == fault_at else None,
            )
            measures.append(measure)
    check_tracker(measures, run_id)
    return sorted(measures, key=lambda m: (levels.index(m.level), targets.index(m.target)))


def verdicts(measures: Sequence[Measure]) -> list[str]:
    """Each target against bare Rasa at the same level, in the words of issue 20's targets."""
    bare = {m.level: m for m in measures if m.target.name == "rasa"}
    lines = []
    for m in measures:
        base = bare.get(m.level)
        p95, base_p95 = m.percentile(0.95), base.percentile(0.95) if base else None
        if m.target.name == "rasa" or base is None or not base.rate or p95 is None or not base_p95:
            continue
        throughput, latency = m.rate / base.rate, p95 / base_p95
        lines.append(
            f"{m.level} conversations, {m.target.name}: throughput {throughput:.2f} × bare Rasa "
            f"({'met' if throughput >= MIN_THROUGHPUT_RATIO else 'missed'}), p95 {latency:.2f} × "
            f"({'met' if latency <= MAX_P95_RATIO else 'missed'})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--levels", default="1,5,10,20", help="conversations at once, one level after another"
    )
    parser.add_argument("--duration-s", type=float, default=60.0, help="seconds of each level and target")
    parser.add_argument("--max-turns", type=int, default=5000, help="turns at most per level and target")
    parser.add_argument("--api-url", help="the API of a running stack (with --rasa-url) instead of our own")
    parser.add_argument("--rasa-url", help="the Rasa server of that stack")
    parser.add_argument("--tracker-url", help="that stack's tracker store (SQLAlchemy URL), for the check")
    parser.add_argument(
        "--replicas", default="1,2", help="a scale-profile stack with each of these counts of Rasa replicas"
    )
    parser.add_argument(
        "--no-scale", action="store_true", help="no scale-profile stacks: /api/chat and bare Rasa only"
    )
    parser.add_argument(
        "--postgres-url",
        default=get_store_settings().test_postgres_url or "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL server the scale stacks make their scratch databases on",
    )
    parser.add_argument(
        "--kill-replica-at",
        type=float,
        metavar="S",
        help="kill -9 rasa-1 of the scale stack with the most replicas, S seconds into its last level",
    )
    parser.add_argument(
        "--lock-store-url", default="redis://127.0.0.1:6379/9", help="Redis for the scale stacks' lock store"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure bench/floor_forwarder.py (a bare Python HTTP hop) in front of the same Rasa",
    )
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    levels = list(dict.fromkeys(int(level) for level in args.levels.split(",") if level.strip()))
    if not levels or min(levels) < 1:
        parser.error("--levels: one or more whole numbers ≥ 1, such as 1,5,10,20")
    if bool(args.api_url) != bool(args.rasa_url):
        parser.error("--api-url and --rasa-url go together")
    replicas = (
        () if args.no_scale else tuple(dict.fromkeys(int(r) for r in args.replicas.split(",") if r.strip()))
    )
    if replicas and min(replicas) < 1:
        parser.error("--replicas: whole numbers ≥ 1, such as 1,2")
    scale = ScaleOptions(replicas, args.postgres_url, args.lock_store_url)

    before = os.getloadavg()[0]
    _say(f"load average before: {before:.2f}")
    with tempfile.TemporaryDirectory(prefix="chat-load-") as scratch:
        stack = (
            _given_stack(args.api_url, args.rasa_url, args.tracker_url)
            if args.api_url
            else own_stack(Path(scratch))
        )
        with stack as endpoints, ExitStack() as scale_stacks:
            floor = scale_stacks.enter_context(floor_forwarder(endpoints)) if args.floor else None
            scaled = [
                (
                    n,
                    scale_stacks.enter_context(
                        own_stack(Path(scratch) / f"scale-{n}", replicas=n, scale=scale)
                    ),
                )
                for n in replicas
            ]
            measures = measure_all(
                endpoints,
                scale_stacks=scaled,
                floor=floor,
                kill_replica_at=args.kill_replica_at,
                levels=levels,
                duration_s=args.duration_s,
                max_turns=args.max_turns,
                seed=args.seed,
            )
    path = report(
        "chat_load",
        f"Chat load: mixed customer conversations, /api/chat against bare Rasa ({TARGET_RATIOS})",
        COLUMNS,
        table_rows(measures),
        note=_note(args, before, measures),
    )
    for line in verdicts(measures):
        _say(line)
    _say(f"written to {path}")
    return 0


def _note(args: argparse.Namespace, load_before: float, measures: Sequence[Measure]) -> str:
    given = args.api_url is not None
    scale = " --no-scale" if args.no_scale else f" --replicas {args.replicas}"
    if args.floor:
        scale += " --floor"
    if args.kill_replica_at is not None:
        scale += f" --kill-replica-at {args.kill_replica_at:g}"
    command = (
        f"`.venv-app/bin/python -m bench.chat_load --levels {args.levels} --duration-s {args.duration_s:g}"
        f"{scale}`"
    )
    lines = [
        f"{command}{' against a running stack' if given else ''}: each level {args.duration_s:g} s per "
        f"target (or {args.max_turns} turns), no think time, conversations mixed 3:2:3:2 (order status, "
        "my orders with verification, FAQ, complaint to its ticket). Latency: a turn, request to reply. "
        "Errors: non-200, no reply, the service's apology. Lost/duplicated: user events per sender in the "
        "tracker store against turns sent. Others' CPU: the share of both cores used by processes outside "
        f"this benchmark and its stack{' (a given stack counts as others)' if given else ''}; load average "
        f"{load_before:.2f} before the run.",
    ]
    if args.floor:
        lines.append(
            "floor: bench/floor_forwarder.py, a uvicorn + FastAPI + httpx hop that only forwards each turn "
            "to the same Rasa (no validation, sign-in, rate limit or hand-off check): what any gateway in "
            "Python costs before it does anything."
        )
    if not args.no_scale:
        lines.append(
            "scale-N: `crmbot up --scale` with N Rasa replicas (each with its action server) and two API "
            "workers, on a PostgreSQL database and Redis lock store of its own, on the same two cores."
        )
    return " ".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in verdicts(measures))


@contextmanager
def _given_stack(api_url: str, rasa_url: str, tracker_url: str | None) -> Iterator[Endpoints]:
    yield Endpoints(api_url.rstrip("/"), rasa_url.rstrip("/"), tracker_url)


if __name__ == "__main__":
    sys.exit(main())
