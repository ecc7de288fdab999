"""Messages that carry results from thread workers back to the UI thread."""

from __future__ import annotations

from textual.message import Message

from vmconsole.core.tasks import ProgressEvent


class TaskEvent(Message):
    """A progress event of a running task (posted from the task's worker thread)."""

    def __init__(self, record_id: int, event: ProgressEvent) -> None:
        super().__init__()
        self.record_id = record_id
        self.event = event


class TaskPlanned(Message):
    """The service planned the task: its steps are known before it starts."""

    def __init__(self, record_id: int, operation: str, steps: tuple[str, ...], description: str) -> None:
        super().__init__()
        self.record_id = record_id
        self.operation = operation
        self.steps = steps
        self.description = description


class LifecycleEvent(Message):
    """libvirt reported a lifecycle event of a domain on this host (posted from the watch thread)."""

    def __init__(self, domain: str, event: str) -> None:
        super().__init__()
        self.domain = domain
        self.event = event
