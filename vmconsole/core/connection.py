"""One RADOS connection per process, shared by the state reader and the services."""

from __future__ import annotations

import threading

from vmconsole.backends.rbd import RbdSession
from vmconsole.config import CephSection


class CephConnection:
    """Opens the connection on first use. After the cluster stopped answering, ``retire`` makes the next
    use open a fresh one; the retired one is closed with the others at ``close``, never under a task
    that may still be using it."""

    def __init__(self, config: CephSection) -> None:
        self.config = config
        self._session: RbdSession | None = None
        self._retired: list[RbdSession] = []
        self._lock = threading.Lock()

    def session(self) -> RbdSession:
        with self._lock:
            if self._session is None:
                self._session = RbdSession(self.config)
            return self._session

    def retire(self) -> None:
        with self._lock:
            if self._session is not None:
                self._retired.append(self._session)
                self._session = None

    def close(self) -> None:
        with self._lock:
            sessions = [*self._retired, *([self._session] if self._session is not None else [])]
            self._session = None
            self._retired = []
        for session in sessions:
            session.close()
