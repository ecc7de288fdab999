"""A task's progress screen: the progress pane, plus cancel, background, and follow-up actions.

``escape``/``b`` sends the task to the background (it keeps running; ``t`` lists tasks). When the
task ends the screen offers its follow-ups, e.g. **u** "undo rollback", **f** "force stop" or **l**
"diagnose" after a failed start.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer

from vmconsole.tui.console import console_of
from vmconsole.tui.task_record import TaskRecord
from vmconsole.tui.widgets.progress_pane import ProgressPane


class TaskScreen(ModalScreen[None]):
    HELP = ProgressPane.HELP

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,b", "close", "Background / close", id="task.close"),
        Binding("ctrl+x", "cancel_task", "Cancel task", id="task.cancel"),
        Binding("u", "follow('u')", "Undo", show=False, id="task.undo"),
        Binding("f", "follow('f')", "Force", show=False, id="task.force"),
        Binding("l", "follow('l')", "Diagnose", show=False, id="task.diagnose"),
    ]

    def __init__(self, record: TaskRecord) -> None:
        super().__init__()
        self.record = record
        self._buttons_state: tuple[object, ...] | None = None  # what the buttons show now

    def compose(self) -> ComposeResult:
        with Vertical(id="task-dialog"):
            yield ProgressPane(self.record, id="task-pane")
            yield Horizontal(id="task-buttons")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#task-dialog").border_title = "Task"
        self._sync_buttons()
        self.set_interval(0.2, self._sync_buttons)

    def _sync_buttons(self) -> None:
        record = self.record
        state = (record.active, tuple(record.follow_ups))
        if state == self._buttons_state:
            return
        self._buttons_state = state
        bar = self.query_one("#task-buttons", Horizontal)
        bar.remove_children()
        buttons: list[Button] = []
        if record.active:
            buttons.append(Button("Background (b)", id="background", compact=True))
            buttons.append(Button("Cancel task (ctrl+x)", id="cancel-task", variant="warning", compact=True))
        else:
            for follow in record.follow_ups:
                buttons.append(Button(f"{follow.label} ({follow.key})", id=f"follow-{follow.key}", variant="warning"))
            buttons.append(Button("Close (esc)", id="close", variant="primary", compact=True))
        bar.mount_all(buttons)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_task":
            return self.record.active
        if action == "follow":
            return any(f.key == parameters[0] for f in self.record.follow_ups) and not self.record.active
        return True

    def action_close(self) -> None:
        self.dismiss(None)

    def action_cancel_task(self) -> None:
        if self.record.active:
            self.record.cancel.set()
            self.record.add_log(console_of(self.app).now(), "cancel requested: undoing completed steps…")
            self.notify(
                "Cancelling: the task stops at the next safe point and undoes its completed steps.", markup=False
            )

    def action_follow(self, key: str) -> None:
        follow = next((f for f in self.record.follow_ups if f.key == key), None)
        if follow is None:
            return
        self.dismiss(None)
        console_of(self.app).perform(follow.action, follow.vm)

    @on(Button.Pressed)
    def button(self, event: Button.Pressed) -> None:
        button_id = event.button.id or ""
        if button_id in ("background", "close"):
            self.dismiss(None)
        elif button_id == "cancel-task":
            self.action_cancel_task()
        elif button_id.startswith("follow-"):
            self.action_follow(button_id.removeprefix("follow-"))
