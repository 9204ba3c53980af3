"""Which Rasa server takes a conversation's turn, when several share one tracker and lock store.

`crmbot up --scale` runs Rasa replicas on the PostgreSQL tracker store and Rasa's Redis lock store
(docs/operations.md, Running at scale), so any replica can take any turn of any conversation in
order. The API still sends each conversation to one preferred replica, chosen by rendezvous hashing
of its id: the replica's caches stay warm for it, its turns rarely wait for the lock of another
replica, and when a replica leaves or comes back only its own conversations move.

A replica that refuses the connection, times out connecting or fails a turn (HTTP 5xx) is left out
of rotation for `CRM_RASA_RETRY_AFTER_S`, then tried again with the next turn that prefers it; the
first turn it answers puts it back (like nginx's `max_fails=1 fail_timeout=…`). Only a turn that
never reached a replica is sent to the next one: a turn that reached one and failed may already be
in the tracker, and sending it again could answer it twice, so it gets the polite 503.

The state is per API worker, in memory: each worker learns on its own that a replica is down, at
the cost of one refused connection.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from functools import cache

import httpx

__all__ = ["NOT_DELIVERED", "RasaServers", "rasa_servers"]

logger = logging.getLogger(__name__)

NOT_DELIVERED: tuple[type[httpx.HTTPError], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
"""The errors of a request that never reached the server: safe to send to another replica."""


def _weight(server: str, conversation: str) -> bytes:
    return hashlib.blake2b(f"{server}\n{conversation}".encode(), digest_size=8).digest()


class RasaServers:
    """The Rasa servers of one API worker, with the ones that recently failed left out."""

    def __init__(
        self, urls: tuple[str, ...], retry_after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not urls:
            raise ValueError("at least one Rasa server is needed")
        self.urls = urls
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def order(self, conversation: str) -> list[str]:
        """The servers to try for this conversation's turn, in order.

        The conversation's own ranking (rendezvous hashing), with the servers that are out of
        rotation moved to the end: when every server failed recently, they are all still tried.
        """
        ranked = sorted(self.urls, key=lambda url: _weight(url, conversation), reverse=True)
        now = self._clock()
        with self._lock:
            resting = {url for url, until in self._down_until.items() if until > now}
        return [url for url in ranked if url not in resting] + [url for url in ranked if url in resting]

    def failed(self, url: str, reason: str) -> None:
        """Leave `url` out of rotation for `retry_after_s` (logged once when it leaves)."""
        now = self._clock()
        with self._lock:
            was_in = self._down_until.get(url, 0.0) <= now
            self._down_until[url] = now + self.retry_after_s
        if was_in and len(self.urls) > 1:
            logger.warning("Rasa server %s out of rotation for %.0f s: %s", url, self.retry_after_s, reason)

    def answered(self, url: str) -> None:
        """Put `url` back into rotation after it answered a turn."""
        with self._lock:
            came_back = self._down_until.pop(url, None) is not None
        if came_back and len(self.urls) > 1:
            logger.info("Rasa server %s back in rotation", url)


@cache
def rasa_servers(urls: tuple[str, ...], retry_after_s: float) -> RasaServers:
    """This process's `RasaServers` for these settings (one per distinct list of servers)."""
    return RasaServers(urls, retry_after_s)
