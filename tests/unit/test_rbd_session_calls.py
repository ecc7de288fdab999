"""Every call of the RADOS session that reaches the cluster is counted in, so that closing the
connection waits for it (librados aborts the process on a call made on a shut-down connection)."""

from __future__ import annotations

import ast
import inspect

from vmconsole.backends import rbd as rbd_backend

REACHES_THE_CLUSTER = ("self.ioctx", "self._cluster", "self.rbd", "rbd.Image(", "rbd.Group(")
# not counted themselves: the connection's own life, and helpers only ever called by counted methods
OWN = {"__init__", "close", "__enter__", "__exit__", "in_use", "_snapshots"}


def test_every_method_that_reaches_the_cluster_is_counted_in() -> None:
    source = inspect.getsource(rbd_backend.RbdSession)
    tree = ast.parse(source)
    session = tree.body[0]
    assert isinstance(session, ast.ClassDef)
    missing = []
    for method in session.body:
        if not isinstance(method, ast.FunctionDef) or method.name in OWN:
            continue
        body = ast.get_source_segment(source, method) or ""
        if not any(marker in body for marker in REACHES_THE_CLUSTER):
            continue
        decorated = any(isinstance(d, ast.Name) and d.id == "_uses_connection" for d in method.decorator_list)
        if not decorated and "self.in_use()" not in body:
            missing.append(method.name)
    assert missing == [], f"not counted in by close(): {missing}"


def test_a_closed_session_refuses_calls_before_touching_librados() -> None:
    import pytest

    from vmconsole.domain.errors import BackendError

    session = object.__new__(rbd_backend.RbdSession)  # no cluster here: only the guard is exercised
    session.__dict__.update(
        {"_calls": __import__("threading").Condition(), "_in_flight": 0, "_closed": False, "config": None}
    )
    session.ioctx = None  # type: ignore[assignment]
    session._cluster = None  # type: ignore[assignment]
    session.close(wait=0.1)
    with pytest.raises(BackendError, match="the connection to the cluster is closed"):
        session.group_names()
