"""``L``: a VM's cluster-wide operation lock (``vmconsole lock show|break``): who holds it, since
when, for which task, and whether that process is alive; breaking the lock of a dead holder needs
the VM name typed (and **force** when the holder ran on another host, whose process this console
cannot see)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Static

from vmconsole.core import recovery
from vmconsole.core.timeline import Entry
from vmconsole.tui import gating, text
from vmconsole.tui.actions import LOCK_BREAK
from vmconsole.tui.console import console_of
from vmconsole.tui.screens.confirm import ask
from vmconsole.tui.screens.form_base import FormScreen

ALIVE = {True: ("alive", "bold green"), False: ("dead", "bold red"), None: ("unknown", "yellow")}


def lock_table(status: Mapping[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    if not status.get("locked"):
        table.add_row("Lock", Text("free: no task holds it", style="green"))
        return table
    holder: Mapping[str, Any] = status.get("holder") or {}
    alive, style = ALIVE[status.get("holder_alive")]
    table.add_row("Lock", Text("held", style="bold yellow"))
    table.add_row("By", text.plain(holder.get("holder") or "unknown (no holder record)"))
    table.add_row("Task", text.plain(f"{holder.get('operation') or '?'} (task {holder.get('task') or '?'})"))
    table.add_row("Since", text.plain(holder.get("since") or "?"))
    table.add_row("Process", Text.assemble(text.plain(f"pid {holder.get('pid') or '?'}: "), (alive, style)))
    for locker in status.get("lockers") or ():
        table.add_row("Locker", text.plain(", ".join(f"{k} = {v}" for k, v in sorted(dict(locker).items()))))
    return table


def on_other_host(status: Mapping[str, Any]) -> bool:
    holder = str((status.get("holder") or {}).get("holder", ""))
    return not holder.endswith(f"@{socket.gethostname()}")


class LockScreen(FormScreen[None]):
    HELP = """\
## Operation lock

Every task locks the VMs it changes (a lease renewed while it runs) so that two operators never act
on one VM at once. A holder whose process died leaves the lock until its lease runs out; **Break
lock** frees it at once, when the holder is dead (type the VM name). A holder on another host cannot
be seen from here: tick **force** only after checking there. `vmconsole recover` (**F**) offers to
undo what a dead task left.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Back", id="lock.back"),
        Binding("r", "reload", "Read again", id="lock.reload"),
    ]

    def __init__(self, vm: str) -> None:
        super().__init__(classes="form-screen")
        self.vm = vm
        self.status: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="form", id="lock-form"):
            yield Static(Text("reading the lock…", style="dim"), id="lock-status", classes="impact")
            yield Checkbox("Force: the holder is on another host and I checked it is gone", id="lock-force")
            with Horizontal(classes="form-buttons"):
                yield Button("Back", id="back")
                yield Button("Read again", id="reload")
                yield Button("Break lock…", id="break", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#lock-form").border_title = Text.assemble("Lock of ", text.plain(self.vm))
        self.query_one("#lock-force", Checkbox).display = False
        self.query_one("#back", Button).focus()
        self.action_reload()

    def action_reload(self) -> None:
        console = console_of(self.app)
        vm = self.vm
        console.call_in_thread(lambda: recovery.lock_status(console.services, vm), self.show, f"read the lock of {vm}")

    def show(self, status: dict[str, Any]) -> None:
        self.status = status
        self.query_one("#lock-status", Static).update(lock_table(status))
        locked = bool(status.get("locked"))
        self.query_one("#lock-force", Checkbox).display = locked and on_other_host(status)
        breakable = locked and status.get("holder_alive") is not True
        self.query_one("#break", Button).disabled = not breakable or console_of(self.app).read_only

    @on(Button.Pressed, "#reload")
    def reload_pressed(self) -> None:
        self.action_reload()

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#break")
    def break_pressed(self) -> None:
        if gating.refused(self.app, LOCK_BREAK) or self.status is None:
            return
        vm = self.vm
        force = self.query_one("#lock-force", Checkbox).value
        holder = (self.status.get("holder") or {}).get("holder") or "an unknown holder"
        body = Text.assemble(
            "Break the operation lock of ",
            text.plain(vm, "bold"),
            " held by ",
            text.plain(holder, "bold"),
            "?\n\n",
            "Only when its process is gone: a live task that lost its lock stops at its next step and undoes"
            " what it did. Whatever a dead task left half-done stays: F (recover) lists it.",
        )
        console = console_of(self.app)

        def broken(pieces: list[str]) -> None:
            message = f"lock of {vm} broken: {', '.join(pieces) or 'nothing held it any more'}"
            console.events.note(Entry(console.now(), "task", message, vm=vm, result="ok", action="lock-break"))
            self.notify(text.safe(message), title="Lock", markup=False)
            self.action_reload()

        def run() -> None:
            console.call_in_thread(
                lambda: recovery.break_lock(console.services, vm, force=force), broken, f"break the lock of {vm}"
            )

        ask(self.app, f"Break the lock of {text.safe(vm)}", body, run, label="Break lock", typed=vm)
