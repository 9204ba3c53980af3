"""Staff side at scale: the customer 360 view, customer search and a visit save on a big PostgreSQL store.

    .venv-app/bin/python -m bench.staff_scale [--customers 1000000 --orders 10000000] [--keep] [--reuse]

What it does, in order:

1. Creates its own database (`crm_bench_staff` by default) on the server of
   `CRM_TEST_POSTGRES_URL` (default `postgresql+psycopg://postgres@127.0.0.1:5432/test`), dropping
   a leftover one of the same name first; it connects to the server's database only for CREATE
   and DROP DATABASE, never to its tables. Migrates the schema (`crm_store.db.migrate`).
2. Generates a seeded, synthetic company in bulk with COPY (psycopg 3 `cursor.copy`): 200
   employees over 7 regions (161 salespeople, a manager and 4 service agents per region, a
   national manager, 3 admins), 211 products, the customers (20 % companies), the orders over
   three years up to the reference day 2026-11-23 (more each year; orders per customer skewed:
   8 % of customers never bought, a lognormal weight gives most a few orders and the biggest
   several hundred), 1–5 order items each (the order's amount is their sum), statuses by age as
   in the demo (the last days' orders still on their way, 5 % cancelled, 4 % refunded), 3
   interactions per customer, follow-up tasks, 0.3 tickets and 0.15 opportunities per customer.
   Secondary indexes are dropped during the load and rebuilt after it, foreign keys are not
   checked row by row (the generator makes them consistent), then every table is VACUUM ANALYZEd,
   as autovacuum would have done on a store that grew over three years. The generation is niced
   (and so is its PostgreSQL backend): other people use the machine.
3. Measures, one call at a time, each in its own session and committed as a request would be
   (the actor is built before the clock starts, as the API's sign-in dependency does):
   - `crm_store.customer360.customer_view` for random customers as their owner (sales) and as an
     admin, and for the customers with the most orders, after a warm-up that is not counted;
   - `crm_store.customer360.find_customers` by name and by phone, as a salesperson and as an admin;
   - `crm_store.visits.save_visit`, commit included.
   The SQL statements the 360 view runs are timed too (SQLAlchemy cursor events): the table of
   the slowest and the EXPLAIN (ANALYZE, BUFFERS) of the slowest one are written with the result.
4. Drops its database, unless `--keep`; `--reuse` measures an existing one again (kept by an
   earlier `--keep`) without generating.

The bar: 360 view p95 ≤ 30 ms on these 2-core machines. The full size takes about 15 minutes
(4 to generate, most of the rest in the slow visit saves and searches) and 4.4 GB of disk;
`--customers 10000 --orders 100000` checks the script in a minute. `--generate-only` builds and
keeps the database without measuring.
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import URL, Engine, event, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bench.cpu_load import OtherLoad
from bench.results_table import report
from crm_store import customer360, lapse
from crm_store.access import Actor, actor_for
from crm_store.complaints import TICKET_ID_DIGITS, TICKET_ID_PREFIX
from crm_store.db import create_engine_for, make_session_factory, migrate, run_outside_transaction
from crm_store.opportunities import OPPORTUNITY_ID_DIGITS, OPPORTUNITY_ID_PREFIX
from crm_store.settings import get_store_settings, pin_today
from crm_store.visits import INTERACTION_ID_DIGITS, INTERACTION_ID_PREFIX, VisitDraft, save_visit
from crm_store.vocab import COMPLAINT_CATEGORIES

DEFAULT_SERVER: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_DATABASE: Final = "crm_bench_staff"
TODAY: Final = date(2026, 11, 23)
HISTORY_DAYS: Final = 3 * 365 + 1
START: Final = TODAY - timedelta(days=HISTORY_DAYS - 1)
P95_BUDGET_MS: Final = 30.0
SEED: Final = 16

# Per customer, on average.
INTERACTIONS_PER_CUSTOMER: Final = 3.0
TICKETS_PER_CUSTOMER: Final = 0.3
OPPORTUNITIES_PER_CUSTOMER: Final = 0.15
CHUNK: Final = 50_000
SEARCHES: Final = 200
VISIT_WARM_UP: Final = 10
VISIT_SAVES: Final = 200
SLOW_VISIT_SAVES: Final = 30
SLOW_SAVE_MS: Final = 500.0
COLD_TIMEOUT_S: Final = 120.0

I64 = npt.NDArray[np.int64]
NULL: Final = "\\N"  # COPY's text format

# --- the company ---------------------------------------------------------------------------------

REGIONS: Final = {
    "华东": (0.30, 48, ("上海", "杭州", "南京", "苏州", "宁波", "合肥")),
    "华北": (0.18, 29, ("北京", "天津", "石家庄", "太原", "济南")),
    "华南": (0.20, 32, ("广州", "深圳", "东莞", "厦门", "南宁")),
    "华中": (0.10, 16, ("武汉", "长沙", "郑州", "南昌")),
    "西南": (0.10, 16, ("成都", "重庆", "昆明", "贵阳")),
    "西北": (0.05, 8, ("西安", "兰州", "银川")),
    "东北": (0.07, 12, ("沈阳", "大连", "哈尔滨", "长春")),
}
SERVICE_PER_REGION: Final = 4
ADMINS: Final = 3
SURNAMES: Final = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦孔"
)
GIVEN: Final = tuple(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉建华飞鑫波宇浩凯健俊帆琳晶"
    "雪倩婷颖欣怡思远子轩梓涵一诺雨桐浩然宇轩晨曦嘉怡佳琪志强文博天佑"
)
BRANDS_A: Final = tuple("华远金恒瑞新宏泰鑫盛嘉隆安博天海中东诚信永達")
BRANDS_B: Final = tuple("峰航科达丰源通德利美联达成兴和耀凯明辰誉")
INDUSTRIES: Final = ("科技", "物流", "贸易", "餐饮", "建材", "医疗器械", "教育咨询", "电子", "食品", "家居")
COMPANY_FORMS: Final = ("有限公司", "股份有限公司")
PHONE_PREFIXES: Final = ("138", "139", "135", "136", "150", "151", "158", "159", "177", "182", "186", "188")
CHANNELS: Final = ("wechat", "sms", "email", "web")
NOTES: Final = (
    "喜欢靠窗的位置",
    "偏好周末送货",
    "不接受营销短信",
    "早餐老菜单：一个三明治、一杯咖啡",
    "只在工作日上午联系",
    "对价格比较敏感",
    "采购需走审批流程",
)
PREFERENCES: Final = ("靠窗的座位", "周末送货", "电子发票", "顺丰速运", "上午联系", "微信沟通", "无糖饮品")
PRODUCT_BASES: Final = (
    ("无线蓝牙耳机", "数码配件", 399),
    ("智能手环", "数码配件", 249),
    ("降噪头戴耳机", "数码配件", 1299),
    ("家用空气净化器", "家电", 1899),
    ("扫地机器人", "家电", 2499),
    ("电热水壶", "家电", 159),
    ("有机大米 5kg", "食品", 89),
    ("高山绿茶礼盒", "食品", 268),
    ("进口咖啡豆 1kg", "食品", 158),
    ("办公椅", "办公", 1599),
    ("升降桌", "办公", 2999),
    ("企业版软件年费", "服务", 19800),
)
PRODUCTS: Final = 211  # prime: an order's items, p0 + j·step mod 211, are distinct products
ITEMS_PER_ORDER: Final = ((1, 0.50), (2, 0.30), (3, 0.14), (4, 0.04), (5, 0.02))
QUANTITIES: Final = ((1, 0.75), (2, 0.18), (3, 0.07))
CARRIERS: Final = ("顺丰速运", "京东物流", "中通快递", "EMS")
# Order statuses by age in days: (oldest age of the bucket, ((status, share), ...)).
STATUS_BY_AGE: Final = (
    (1, (("待付款", 0.15), ("已付款", 0.50), ("已发货", 0.35))),
    (4, (("已发货", 0.20), ("运输中", 0.40), ("派送中", 0.20), ("已签收", 0.15), ("已取消", 0.05))),
    (30, (("已签收", 0.88), ("退货中", 0.04), ("已退款", 0.03), ("已取消", 0.05))),
    (10**6, (("已签收", 0.91), ("已退款", 0.04), ("已取消", 0.05))),
)
UNSHIPPED: Final = frozenset({"待付款", "已付款"})
KINDS: Final = (("拜访", 0.30), ("电话", 0.30), ("微信", 0.25), ("邮件", 0.08), ("会议", 0.07))
SUMMARIES: Final = (
    "回访使用情况",
    "处理发票问题",
    "收集改进建议",
    "谈年度续约",
    "介绍新品升降桌",
    "沟通二期报价",
    "确认交付时间",
)
NEXT_STEPS: Final = ("发送报价单", "安排技术上门演示", "下周再电话跟进", "寄送样品", "确认合同条款")
TICKET_SUMMARIES: Final = (
    "快递延误一周",
    "净化器异响需要上门维修",
    "客服电话无人接听",
    "发票开错抬头",
    "收到的商品有划痕",
)
PRIORITIES: Final = (("低", 0.30), ("中", 0.50), ("高", 0.20))
STAGES: Final = (
    ("初步接触", 0.08, 10),
    ("需求确认", 0.12, 20),
    ("方案演示", 0.08, 40),
    ("报价", 0.10, 50),
    ("谈判", 0.07, 70),
    ("赢单", 0.30, 100),
    ("输单", 0.25, 0),
)
CLOSED_STAGES: Final = frozenset({"赢单", "输单"})
LOST_REASONS: Final = ("价格高于竞品", "预算取消", "选择了竞争对手", "需求延期到明年")
OPPORTUNITY_NAMES: Final = (
    "企业版软件二期",
    "办公家具批量采购",
    "空气净化器团购",
    "年度礼品采购",
    "门店设备更新",
)

# Day offsets from START as ISO strings, from 26,000 days (birthdays) before START to 400 days after TODAY.
_DAY0: Final = 26_000
_DAYS: Final = [(START + timedelta(days=d - _DAY0)).isoformat() for d in range(_DAY0 + HISTORY_DAYS + 400)]


def _day(offset: int) -> str:
    return _DAYS[_DAY0 + offset]


@dataclass(frozen=True)
class Scale:
    customers: int
    orders: int

    @property
    def interactions(self) -> int:
        return round(self.customers * INTERACTIONS_PER_CUSTOMER)

    @property
    def tickets(self) -> int:
        return round(self.customers * TICKETS_PER_CUSTOMER)

    @property
    def opportunities(self) -> int:
        return round(self.customers * OPPORTUNITIES_PER_CUSTOMER)


@dataclass
class Company:
    """What later tables need of earlier ones, kept as arrays (indexes into the employee list)."""

    employee_ids: list[str]
    sales_by_region: list[I64]
    service_by_region: list[I64]
    customer_region: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    customer_owner: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    customer_company: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    order_weight: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    order_day: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    order_customer: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    day_start: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    product_price: I64 = field(default_factory=lambda: np.zeros(0, np.int64))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _choice(rng: np.random.Generator, options: Sequence[tuple[Any, float]], size: int) -> I64:
    """Indexes into `options` drawn with their shares."""
    shares = np.array([share for _, share in options], dtype=np.float64)
    return rng.choice(len(options), size=size, p=shares / shares.sum())


def customer_id(index: int) -> str:
    return f"C{index + 1:07d}"


def _house_id(prefix: str, width: int, number: int) -> str:
    """An id as the services allocate it (crm_store.ids): zero-padded to `width`, wider past it."""
    return f"{prefix}{number:0{width}d}"


def _order_id(day: int, seq: int) -> str:
    return f"SO{_DAYS[_DAY0 + day][2:].replace('-', '')}{seq:06d}"


# --- loading -------------------------------------------------------------------------------------


class Loader:
    """COPY into the bench database over one psycopg connection, with progress and timings."""

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        with contextlib.suppress(OSError):
            # Our backend does most of the work of a COPY; it is niced with us.
            os.setpriority(os.PRIO_PROCESS, self.conn.info.backend_pid, 5)
        with self.conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            cur.execute("SET max_parallel_maintenance_workers = 0")  # one core for index builds
            cur.execute("SET maintenance_work_mem = '512MB'")
            try:
                # Foreign keys are not checked row by row: the generator makes them consistent.
                cur.execute("SET session_replication_role = replica")
            except psycopg.Error:
                _say("(not a superuser: foreign keys are checked row by row, which is slower)")

    def copy(self, table: str, columns: Sequence[str], chunks: Iterator[tuple[str, int]], total: int) -> None:
        begun = time.monotonic()
        done = 0
        shown = -1
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            for data, rows in chunks:
                copy.write(data)
                done += rows
                percent = int(done * 100 / max(total, 1))
                if percent // 5 != shown // 5 or done >= total:
                    shown = percent
                    elapsed = time.monotonic() - begun
                    _say(f"  {table}: {percent:3d}% ({done:,} of ~{total:,} rows, {elapsed:.0f} s)")
        self.seconds[table] = time.monotonic() - begun
        self.rows[table] = done

    def execute(self, statement: str, label: str | None = None) -> None:
        begun = time.monotonic()
        with self.conn.cursor() as cur:
            cur.execute(statement)
        if label:
            self.seconds[label] = self.seconds.get(label, 0.0) + time.monotonic() - begun

    def close(self) -> None:
        self.conn.close()


def _lines(rows: Iterator[str] | list[str]) -> str:
    return "".join(rows)


BULK_TABLES: Final = (
    "customers",
    "orders",
    "order_items",
    "interactions",
    "tasks",
    "tickets",
    "opportunities",
    "opportunity_stage_changes",
)


def _secondary_indexes(loader: Loader) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the bulk tables' indexes that back no constraint."""
    with loader.conn.cursor() as cur:
        cur.execute(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
            ORDER BY i.tablename, i.indexname
            """,
            (list(BULK_TABLES),),
        )
        return [(str(name), str(definition)) for name, definition in cur.fetchall()]


def generate(loader: Loader, scale: Scale, seed: int) -> Company:
    """Fill the migrated, empty database; returns what the measurements need to know."""
    rng = np.random.default_rng(seed)
    company = _employees(loader)
    _products(loader, company, rng)
    _plan_orders(company, scale, rng)
    _customers(loader, company, scale, rng)
    _orders(loader, company, seed)
    _order_items(loader, company, seed)
    _interactions(loader, company, scale, seed)
    _tasks(loader, company, scale, seed)
    _tickets(loader, company, scale, rng)
    _opportunities(loader, company, scale, rng)
    return company


def _employees(loader: Loader) -> Company:
    rows: list[str] = []
    ids: list[str] = []
    sales: list[list[int]] = []
    service: list[list[int]] = []

    def add(role: str, region: str) -> int:
        index = len(ids)
        employee = f"E{index + 1:04d}"
        name = SURNAMES[(index * 7) % len(SURNAMES)] + GIVEN[(index * 13) % len(GIVEN)]
        rows.append(f"{employee}\t{name}\t{role}\t{region}\t{employee.lower()}@example.com\n")
        ids.append(employee)
        return index

    for region, (_, sales_count, _) in REGIONS.items():
        add("manager", region)
        sales.append([add("sales", region) for _ in range(sales_count)])
        service.append([add("service", region) for _ in range(SERVICE_PER_REGION)])
    add("manager", "全国")
    for _ in range(ADMINS):
        add("admin", "华东")
    _say(f"employees: {len(ids)} ({sum(len(s) for s in sales)} sales)")
    loader.copy(
        "employees",
        ("employee_id", "name", "role", "region", "email"),
        iter([(_lines(rows), len(rows))]),
        len(rows),
    )
    return Company(
        employee_ids=ids,
        sales_by_region=[np.array(s, dtype=np.int64) for s in sales],
        service_by_region=[np.array(s, dtype=np.int64) for s in service],
    )


def _products(loader: Loader, company: Company, rng: np.random.Generator) -> None:
    rows = []
    prices = []
    for index in range(PRODUCTS):
        base, category, price = PRODUCT_BASES[index % len(PRODUCT_BASES)]
        series = "ABCDEFGHJKLMNPQRSTUVWXYZ"[(index // len(PRODUCT_BASES)) % 24]
        variant_price = max(9, round(price * float(rng.uniform(0.7, 1.5))))
        prices.append(variant_price)
        rows.append(f"P{index + 1:03d}\t{base} {series}{index // 24 + 1}\t{category}\t{variant_price}\n")
    company.product_price = np.array(prices, dtype=np.int64)
    loader.copy(
        "products", ("product_id", "name", "category", "price"), iter([(_lines(rows), PRODUCTS)]), PRODUCTS
    )


def _plan_orders(company: Company, scale: Scale, rng: np.random.Generator) -> None:
    """Who ordered when, for every order: needed before the customers (their `created_at`)."""
    started = time.monotonic()
    n = scale.customers
    shares = np.array([share for share, _, _ in REGIONS.values()])
    company.customer_region = rng.choice(len(REGIONS), size=n, p=shares / shares.sum())
    owner = np.empty(n, dtype=np.int64)
    for region, sales in enumerate(company.sales_by_region):
        mask = company.customer_region == region
        owner[mask] = sales[rng.integers(0, len(sales), size=int(mask.sum()))]
    company.customer_owner = owner
    company.customer_company = rng.random(n) < 0.20
    weight = rng.lognormal(0.0, 1.0, size=n) * np.where(company.customer_company, 3.0, 1.0)
    weight[rng.random(n) < 0.08] = 0.0  # never bought
    company.order_weight = weight
    cumulative = np.cumsum(weight)
    # More orders each year: density grows linearly to twice the first day's.
    u = rng.random(scale.orders)
    days = np.floor((np.sqrt(1.0 + 3.0 * u) - 1.0) * HISTORY_DAYS).astype(np.int64)
    days.sort()
    company.order_day = np.minimum(days, HISTORY_DAYS - 1)
    company.order_customer = np.searchsorted(
        cumulative, rng.random(scale.orders) * cumulative[-1], side="right"
    )
    company.order_customer = np.minimum(company.order_customer, n - 1)
    company.day_start = np.searchsorted(company.order_day, np.arange(HISTORY_DAYS + 1))
    _say(f"planned {scale.orders:,} orders in {time.monotonic() - started:.1f} s")


def _customers(loader: Loader, company: Company, scale: Scale, rng: np.random.Generator) -> None:
    n = scale.customers
    first_order = np.full(n, HISTORY_DAYS, dtype=np.int64)
    buyers, first_index = np.unique(company.order_customer, return_index=True)
    first_order[buyers] = company.order_day[first_index]
    created = np.minimum(rng.integers(-1500, HISTORY_DAYS, size=n), first_order - rng.integers(0, 90, size=n))
    region_names = list(REGIONS)
    cities = [cities for _, _, cities in REGIONS.values()]
    employee_ids = company.employee_ids

    def chunks() -> Iterator[tuple[str, int]]:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            size = stop - start
            surname = rng.integers(0, len(SURNAMES), size)
            given1 = rng.integers(0, len(GIVEN), size)
            given2 = rng.integers(-len(GIVEN), len(GIVEN), size)  # negative: a one-character given name
            gender = rng.random(size) < 0.5
            birth = rng.integers(-25000, -8000, size)
            no_birthday = rng.random(size) < 0.10
            city = rng.integers(0, 100, size)
            brand = rng.integers(0, len(BRANDS_A) * len(BRANDS_B), size)
            industry = rng.integers(0, len(INDUSTRIES), size)
            email = rng.random(size) < 0.8
            channel = rng.integers(0, len(CHANNELS), size)
            opt_out = rng.random(size) < 0.05
            note = rng.integers(-3 * len(NOTES), len(NOTES), size)  # negative: no note (~75 %)
            pref = rng.integers(-4 * len(PREFERENCES), len(PREFERENCES), size)
            out = []
            for j in range(size):
                i = start + j
                region = int(company.customer_region[i])
                is_company = bool(company.customer_company[i])
                name = SURNAMES[surname[j]] + GIVEN[given1[j]] + (GIVEN[given2[j]] if given2[j] >= 0 else "")
                h = (i * 48271 + 12345) % 100_000_000
                phone = f"{PHONE_PREFIXES[i % len(PHONE_PREFIXES)]}{h:08d}"
                b = int(brand[j])
                company_name = (
                    BRANDS_A[b % len(BRANDS_A)]
                    + BRANDS_B[b // len(BRANDS_A)]
                    + INDUSTRIES[industry[j]]
                    + COMPANY_FORMS[b % 2]
                    if is_company
                    else NULL
                )
                region_cities = cities[region]
                prefs = (
                    PREFERENCES[pref[j]] + "\\n" + PREFERENCES[(pref[j] + 3) % len(PREFERENCES)]
                    if pref[j] >= 0
                    else NULL
                )
                out.append(
                    f"{customer_id(i)}\t{name}\t{'企业' if is_company else '个人'}\t{company_name}\t"
                    f"{'女' if gender[j] else '男'}\t{NULL if no_birthday[j] else _day(int(birth[j]))}\t"
                    f"{phone}\t{f'c{i + 1}@example.com' if email[j] else NULL}\t"
                    f"{region_cities[city[j] % len(region_cities)]}\t{region_names[region]}\t"
                    f"{employee_ids[company.customer_owner[i]]}\t{CHANNELS[channel[j]]}\t"
                    f"{'t' if opt_out[j] else 'f'}\t{_day(int(created[i]))}\t"
                    f"{NOTES[note[j]] if note[j] >= 0 else NULL}\t{prefs}\n"
                )
            yield _lines(out), size

    columns = [
        "customer_id",
        "name",
        "type",
        "company",
        "gender",
        "birthday",
        "phone",
        "email",
        "city",
        "region",
        "owner_id",
        "channel_pref",
        "opt_out",
        "created_at",
        "notes",
        "preferences",
    ]
    loader.copy("customers", columns, chunks(), n)


def _order_chunk(company: Company, seed: int, index: int) -> dict[str, Any]:
    """The items (and, from the same draws, the amounts) of orders [index·CHUNK, +CHUNK)."""
    rng = np.random.default_rng([seed, 1, index])
    start = index * CHUNK
    stop = min(start + CHUNK, len(company.order_day))
    size = stop - start
    days = company.order_day[start:stop]
    seq = np.arange(start, stop) - company.day_start[days]
    counts = np.array([k for k, _ in ITEMS_PER_ORDER])[_choice(rng, ITEMS_PER_ORDER, size)]
    first = np.floor(PRODUCTS * rng.random(size) ** 2).astype(np.int64)  # popular products first
    step = rng.integers(1, PRODUCTS, size)
    owner = np.repeat(np.arange(size), counts)
    item_start = np.cumsum(counts) - counts
    position = np.arange(len(owner)) - item_start[owner]
    product = (first[owner] + position * step[owner]) % PRODUCTS
    quantity = np.array([q for q, _ in QUANTITIES])[_choice(rng, QUANTITIES, len(owner))]
    price = company.product_price[product]
    amount = np.add.reduceat(quantity * price, item_start)
    ids = [_order_id(int(d), int(s)) for d, s in zip(days, seq, strict=True)]
    return {
        "rng": rng,
        "size": size,
        "days": days,
        "ids": ids,
        "owner": owner,
        "product": product,
        "quantity": quantity,
        "price": price,
        "amount": amount,
        "customer": company.order_customer[start:stop],
    }


def _orders(loader: Loader, company: Company, seed: int) -> None:
    total = len(company.order_day)
    bucket_edges = np.array([edge for edge, _ in STATUS_BY_AGE])
    bucket_statuses = [[status for status, _ in shares] for _, shares in STATUS_BY_AGE]

    def chunks() -> Iterator[tuple[str, int]]:
        for index in range((total + CHUNK - 1) // CHUNK):
            c = _order_chunk(company, seed, index)
            rng: np.random.Generator = c["rng"]
            size = c["size"]
            age = (HISTORY_DAYS - 1) - c["days"]
            bucket = np.searchsorted(bucket_edges, age, side="left")
            status = np.empty(size, dtype=object)
            for b, (_, shares) in enumerate(STATUS_BY_AGE):
                mask = bucket == b
                status[mask] = np.array(bucket_statuses[b], dtype=object)[
                    _choice(rng, shares, int(mask.sum()))
                ]
            promised = c["days"] + rng.integers(3, 8, size)
            carrier = rng.integers(0, len(CARRIERS), size)
            tracking = rng.integers(1_000_000_000, 9_999_999_999, size)
            unshipped_cancel = rng.random(size) < 0.7
            customers = c["customer"]
            out = []
            for j in range(size):
                s = status[j]
                shipped = s not in UNSHIPPED and not (s == "已取消" and unshipped_cancel[j])
                out.append(
                    f"{c['ids'][j]}\t{customer_id(int(customers[j]))}\t{_day(int(c['days'][j]))}\t{s}\t"
                    f"{c['amount'][j]}\t{_day(int(promised[j]))}\t"
                    f"{CARRIERS[carrier[j]] if shipped else NULL}\t"
                    f"{f'T{tracking[j]}' if shipped else NULL}\n"
                )
            yield _lines(out), size

    columns = [
        "order_id",
        "customer_id",
        "order_date",
        "status",
        "amount",
        "promised_date",
        "carrier",
        "tracking_no",
    ]
    loader.copy("orders", columns, chunks(), total)


def _order_items(loader: Loader, company: Company, seed: int) -> None:
    total_orders = len(company.order_day)
    expected = round(total_orders * sum(k * share for k, share in ITEMS_PER_ORDER))

    def chunks() -> Iterator[tuple[str, int]]:
        for index in range((total_orders + CHUNK - 1) // CHUNK):
            c = _order_chunk(company, seed, index)
            ids = c["ids"]
            out = [
                f"{ids[o]}\tP{p + 1:03d}\t{q}\t{u}\n"
                for o, p, q, u in zip(
                    c["owner"].tolist(),
                    c["product"].tolist(),
                    c["quantity"].tolist(),
                    c["price"].tolist(),
                    strict=True,
                )
            ]
            yield _lines(out), len(out)

    loader.copy("order_items", ("order_id", "product_id", "quantity", "unit_price"), chunks(), expected)


def _interaction_chunk(company: Company, scale: Scale, seed: int, index: int) -> dict[str, Any]:
    """Interactions [index·CHUNK, +CHUNK), in date order (their ids follow the dates)."""
    total = scale.interactions
    start = index * CHUNK
    stop = min(start + CHUNK, total)
    size = stop - start
    rng = np.random.default_rng([seed, 2, index])
    # Dates: more recent ones more often (density 1 + 2x); chunks cover consecutive quantiles.
    u = (start + np.sort(rng.random(size)) * size) / total
    days = np.floor((np.sqrt(1.0 + 8.0 * u) - 1.0) / 2.0 * HISTORY_DAYS).astype(np.int64)
    weight = company.order_weight + 0.3
    cumulative = np.cumsum(weight)
    customers = np.searchsorted(cumulative, rng.random(size) * cumulative[-1], side="right")
    customers = np.minimum(customers, scale.customers - 1)
    kind = _choice(rng, KINDS, size)
    summary = rng.integers(0, len(SUMMARIES), size)
    next_step = rng.integers(-2, len(NEXT_STEPS), size) if len(NEXT_STEPS) else np.zeros(size, np.int64)
    has_next_date = (next_step >= 0) & (rng.random(size) < 0.6)
    next_date = days + rng.integers(3, 15, size)
    return {
        "rng": rng,
        "start": start,
        "size": size,
        "days": days,
        "customers": customers,
        "kind": kind,
        "summary": summary,
        "next_step": next_step,
        "has_next_date": has_next_date,
        "next_date": next_date,
    }


def _interactions(loader: Loader, company: Company, scale: Scale, seed: int) -> None:
    total = scale.interactions
    employee_ids = company.employee_ids

    def chunks() -> Iterator[tuple[str, int]]:
        for index in range((total + CHUNK - 1) // CHUNK):
            c = _interaction_chunk(company, scale, seed, index)
            out = []
            for j in range(c["size"]):
                customer = int(c["customers"][j])
                step = int(c["next_step"][j])
                out.append(
                    f"{_house_id(INTERACTION_ID_PREFIX, INTERACTION_ID_DIGITS, c['start'] + j + 1)}\t"
                    f"{customer_id(customer)}\t"
                    f"{employee_ids[company.customer_owner[customer]]}\t{KINDS[c['kind'][j]][0]}\t"
                    f"{_day(int(c['days'][j]))}\t{SUMMARIES[c['summary'][j]]}\t"
                    f"{NEXT_STEPS[step] if step >= 0 else NULL}\t"
                    f"{_day(int(c['next_date'][j])) if c['has_next_date'][j] else NULL}\n"
                )
            yield _lines(out), c["size"]

    columns = [
        "interaction_id",
        "customer_id",
        "employee_id",
        "kind",
        "occurred_at",
        "summary",
        "next_step",
        "next_date",
    ]
    loader.copy("interactions", columns, chunks(), total)


def _tasks(loader: Loader, company: Company, scale: Scale, seed: int) -> None:
    """A follow-up task for every interaction with a next date in the last 60 days, 10 % of older ones."""
    total = scale.interactions
    employee_ids = company.employee_ids
    expected = round(total * 0.077)  # about: next dates due in the last 60 days, and 10 % of older

    def chunks() -> Iterator[tuple[str, int]]:
        for index in range((total + CHUNK - 1) // CHUNK):
            c = _interaction_chunk(company, scale, seed, index)
            rng = np.random.default_rng([seed, 3, index])
            due = c["next_date"]
            recent = due >= HISTORY_DAYS - 60
            keep = c["has_next_date"] & (recent | (rng.random(c["size"]) < 0.10))
            done = rng.random(c["size"]) < 0.8
            out = []
            for j in np.flatnonzero(keep).tolist():
                customer = int(c["customers"][j])
                is_open = due[j] >= HISTORY_DAYS - 14 or not done[j]
                out.append(
                    f"{employee_ids[company.customer_owner[customer]]}\t{customer_id(customer)}\t"
                    f"{NEXT_STEPS[c['next_step'][j]]}\t{_day(int(due[j]))}\t"
                    f"{'待办' if is_open else '已完成'}\tinteraction\n"
                )
            yield _lines(out), len(out)

    loader.copy(
        "tasks", ("owner_id", "customer_id", "title", "due_date", "status", "source"), chunks(), expected
    )


def _tickets(loader: Loader, company: Company, scale: Scale, rng: np.random.Generator) -> None:
    """Tickets about random orders (so about the customers who order most), 10 % without an order."""
    total = scale.tickets
    orders = rng.integers(0, len(company.order_day), total)
    opened = np.minimum(company.order_day[orders] + rng.integers(1, 16, total), HISTORY_DAYS - 1)
    sort = np.argsort(opened, kind="stable")
    orders, opened = orders[sort], opened[sort]
    no_order = rng.random(total) < 0.10
    other_customer = rng.integers(0, scale.customers, total)
    age = (HISTORY_DAYS - 1) - opened
    still_open = np.where(age <= 30, rng.random(total) < 0.6, rng.random(total) < 0.01)
    employee_ids = company.employee_ids
    priority = _choice(rng, PRIORITIES, total)
    category = rng.integers(0, len(COMPLAINT_CATEGORIES), total)
    summary = rng.integers(0, len(TICKET_SUMMARIES), total)
    assignee = rng.integers(0, SERVICE_PER_REGION, total)
    status_pick = rng.random(total)

    def chunks() -> Iterator[tuple[str, int]]:
        for start in range(0, total, CHUNK):
            out = []
            for j in range(start, min(start + CHUNK, total)):
                o = int(orders[j])
                customer = int(other_customer[j]) if no_order[j] else int(company.order_customer[o])
                order = NULL
                if not no_order[j]:
                    day = int(company.order_day[o])
                    order = _order_id(day, o - int(company.day_start[day]))
                if still_open[j]:
                    status = "新建" if status_pick[j] < 0.3 else "处理中"
                else:
                    status = "已解决" if status_pick[j] < 0.6 else "已关闭"
                region = int(company.customer_region[customer])
                out.append(
                    f"{_house_id(TICKET_ID_PREFIX, TICKET_ID_DIGITS, j + 1)}\t{customer_id(customer)}\t"
                    f"{COMPLAINT_CATEGORIES[category[j]]}\t"
                    f"{PRIORITIES[priority[j]][0]}\t{status}\t{_day(int(opened[j]))}\t"
                    f"{employee_ids[company.service_by_region[region][assignee[j]]]}\t"
                    f"{TICKET_SUMMARIES[summary[j]]}\t{order}\n"
                )
            yield _lines(out), len(out)

    columns = [
        "ticket_id",
        "customer_id",
        "category",
        "priority",
        "status",
        "opened_at",
        "assignee_id",
        "summary",
        "order_id",
    ]
    loader.copy("tickets", columns, chunks(), total)


def _opportunities(loader: Loader, company: Company, scale: Scale, rng: np.random.Generator) -> None:
    """Opportunities, companies five times as often; one stage-history row each (its current stage)."""
    total = scale.opportunities
    weight = np.where(company.customer_company, 5.0, 1.0)
    cumulative = np.cumsum(weight)
    customers = np.minimum(
        np.searchsorted(cumulative, rng.random(total) * cumulative[-1], side="right"), scale.customers - 1
    )
    stage = _choice(rng, [(name, share) for name, share, _ in STAGES], total)
    amount = np.round(rng.lognormal(np.log(50_000), 0.9, total), -2).astype(np.int64) + 1000
    created = rng.integers(0, HISTORY_DAYS, total)
    close_offset = rng.integers(5, 121, total)
    names = rng.integers(0, len(OPPORTUNITY_NAMES), total)
    reasons = rng.integers(0, len(LOST_REASONS), total)
    employee_ids = company.employee_ids
    rows = []
    changes = []
    for j in range(total):
        customer = int(customers[j])
        name, _, probability = STAGES[stage[j]]
        closed = name in CLOSED_STAGES
        day = int(created[j])
        expected_close = day + int(close_offset[j]) if closed else HISTORY_DAYS - 1 + int(close_offset[j])
        owner = employee_ids[company.customer_owner[customer]]
        opportunity = _house_id(OPPORTUNITY_ID_PREFIX, OPPORTUNITY_ID_DIGITS, j + 1)
        rows.append(
            f"{opportunity}\t{customer_id(customer)}\t{owner}\t{OPPORTUNITY_NAMES[names[j]]}\t{name}\t"
            f"{amount[j]}\t{_day(expected_close)}\t{probability}\t"
            f"{LOST_REASONS[reasons[j]] if name == '输单' else NULL}\n"
        )
        changes.append(f"{opportunity}\t{NULL}\t{name}\t{_day(day)} 10:00:00+08\t{owner}\n")

    def chunked(lines: list[str]) -> Iterator[tuple[str, int]]:
        for start in range(0, len(lines), CHUNK):
            part = lines[start : start + CHUNK]
            yield _lines(part), len(part)

    columns = [
        "opportunity_id",
        "customer_id",
        "owner_id",
        "name",
        "stage",
        "amount",
        "expected_close",
        "probability",
        "lost_reason",
    ]
    loader.copy("opportunities", columns, chunked(rows), total)
    loader.copy(
        "opportunity_stage_changes",
        ("opportunity_id", "from_stage", "to_stage", "changed_at", "actor_id"),
        chunked(changes),
        total,
    )


# --- measuring -----------------------------------------------------------------------------------


_IN_LIST: Final = re.compile(r"IN \((?:%\(\w+\)s(?:::[A-Z]+)?(?:, )?)+\)")


@dataclass
class StatementTimes:
    """Milliseconds of every SQL statement run while `active`, by statement (IN lists folded)."""

    active: bool = False
    times: dict[str, list[float]] = field(default_factory=dict)
    # statement as grouped -> (ms, statement as run, parameters) of its slowest call
    slowest: dict[str, tuple[float, str, Any]] = field(default_factory=dict)
    _started: list[float] = field(default_factory=list)

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        elapsed = (time.perf_counter() - self._started.pop()) * 1000
        if not self.active:
            return
        key = _IN_LIST.sub("IN (…)", re.sub(r"\s+", " ", statement).strip())
        self.times.setdefault(key, []).append(elapsed)
        if elapsed > self.slowest.get(key, (-1.0, "", None))[0]:
            self.slowest[key] = (elapsed, statement, parameters)


@dataclass(frozen=True)
class Sample:
    customer_id: str
    owner_id: str
    name: str
    phone: str
    company: str | None


@dataclass
class Timing:
    label: str
    actor: str
    ms: list[float]
    before_commit_ms: list[float]
    others: str
    timed_out: bool = False
    """The last call was cancelled by the statement timeout: its time is a lower bound."""

    def row(self, budget: float | None) -> list[object]:
        values = np.array(self.ms)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        before = np.percentile(np.array(self.before_commit_ms), 95)
        verdict = "—" if budget is None else ("yes" if p95 <= budget else "NO")
        bound = "≥ " if self.timed_out else ""
        return [
            self.label + (" (cancelled by the statement timeout)" if self.timed_out else ""),
            self.actor,
            len(values),
            f"{bound}{p50:.1f}",
            f"{bound}{p95:.1f}",
            f"{bound}{p99:.1f}",
            f"{bound}{values.max():.1f}",
            f"{bound}{before:.1f}",
            verdict,
            self.others,
        ]


def _samples(session: Session, ids: list[str]) -> list[Sample]:
    found = {
        row.customer_id: row
        for row in session.execute(
            text(
                "SELECT customer_id, owner_id, name, phone, company FROM customers"
                " WHERE customer_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
    }
    return [
        Sample(found[i].customer_id, found[i].owner_id, found[i].name, found[i].phone, found[i].company)
        for i in ids
        if i in found
    ]


class Actors:
    """Actors built once, as the API's sign-in dependency builds one per request outside the service."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._cache: dict[str, Actor] = {}
        with factory() as session:
            admin = session.execute(
                text("SELECT employee_id FROM employees WHERE role = 'admin' LIMIT 1")
            ).scalar()
        self.admin = self.get(str(admin))

    def get(self, employee_id: str) -> Actor:
        if employee_id not in self._cache:
            with self._factory() as session:
                self._cache[employee_id] = actor_for(session, employee_id)
        return self._cache[employee_id]


def _timed(
    factory: sessionmaker[Session],
    calls: Sequence[tuple[Actor, Any]],
    run: Callable[[Session, Actor, Any], object],
    warm_up: int,
    statements: StatementTimes | None = None,
) -> tuple[list[float], list[float], str]:
    """Milliseconds of each call after the first `warm_up`: total (commit included) and before commit."""
    totals: list[float] = []
    before_commit: list[float] = []
    others = OtherLoad()
    for position, (actor, argument) in enumerate(calls):
        counted = position >= warm_up
        if counted and position == warm_up:
            others = OtherLoad()
        if statements is not None:
            statements.active = counted
        begun = time.perf_counter()
        with factory() as session:
            run(session, actor, argument)
            middle = time.perf_counter()
            session.commit()
        ended = time.perf_counter()
        if counted:
            totals.append((ended - begun) * 1000)
            before_commit.append((middle - begun) * 1000)
    if statements is not None:
        statements.active = False
    return totals, before_commit, others.describe()


def _random_ids(rng: np.random.Generator, customers: int, count: int) -> list[str]:
    picked = rng.choice(customers, size=min(count, customers), replace=False)
    return [customer_id(int(i)) for i in picked]


def measure(engine: Engine, customers: int, samples: int, warm_up: int, seed: int) -> dict[str, Any]:
    """Every timing of the benchmark, plus the 360 view's statements."""
    factory = make_session_factory(engine)
    rng = np.random.default_rng(seed + 100)
    actors = Actors(factory)
    statements = StatementTimes()
    statements.attach(engine)
    with factory() as session:
        picked = _samples(session, _random_ids(rng, customers, warm_up + samples))
        # One customer in five is a company: draw more to have as many companies to search for.
        searched = warm_up + min(samples, SEARCHES)
        companies = [s for s in _samples(session, _random_ids(rng, customers, 8 * searched)) if s.company]
        heavy_ids = [
            str(row[0])
            for row in session.execute(
                text("SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC LIMIT :n"),
                {"n": min(100, samples) + min(warm_up, 10)},
            )
        ]
        heavy = _samples(session, heavy_ids)
        heavy_orders = session.execute(
            text(
                "SELECT min(c), max(c) FROM (SELECT count(*) c FROM orders"
                " WHERE customer_id = ANY(:ids) GROUP BY customer_id) t"
            ),
            {"ids": heavy_ids[min(warm_up, 10) :]},
        ).one()

    def view(session: Session, actor: Actor, sample: Sample) -> object:
        return customer360.customer_view(session, actor, sample.customer_id, today=TODAY).to_json()

    fill_seconds = _fill_caches(factory, actors)
    timings: list[Timing] = []
    _say(f"360 view of {samples} random customers as their owner …")
    ms, before, others = _timed(
        factory, [(actors.get(s.owner_id), s) for s in picked], view, warm_up, statements
    )
    timings.append(Timing("360 view, random customers", "owner (sales)", ms, before, others))
    _say(f"360 view of {samples} random customers as an admin …")
    ms, before, others = _timed(factory, [(actors.admin, s) for s in picked], view, warm_up, statements)
    timings.append(Timing("360 view, random customers", "admin", ms, before, others))
    heavy_warm = min(warm_up, 10)
    _say(f"360 view of the {len(heavy) - heavy_warm} customers with most orders …")
    ms, before, others = _timed(
        factory, [(actors.get(s.owner_id), s) for s in heavy], view, heavy_warm, statements
    )
    timings.append(
        Timing(
            f"360 view, top customers ({heavy_orders[0]}–{heavy_orders[1]} orders)",
            "owner (sales)",
            ms,
            before,
            others,
        )
    )

    cold_statements = StatementTimes()
    cold_statements.attach(engine)
    timings.append(_cold_view(factory, actors, view, cold_statements))

    def find(session: Session, actor: Actor, query: str) -> object:
        return customer360.find_customers(session, actor, query)

    searches = picked[:searched]
    companies = companies[:searched]

    def short_company(sample: Sample) -> str:
        return (customer360.company_short_names(sample.company or "") or [sample.company or ""])[0]

    ways: list[tuple[str, Callable[[Sample], str], list[Sample]]] = [
        ("name", lambda s: s.name, searches),
        ("phone", lambda s: s.phone, searches),
        ("company (short name)", short_company, companies),
    ]
    for what, pick, among in ways:
        for who in ("owner (sales)", "admin"):
            calls = [(actors.admin if who == "admin" else actors.get(s.owner_id), pick(s)) for s in among]
            _say(f"find_customers by {what} as {who} …")
            ms, before, others = _timed(factory, calls, find, warm_up)
            timings.append(Timing(f"find_customers by {what}", who, ms, before, others))

    visit_statements = StatementTimes()
    visit_statements.attach(engine)
    timings.append(_measure_visits(factory, actors, picked, warm_up, samples, visit_statements))
    return {
        "timings": timings,
        "statements": statements,
        "visit_statements": visit_statements,
        "cold_statements": cold_statements,
        "fill_seconds": fill_seconds,
    }


def _single_order_customers(factory: sessionmaker[Session]) -> list[Sample]:
    """Three customers with one counted order 90–300 days ago: their view needs both store-wide figures."""
    with factory() as session:
        rows = session.execute(
            text(
                "SELECT customer_id FROM orders WHERE status NOT IN ('待付款', '已取消', '已退款')"
                " GROUP BY customer_id HAVING count(*) = 1"
                " AND max(order_date) BETWEEN :early AND :late LIMIT 3"
            ),
            {"early": TODAY - timedelta(days=300), "late": TODAY - timedelta(days=90)},
        ).all()
        return _samples(session, [str(row[0]) for row in rows])


def _fill_caches(factory: sessionmaker[Session], actors: Actors) -> float:
    """Fill the 360 view's hourly caches (tier cut-offs, population gap) before the timed rows.

    With the product's own code, on a session tuned so that the population-gap query finishes
    (one process, no JIT, 256 MB to sort in): with the server's defaults it ran for minutes at
    10 million orders, and the timed rows are about the other 59 minutes of the hour. Returns seconds.
    """
    sample = _single_order_customers(factory)[0]
    _say("filling the 360 view's hourly caches (population gap, tier cut-offs) …")
    begun = time.perf_counter()
    with factory() as session:
        for setting in ("max_parallel_workers_per_gather = 0", "jit = off", "work_mem = '256MB'"):
            session.execute(text(f"SET LOCAL {setting}"))
        customer360.customer_view(session, actors.get(sample.owner_id), sample.customer_id, today=TODAY)
        session.rollback()  # no audit row: not a view anybody asked for
    return time.perf_counter() - begun


def _cold_view(
    factory: sessionmaker[Session],
    actors: Actors,
    view: Callable[[Session, Actor, Sample], object],
    statements: StatementTimes,
) -> Timing:
    """The 360 view right after its two store-wide figures expired (once an hour per process).

    The value tier's spend cut-offs and the lapse rule's population gap read every order; they are
    cached per database and day for an hour. The customer has one counted order, 90–300 days ago,
    so that both are recomputed.
    """
    chosen = _single_order_customers(factory)
    _say(
        f"360 view after the hourly caches expired ({len(chosen)} calls, "
        f"cancelled after {COLD_TIMEOUT_S:.0f} s) …"
    )
    totals: list[float] = []
    before: list[float] = []
    others = OtherLoad()
    timed_out = False
    for sample in chosen:
        lapse.clear_population_gap_cache()
        actor = actors.get(sample.owner_id)
        statements.active = True
        begun = time.perf_counter()
        with factory() as session:
            # A statement that runs for minutes must not hold a core of this shared machine.
            session.execute(text(f"SET LOCAL statement_timeout = '{COLD_TIMEOUT_S:.0f}s'"))
            try:
                view(session, actor, sample)
            except OperationalError:
                timed_out = True
                session.rollback()
            middle = time.perf_counter()
            session.commit()
        statements.active = False
        totals.append((time.perf_counter() - begun) * 1000)
        before.append((middle - begun) * 1000)
        if timed_out:
            break  # one cancelled call says it; more would only burn the machine
    return Timing(
        "360 view, first after the hourly caches expired",
        "owner (sales)",
        totals,
        before,
        others.describe(),
        timed_out=timed_out,
    )


def _measure_visits(
    factory: sessionmaker[Session],
    actors: Actors,
    picked: list[Sample],
    warm_up: int,
    samples: int,
    statements: StatementTimes,
) -> Timing:
    """`save_visit` of a visit with a next date (an interaction and a task) for distinct customers."""
    # A summary of this run only: `save_visit` treats the same visit saved again as a retry.
    run = time.strftime("%H%M%S")

    def draft(sample: Sample, number: int) -> VisitDraft:
        return VisitDraft(
            customer_id=sample.customer_id,
            kind="拜访",
            occurred_at=TODAY,
            summary=f"聊了二期报价，客户比较感兴趣（{run}）",
            next_step="发送报价单",
            next_date=TODAY + timedelta(days=2 + number % 10),
        )

    def save(session: Session, actor: Actor, payload: VisitDraft) -> object:
        saved = save_visit(session, actor, payload)
        if not saved.created or saved.task_id is None:
            raise SystemExit(f"save_visit did not save a new visit and task: {saved}")
        return saved

    calls = [(actors.get(s.owner_id), draft(s, n)) for n, s in enumerate(picked)]
    warm = min(warm_up, VISIT_WARM_UP)
    _say(f"save_visit: {warm} warm-up saves …")
    first, _, _ = _timed(factory, calls[: warm + 1], save, warm)
    # Slow saves (seconds each) are timed fewer times, so that the run stays within the hour.
    count = min(samples, VISIT_SAVES if first[0] < SLOW_SAVE_MS else SLOW_VISIT_SAVES)
    _say(f"save_visit for {count} visits (the first took {first[0]:.0f} ms) …")
    ms, before, others = _timed(factory, calls[warm + 1 : warm + 1 + count], save, 0, statements)
    return Timing("save_visit (interaction + follow-up task)", "owner (sales)", ms, before, others)


def _statement_table(statements: StatementTimes, views: int) -> tuple[list[list[object]], str]:
    """The 360 view's statements, the most time per view first, and the top SELECT among them."""
    ranked = sorted(statements.times.items(), key=lambda item: -sum(item[1]))
    rows: list[list[object]] = []
    for statement, ms in ranked[:8]:
        values = np.array(ms)
        p50, p95 = np.percentile(values, [50, 95])
        short = statement if len(statement) <= 120 else statement[:117] + "…"
        rows.append(
            [
                f"`{short.replace('|', '/')}`",
                f"{len(values) / max(views, 1):.2f}",
                f"{values.sum() / max(views, 1):.2f}",
                f"{p50:.2f}",
                f"{p95:.2f}",
                f"{values.max():.1f}",
            ]
        )
    top = next((s for s, _ in ranked if s.upper().startswith(("SELECT", "WITH"))), "")
    return rows, top


def _explain(engine: Engine, statements: StatementTimes, key: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement's slowest call, with its parameters."""
    _, statement, parameters = statements.slowest[key]
    with engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
        connection.rollback()
    return "\n".join(str(row[0]) for row in plan)


# --- the database --------------------------------------------------------------------------------


def _server_url() -> URL:
    raw = get_store_settings().test_postgres_url or DEFAULT_SERVER
    return make_url(raw).set(drivername="postgresql+psycopg")


def prepare_bench_database(server: URL, database: str, *, reuse: bool) -> URL:
    """The URL of the bench's own database: an existing one with `reuse`, else created afresh.

    Refuses `test`, `postgres` and names that are not plain identifiers (SystemExit).
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database) or database in ("test", "postgres"):
        raise SystemExit(f"refusing to use the database {database!r}: give the bench its own")
    if reuse:
        if not _exists(server, database):
            raise SystemExit(f"--reuse: there is no database {database!r}; run with --keep first")
    else:
        _say(f"creating the database {database} on {server.host}:{server.port} …")
        run_outside_transaction(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        run_outside_transaction(server, f'CREATE DATABASE "{database}"')
    return server.set(database=database)


def _exists(server: URL, database: str) -> bool:
    engine = create_engine_for(server.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            return (
                connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
                ).first()
                is not None
            )
    finally:
        engine.dispose()


def _stored_generation(engine: Engine) -> dict[str, float]:
    """The generation timings a run that built this database left in its comment ({} if none)."""
    with engine.connect() as connection:
        comment = connection.execute(
            text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                " WHERE datname = current_database()"
            )
        ).scalar()
    try:
        stored = json.loads(comment or "{}")
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in stored.items()} if isinstance(stored, dict) else {}


def _conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _sizes(engine: Engine) -> tuple[str, dict[str, int]]:
    with engine.connect() as connection:
        size = str(
            connection.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar()
        )
        counts = {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)  # noqa: S608
            for table in ("employees", "products", *BULK_TABLES)
        }
    return size, counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.staff_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument(
        "--samples", type=int, default=500, help="timed 360 views per row (after the warm-up)"
    )
    parser.add_argument("--warm-up", type=int, default=50)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure an existing database, kept by --keep")
    parser.add_argument("--generate-only", action="store_true", help="generate, keep and stop")
    args = parser.parse_args(argv)
    started = time.monotonic()
    # The project clock (crm_store.clock) on the data's reference day: save_visit checks its dates by it.
    pin_today(TODAY)
    server = _server_url()
    scale = Scale(args.customers, args.orders)
    generation: dict[str, float] = {}
    generated_here = not args.reuse
    bench_url = prepare_bench_database(server, args.database, reuse=args.reuse)
    engine = create_engine_for(bench_url.render_as_string(hide_password=False))
    keep = args.keep or args.generate_only or args.reuse
    try:
        if generated_here:
            generation = _build(engine, bench_url, scale, args.seed)
            # Kept with the database, so that a later --reuse can still report how long it took.
            run_outside_transaction(
                server, f"COMMENT ON DATABASE \"{args.database}\" IS '{json.dumps(generation)}'"
            )
        else:
            generation = _stored_generation(engine)
        size, counts = _sizes(engine)
        scale = Scale(counts["customers"], counts["orders"])
        if args.generate_only:
            _say(f"generated {size}; kept as {args.database}")
            return
        results = measure(engine, scale.customers, args.samples, args.warm_up, args.seed)
        _write(engine, results, scale, counts, size, generation, args)
    finally:
        engine.dispose()
        if not keep:
            _say(f"dropping the database {args.database} …")
            run_outside_transaction(server, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    print(f"done in {(time.monotonic() - started) / 60:.1f} min")


def _build(engine: Engine, url: URL, scale: Scale, seed: int) -> dict[str, float]:
    """Migrate and fill the database; seconds per step."""
    begun = time.monotonic()
    migrate(engine)
    seconds = {"migrate": time.monotonic() - begun}
    niced = False
    with contextlib.suppress(OSError):
        os.nice(5)
        niced = True
    loader = Loader(_conninfo(url))
    try:
        indexes = _secondary_indexes(loader)
        _say(f"dropping {len(indexes)} secondary indexes for the load …")
        for name, _ in indexes:
            loader.execute(f'DROP INDEX "{name}"')
        _say(f"generating {scale.customers:,} customers and {scale.orders:,} orders (seed {seed}) …")
        load_begun = time.monotonic()
        generate(loader, scale, seed)
        seconds["generate + COPY"] = time.monotonic() - load_begun
        _say(f"rebuilding {len(indexes)} indexes …")
        for position, (name, definition) in enumerate(indexes, 1):
            loader.execute(definition, "indexes")
            _say(f"  index {position}/{len(indexes)} {name} ({loader.seconds['indexes']:.0f} s so far)")
        seconds["indexes"] = loader.seconds.get("indexes", 0.0)
        _say("VACUUM ANALYZE …")
        for table in ("employees", "products", *BULK_TABLES):
            loader.execute(f"VACUUM (ANALYZE) {table}", "vacuum analyze")
        seconds["vacuum analyze"] = loader.seconds.get("vacuum analyze", 0.0)
        seconds.update(
            {
                f"copy {table}": s
                for table, s in loader.seconds.items()
                if table not in ("indexes", "vacuum analyze")
            }
        )
    finally:
        loader.close()
        if niced:
            with contextlib.suppress(OSError):
                os.nice(-5)  # measure at normal priority (allowed as root; otherwise stays niced)
    seconds["total"] = time.monotonic() - begun
    return seconds


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _write(
    engine: Engine,
    results: dict[str, Any],
    scale: Scale,
    counts: dict[str, int],
    size: str,
    generation: dict[str, float],
    args: argparse.Namespace,
) -> None:
    timings: list[Timing] = results["timings"]
    statements: StatementTimes = results["statements"]
    views = sum(len(t.ms) for t in timings if t.label.startswith("360"))
    statement_rows, slowest = _statement_table(statements, views)
    view_p95 = max(
        np.percentile(np.array(t.ms), 95) for t in timings if t.label.startswith("360 view, random")
    )
    plan = _explain(engine, statements, slowest) if slowest else ""
    columns = [
        "operation",
        "as",
        "calls",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "p95 before commit ms",
        f"p95 ≤ {P95_BUDGET_MS:.0f} ms",
        "others' CPU",
    ]
    rows = [
        t.row(P95_BUDGET_MS if t.label.startswith("360") and "expired" not in t.label else None)
        for t in timings
    ]
    count_line = ", ".join(f"{table} {count:,}" for table, count in counts.items())
    gen_rows = [[step, f"{s:.1f}"] for step, s in generation.items()]
    command = "`.venv-app/bin/python -m bench.staff_scale" + (
        f" --customers {args.customers} --orders {args.orders}`"
        if (args.customers, args.orders) != (1_000_000, 10_000_000)
        else "`"
    )
    note = [
        f"Store: PostgreSQL, {scale.customers:,} customers and {scale.orders:,} orders, {size} on disk "
        f"(rows: {count_line}). Reference day {TODAY.isoformat()}; data seeded ({args.seed}), synthetic.",
        "",
        f"- 360 view: `customer360.customer_view(session, actor, id, today=…)` and `to_json()`, each call in "
        f"a new session and committed (its audit row), {args.warm_up} warm-up calls not counted; random "
        "customers drawn uniformly (most have a few orders), then the customers with the most orders. "
        "The actor is built before the clock starts.",
        "- find_customers: the sampled customers' full names (many namesakes at this size), their "
        "11-digit phones, and the short names of their companies (华峰科技有限公司 → 华峰科技), limit 5, "
        "as the customer's owner and as an admin.",
        "- 360 view, first after the hourly caches expired: the value tier's spend cut-offs and the lapse "
        "rule's population gap read every order and are cached for an hour per process; the caches are "
        "emptied before each of these calls (customers with one counted order, 90–300 days ago), which "
        f"run with the server's settings and are cancelled after {COLD_TIMEOUT_S:.0f} s. Before the "
        "timed rows the bench fills both caches with the same product code on a session with one "
        "process, no JIT and work_mem 256 MB: "
        f"{results['fill_seconds']:.1f} s.",
        "- save_visit: one interaction and one follow-up task for a customer of the salesperson, "
        "commit included.",
        f"- others' CPU: the share of the {os.cpu_count()} cores other processes used while the row "
        "was timed.",
        "",
        f"360 view p95 (worst of the random rows): {view_p95:.1f} ms — "
        + ("within" if view_p95 <= P95_BUDGET_MS else "ABOVE")
        + f" the {P95_BUDGET_MS:.0f} ms bar.",
        "",
        "The 360 view's SQL statements (timed at the driver, all the timed views above), the most time "
        "per view first:",
        "",
        _markdown(
            ["statement", "calls per view", "ms per view", "p50 ms", "p95 ms", "max ms"], statement_rows
        ),
    ]
    if plan:
        note += [
            "",
            "EXPLAIN (ANALYZE, BUFFERS) of the SELECT that takes the most time per view, with the "
            "parameters of its slowest call (run again after the timings, so warmer):",
            "",
            "```",
            plan,
            "```",
        ]
    cold_statements: StatementTimes = results["cold_statements"]
    colds = sum(len(t.ms) for t in timings if "expired" in t.label)
    cold_rows, _ = _statement_table(cold_statements, colds)
    note += [
        "",
        "The statements of the 360 view after the hourly caches expired, the most time per view first "
        f"(a statement cancelled by the {COLD_TIMEOUT_S:.0f} s timeout is not in it):",
        "",
        _markdown(["statement", "calls per view", "ms per view", "p50 ms", "p95 ms", "max ms"], cold_rows),
    ]
    visit_statements: StatementTimes = results["visit_statements"]
    saves = sum(len(t.ms) for t in timings if t.label.startswith("save_visit"))
    visit_rows, visit_top = _statement_table(visit_statements, saves)
    note += [
        "",
        "The visit save's SQL statements, the most time per save first (timed at the driver's execute: "
        "the rows of a streamed result, such as the id allocation's `LIKE 'I%' ORDER BY length(…)` of "
        "`crm_store.ids`, are fetched after it, so its real cost is in the EXPLAIN below):",
        "",
        _markdown(["statement", "calls per save", "ms per save", "p50 ms", "p95 ms", "max ms"], visit_rows),
    ]
    if visit_top:
        note += [
            "",
            "EXPLAIN (ANALYZE, BUFFERS) of the visit save's SELECT that takes the most time per save:",
            "",
            "```",
            _explain(engine, visit_statements, visit_top),
            "```",
        ]
    if generation:
        note += [
            "",
            "Generation (seconds; niced, secondary indexes built after the load"
            + ("; measured when the database was built, before this `--reuse` run" if args.reuse else "")
            + "):",
            "",
            _markdown(["step", "s"], gen_rows),
        ]
    else:
        note += ["", "Generation: not in this run (`--reuse` of a database generated earlier)."]
    note += ["", f"Command: {command}."]
    path = report(
        "staff_scale",
        f"Staff side at scale: 360 view, search and visit save ({scale.customers:,} customers, "
        f"{scale.orders:,} orders, PostgreSQL)",
        columns,
        rows,
        note="\n".join(note),
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
