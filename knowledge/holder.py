"""One way for a process to get its knowledge service: loaded once, in a thread, shared by all callers.

Loading the encoder and the index takes seconds, so a process never loads it at import or at
start-up on the caller's thread. The API and the action server each create one
`KnowledgeHolder` and ask it for the service:

* `get()` never blocks: the service if it is ready, otherwise None (and the load is started), so
  the API can answer "please retry" (503) instead of making a client wait;
* `require(timeout)` blocks until the load has finished and returns the service, or raises
  `knowledge.errors.KnowledgeUnavailable` when the load failed or did not finish in time. Every
  caller waits for the same load: a question that arrives while the start-up load runs never
  loads a second copy of the model.

A load that failed stays failed (state "failed", logged once with its traceback); the process
must be restarted once the cause (a missing model, say) is fixed, as before this module existed.

    idle ──start_loading()/get()/require()──▶ loading ──▶ ready
                                                  └─────▶ failed
"""

import logging
import threading
from collections.abc import Callable
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from knowledge.errors import KnowledgeUnavailable
from knowledge.service import KnowledgeService

__all__ = ["HolderState", "KnowledgeHolder"]

logger = logging.getLogger(__name__)

HolderState = Literal["idle", "loading", "ready", "failed"]


class KnowledgeHolder:
    """Loads the knowledge service once, in a background thread, and hands it out when ready."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        load: Callable[[sessionmaker[Session]], KnowledgeService] | None = None,
    ) -> None:
        """Remember how to load; nothing is loaded until the service is first asked for.

        `load` builds the service from the session factory (default: `KnowledgeService`); tests
        pass a stand-in so that no model is read.
        """
        self._sessions = sessions
        self._load_service: Callable[[sessionmaker[Session]], KnowledgeService] = (
            load if load is not None else KnowledgeService
        )
        self._service: KnowledgeService | None = None
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()

    @property
    def state(self) -> HolderState:
        """Where the load stands: not started, running, done, or failed for good."""
        if self._service is not None:
            return "ready"
        if self._failure is not None:
            return "failed"
        return "loading" if self._thread is not None else "idle"

    def start_loading(self) -> None:
        """Start the background load unless it has already been started (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="knowledge-load", daemon=True)
                self._thread.start()

    def get(self) -> KnowledgeService | None:
        """The service if loaded; otherwise start loading it and return None at once."""
        if self._service is None:
            self.start_loading()
        return self._service

    def require(self, timeout: float | None = None) -> KnowledgeService:
        """The service, waiting up to `timeout` seconds (None: as long as it takes) for its load.

        Raises KnowledgeUnavailable when the load failed (the original error is its `__cause__`)
        or has not finished within `timeout`.
        """
        service = self.get()
        if service is not None:
            return service
        self.wait(timeout)
        service = self._service
        if service is not None:
            return service
        failure = self._failure
        if failure is not None:
            raise KnowledgeUnavailable(
                f"the knowledge service could not be loaded ({type(failure).__name__})"
            ) from failure
        raise KnowledgeUnavailable(f"the knowledge service was not loaded within {timeout} s")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a started load has finished (ready or failed), at most `timeout` seconds.

        Returns whether it has finished; returns False at once when no load was started.
        """
        if self._thread is None:
            return False
        return self._finished.wait(timeout)

    def notify_changed(self) -> None:
        """FAQs were edited in this process: update the index now (if it is loaded)."""
        if self._service is not None:
            self._service.notify_changed()

    def _load(self) -> None:
        try:
            self._service = self._load_service(self._sessions)
        except Exception as exc:  # reported by state/require; the thread must not die loudly
            self._failure = exc
            logger.exception("knowledge base could not be loaded")
        finally:
            self._finished.set()
