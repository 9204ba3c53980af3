"""Rate limits: chat turns per conversation, failed sign-ins per employee id and per address.

A chat turn costs Rasa's and the action server's time, a sign-in an argon2 verification: a script
must not be able to spend either for everyone. Three budgets, in the `limits` notation of
`ApiSettings` (docs/security.md):

- `chat_rate_limit`: turns of one conversation (its Rasa sender id, so `/api/chat` and the
  Socket.IO channel share one budget); every turn counts, an empty one too. Over it the turn gets
  429 and one polite bot message, in the chat's own shape, without reaching Rasa.
- `login_account_rate_limit`, `login_address_rate_limit`: failed sign-ins (401 and 423) of one
  employee id and from one client address. Only failures count, so staff signing in many times a
  day never meet them; a request over either is refused with 429 before the password is checked,
  so a flood costs no hashing. The account lock-out (`crm_store.accounts`, 423 after 5 failures in a
  row) comes first and says until when; the 429 is for whoever keeps trying after it.

Every 429 carries `Retry-After` (seconds until the oldest counted request leaves the window: a
moving window, `limits`' `MovingWindowRateLimiter`).

Counters live in Redis when `CRM_REDIS_URL` is set, so that every API worker shares them, and in
this process's memory otherwise (`limits`' synchronous memory storage: see `InMemoryLimiter`).
When Redis cannot be reached the request goes through and a warning is logged: the limits guard
capacity, and the lock-out still guards passwords. Keys hold a digest of the conversation,
employee id or address, never the value itself.
"""

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Final

from fastapi import Depends, Request
from limits import RateLimitItem, WindowStats, parse_many, storage, strategies
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from api.texts import wording
from crm_store.settings import ApiSettings

__all__ = [
    "CHAT_LIMITED_REPLY",
    "KEY_PREFIX",
    "LOGIN_LIMITED_MESSAGE",
    "RateLimits",
    "RateLimitsDep",
    "Refusal",
    "client_address",
    "get_rate_limits",
]

logger = logging.getLogger(__name__)

CHAT_LIMITED_REPLY: Final = wording("rate_limit.chat")
LOGIN_LIMITED_MESSAGE: Final = wording("rate_limit.login")
KEY_PREFIX: Final = "crm-rate-limit"
# Each request waits at most this long for Redis before it is let through unlimited.
REDIS_TIMEOUT_S: Final = 0.5


@dataclass(frozen=True)
class Refusal:
    """A request over its budget, and when the client may try again."""

    retry_after_s: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

    @property
    def retry_after_min(self) -> int:
        """Whole minutes, rounded up, for messages that speak in minutes."""
        return max(1, math.ceil(self.retry_after_s / 60))


@lru_cache(maxsize=32)
def _items(notation: str) -> tuple[RateLimitItem, ...]:
    # Settings validate the notation already (ApiSettings._limits_notation).
    return tuple(parse_many(notation))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def client_address(request: Request) -> str:
    """The client's address as the server saw it (behind a proxy: uvicorn's `--forwarded-allow-ips`)."""
    return request.client.host if request.client is not None else "unknown"


class InMemoryLimiter:
    """`limits`' moving window over its synchronous memory storage, with the async limiter's methods.

    The asyncio memory storage of `limits` (5.8) clears expired entries after a hit by handing every
    key, one by one, to a worker thread: with 500 conversations in the last minute that cost about
    17 CPU ms a turn, and it grows with the keys; the synchronous storage clears them in place, in
    0.7 ms (bench/rate_limit_cost.py). Its calls only take a lock and search a short list, so they
    can run on the event loop.
    """

    def __init__(self) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._limiter.hit(item, *identifiers)

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._limiter.test(item, *identifiers)

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        return self._limiter.get_window_stats(item, *identifiers)


class RateLimits:
    """The counters of one API process: in memory, or in the Redis every worker shares."""

    def __init__(
        self, limiter: MovingWindowRateLimiter | InMemoryLimiter, pool: ConnectionPool | None = None
    ) -> None:
        self._limiter = limiter
        self._pool = pool

    @classmethod
    def connect(cls, redis_url: str | None) -> "RateLimits":
        """Counters in Redis at `redis_url`, or in memory when it is None (nothing is contacted yet)."""
        if redis_url is None:
            return cls(InMemoryLimiter())
        pool = ConnectionPool.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        redis = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            wrap_exceptions=True,
            connection_pool=pool,  # type: ignore[arg-type]  # passed on to redis.asyncio.Redis
        )
        return cls(MovingWindowRateLimiter(redis), pool)

    async def aclose(self) -> None:
        """Close the connections to Redis, if any."""
        if self._pool is not None:
            await self._pool.aclose()

    async def _refusal(self, spent: list[RateLimitItem], *ids: str) -> Refusal:
        # Only the spent budgets say when to come back: a roomy "300 per hour" beside a spent
        # "10 per 10 seconds" must not ask for an hour.
        resets = [(await self._limiter.get_window_stats(item, *ids)).reset_time for item in spent]
        return Refusal(retry_after_s=max(1, math.ceil(max(resets) - time.time())))

    async def chat_turn(self, conversation: str, notation: str) -> Refusal | None:
        """Count one turn of `conversation` (a Rasa sender id); a Refusal when it is over budget."""
        ids = ("chat", _digest(conversation))
        items = _items(notation)
        try:
            for item in items:
                if not await self._limiter.hit(item, *ids):
                    return await self._refusal([item], *ids)
        except StorageError as exc:
            logger.warning("chat rate limit not checked (%s)", type(exc.storage_error).__name__)
        return None

    async def login_refusal(self, username: str, address: str, settings: ApiSettings) -> Refusal | None:
        """A Refusal when the failed sign-ins of `username` or from `address` are over budget."""
        budgets = self._login_budgets(username, address, settings)
        refusals: list[Refusal] = []
        try:
            for items, ids in budgets:
                spent = [item for item in items if not await self._limiter.test(item, *ids)]
                if spent:
                    refusals.append(await self._refusal(spent, *ids))
        except StorageError as exc:
            logger.warning("sign-in rate limit not checked (%s)", type(exc.storage_error).__name__)
            return None
        return max(refusals, key=lambda r: r.retry_after_s, default=None)

    async def login_failed(self, username: str, address: str, settings: ApiSettings) -> None:
        """Count one failed sign-in of `username` from `address`."""
        try:
            for items, ids in self._login_budgets(username, address, settings):
                for item in items:
                    await self._limiter.hit(item, *ids)
        except StorageError as exc:
            logger.warning("failed sign-in not counted (%s)", type(exc.storage_error).__name__)

    @staticmethod
    def _login_budgets(
        username: str, address: str, settings: ApiSettings
    ) -> list[tuple[tuple[RateLimitItem, ...], tuple[str, ...]]]:
        return [
            (_items(settings.login_account_rate_limit), ("login-account", _digest(username))),
            (_items(settings.login_address_rate_limit), ("login-address", _digest(address))),
        ]


# async although it waits for nothing: a plain `def` dependency costs a worker-thread hop (api/deps.py).
async def get_rate_limits(request: Request) -> RateLimits:
    """The app's counters, created in the lifespan.

    Raises:
        RuntimeError: If the app was not started through its lifespan.
    """
    limits = getattr(request.app.state, "rate_limits", None)
    if not isinstance(limits, RateLimits):
        raise RuntimeError("Rate limits missing: the app was not started through its lifespan")
    return limits


RateLimitsDep = Annotated[RateLimits, Depends(get_rate_limits)]
