"""What the clients of Tencent's platform APIs (WeChat Official Account, WeCom) share.

- `TimeoutSession`: wechatpy fetches access tokens without a timeout; every request here has one.
- `token_storage`: where a client keeps its access token. WeChat invalidates an Official Account's
  token five minutes after a new one is fetched, so API workers that each fetched their own would
  keep invalidating each other's: with `CRM_REDIS_URL` they share one token in Redis (wechatpy's
  `RedisStorage`); without it, each process keeps its own in memory. When Redis cannot be reached
  the token is kept in memory meanwhile (a warning is logged), so a message still goes out.
"""

import logging
from typing import Any, Final

import redis
import requests
from wechatpy.session import SessionStorage
from wechatpy.session.memorystorage import MemoryStorage
from wechatpy.session.redisstorage import RedisStorage

__all__ = ["TimeoutSession", "token_storage"]

logger = logging.getLogger(__name__)

_REDIS_TIMEOUT_S: Final = 0.5


class TimeoutSession(requests.Session):
    """A requests session that never waits forever: `timeout_s` unless the call gives its own."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        return super().request(*args, **kwargs)


class _SharedStorage(SessionStorage):  # type: ignore[misc]  # wechatpy has no type hints
    """Redis, and this process's memory whenever Redis fails."""

    def __init__(self, shared: RedisStorage) -> None:
        self._shared = shared
        self._local = MemoryStorage()

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self._shared.get(key, default)
        except redis.RedisError as exc:
            logger.warning("access token read from memory: Redis unavailable (%s)", type(exc).__name__)
            return self._local.get(key, default)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        self._local.set(key, value, ttl)
        try:
            self._shared.set(key, value, ttl)
        except redis.RedisError as exc:
            logger.warning("access token kept in memory only: Redis unavailable (%s)", type(exc).__name__)

    def delete(self, key: str) -> None:
        self._local.delete(key)
        try:
            self._shared.delete(key)
        except redis.RedisError as exc:
            logger.warning("access token not deleted in Redis (%s)", type(exc).__name__)


def token_storage(redis_url: str | None, prefix: str) -> SessionStorage:
    """The token storage for clients of this process: shared in Redis at `redis_url`, or memory."""
    if redis_url is None:
        return MemoryStorage()
    client = redis.Redis.from_url(
        redis_url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
    )
    return _SharedStorage(RedisStorage(client, prefix=prefix))
