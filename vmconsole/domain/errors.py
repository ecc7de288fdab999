"""The error vocabulary shared by every room of vmconsole.

Every failure an operator can meet is one of these, with a message that says what is wrong and,
where it helps, which field was wrong and what to do next. The CLI maps each class to an exit code
and the console shows them through one central error path.
"""

from __future__ import annotations


class VmConsoleError(Exception):
    """Base class: a failure with a human message, an optional field name and a hint.

    ``reason`` is a stable code for scripts: the class's own (``conflict``, ``not_found``...) or a
    finer one given where it is raised. The ``already_*`` reasons mean the state asked for holds
    already: nothing needed doing (Ansible reports them as ``ok``).
    """

    exit_code = 1
    default_reason = "error"

    def __init__(
        self, message: str, *, field: str | None = None, hint: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint
        self.reason = reason or self.default_reason

    @property
    def already_done(self) -> bool:
        return self.reason.startswith("already_")

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, str | None]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "field": self.field,
            "hint": self.hint,
            "reason": self.reason,
        }


class ConfigError(VmConsoleError):
    """The configuration file is missing, unreadable or has a wrong value."""

    exit_code = 78  # EX_CONFIG
    default_reason = "config"


class ValidationError(VmConsoleError):
    """An input given by the user is not acceptable; nothing was changed."""

    exit_code = 2
    default_reason = "invalid"


class NotFoundError(VmConsoleError):
    """The named VM, snapshot, node or key does not exist."""

    exit_code = 3
    default_reason = "not_found"


class ConflictError(VmConsoleError):
    """The request contradicts the cluster's current state (exists already, wrong status...)."""

    exit_code = 4
    default_reason = "conflict"


class LockedError(VmConsoleError):
    """Another operator or task holds the lock of this VM."""

    exit_code = 5
    default_reason = "locked"


class BackendError(VmConsoleError):
    """A cluster component (Ceph, libvirt, Pacemaker, qemu-img) refused or failed a call."""

    exit_code = 6

    default_reason = "backend"

    def __init__(self, backend: str, message: str, *, hint: str | None = None, reason: str | None = None) -> None:
        super().__init__(f"{backend}: {message}", hint=hint, reason=reason)
        self.backend = backend


class BackendTimeout(BackendError):
    """A cluster component did not answer in time."""

    exit_code = 7
    default_reason = "timeout"


class OperationFailed(VmConsoleError):
    """A task failed; its completed steps were undone (or the message says what is left)."""

    exit_code = 8
    default_reason = "failed"


class OperationIncomplete(VmConsoleError):
    """A task failed part-way and not everything could or should be undone: the message says what was
    kept or left, and the command that finishes or reverts it."""

    exit_code = 11
    default_reason = "incomplete"


class ReadOnlyError(VmConsoleError):
    """A change was asked of a read-only session (``--read-only``, or the console's read-only mode)."""

    exit_code = 12
    default_reason = "read_only"


class Cancelled(VmConsoleError):
    """The operator cancelled a task; its completed steps were undone."""

    exit_code = 130
    default_reason = "cancelled"
