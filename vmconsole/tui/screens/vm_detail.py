"""``enter``: everything the console knows about one VM, for troubleshooting; follows the refresh.

Settings read as an operator reads them (``readable``). A VM with a failure is diagnosed at once:
the **Cause** line (libvirt's or QEMU's own error, from the latest attempt) heads its failures,
newest first. ``l`` opens it scrolled to the diagnosis (k9s's logs key).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static

from vmconsole.core import diagnose
from vmconsole.core.diagnose import Diagnosis
from vmconsole.domain.model import ClusterState, VmState, VmStatus
from vmconsole.tui import causes, gating, readable, text
from vmconsole.tui.console import console_of
from vmconsole.tui.memory import KeptFailure
from vmconsole.tui.screens.form_base import FormScreen
from vmconsole.tui.widgets.snapshot_pane import snapshot_flags, timeline


def _kv(rows: list[tuple[str, Text]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, value in rows:
        table.add_row(Text(key), value)
    return table


def _mapping(values: Mapping[str, Any]) -> Table:
    """``key = value`` lines of user metadata (values literal)."""
    return _kv([(text.safe(k), text.plain(v)) for k, v in sorted(values.items())])


def cause_text(line: str) -> Text:
    return Text.assemble(("Cause: ", "bold red"), text.plain(line, "red"))


def detail_sections(
    vm: VmState, now: datetime, kept: KeptFailure | None = None, cause: str | None = None
) -> list[tuple[str, Any]]:
    status = text.status_text(vm)
    general: list[tuple[str, Text]] = [
        ("status", status),
        ("node", text.plain(vm.node or "-")),
        ("enabled", Text("yes (has a Pacemaker primitive)" if vm.enabled else "no (not in the cluster)")),
        ("target-role", text.plain(vm.target_role or "-")),
        ("managed", Text("yes" if vm.managed else "no", style="" if vm.managed else "bold yellow")),
        ("blocked", Text("yes" if vm.blocked else "no", style="bold red" if vm.blocked else "")),
        (
            "fail-count",
            Text(
                "INFINITY" if vm.fail_count >= 1000000 else str(vm.fail_count),
                style="bold red" if vm.fail_count else "",
            ),
        ),
        ("uuid", text.plain(vm.uuid or "-")),
    ]
    if vm.resource is not None:
        general.append(
            (
                "resource",
                text.plain(
                    f"{vm.resource.agent} role={vm.resource.role}"
                    + (f" pending={vm.resource.pending}" if vm.resource.pending else "")
                ),
            )
        )
    sections: list[tuple[str, Any]] = [("General", _kv(general))]
    failures = vm.resource.failures if vm.resource else ()
    if failures or vm.last_failure or kept is not None:
        rows: list[tuple[str, Text]] = []
        shown_cause = cause or (kept.cause if kept is not None else None)
        if shown_cause:
            rows.append(("cause", cause_text(shown_cause)))
        if kept is not None and kept.source == "task":
            line = text.plain(kept.message, "red")
            line.append(f"  {text.stamp(kept.when)} (a task of this console)", style="dim")
            rows.append((text.safe(kept.what), line))
        for failure in causes.newest_first(failures or ((vm.last_failure,) if vm.last_failure else ())):
            line = text.plain(failure.summary(), "red")
            line.append(f"  {text.stamp(failure.when)}", style="dim")
            rows.append((text.safe(failure.operation), line))
        sections.append(("Failures (newest first)", _kv(rows)))
    if vm.problems:
        sections.append(("Could not read", _kv([("-", text.plain(p, "yellow")) for p in vm.problems])))
    disks = Table(box=None, padding=(0, 2), show_edge=False)
    disks.add_column("image")
    disks.add_column("size", justify="right")
    for disk in vm.disks:
        disks.add_row(text.plain(disk.image), Text(text.size(disk.size)))
    sections.append((f"Disks ({len(vm.disks)}, {text.size(vm.total_size)})", disks))
    snaps = Table(box=None, padding=(0, 2), show_edge=False)
    snaps.add_column("snapshot")
    snaps.add_column("created")
    snaps.add_column("age", justify="right")
    snaps.add_column("flags")
    for snap in timeline(vm.snapshots):
        flags = snapshot_flags(snap)
        if snap.missing_on:
            flags.append(" missing on ")
            flags.append(text.plain(", ".join(snap.missing_on), "yellow"))
        snaps.add_row(
            text.plain(snap.name, "bold"), Text(text.stamp(snap.created)), Text(text.age(snap.created, now)), flags
        )
    snaps.add_row(Text("NOW", style="bold green"), Text("current state", style="green"), Text(""), Text(""))
    sections.append((f"Snapshots ({len(vm.snapshots)})", snaps))
    metadata = _mapping(vm.metadata) if vm.metadata else Text("none", style="dim")
    sections.append((f"Metadata ({len(vm.metadata)})", metadata))
    sections.append(("Settings", _kv(readable.setting_rows(vm.settings))))
    return sections


def diagnosis_table(report: Diagnosis) -> Table:
    """The diagnosis of a VM: the cause of its latest failure, its failures newest first, libvirt's
    view, the last operations, the QEMU log tail."""
    rows: list[tuple[str, Text]] = []
    cause = causes.cause_of(report)
    if cause is not None:
        rows.append(("cause", cause_text(cause.line())))
    for failure in causes.newest_first(report.failures):
        line = text.plain(failure.summary(), "red")
        line.append(f"  {text.stamp(failure.when)}", style="dim")
        rows.append((text.safe(f"failed {failure.operation}"), line))
    rows.append(
        ("libvirt", text.plain(f"{report.libvirt_state or 'not defined'} on {report.libvirt_host or '?'}")),
    )
    for entry in report.operations[-10:]:
        op = entry.attributes
        line = text.plain(
            f"{op.get('task', '?')} rc={op.get('rc', '?')} ({op.get('rc_text', '')})",
            "red" if str(op.get("rc", "0")) not in ("0", "7") else "",
        )
        line.append(text.plain(f"  {op.get('last-rc-change', '')}", "dim"))
        rows.append((text.safe(f"op on {entry.node or '?'}"), line))
    for problem in report.problems:
        rows.append(("problem", text.plain(problem, "yellow")))
    if report.qemu_log:
        tail = Text(style="dim", end="")
        for index, raw in enumerate(report.qemu_log[-20:]):
            tail.append(("\n" if index else "") + text.safe(raw))  # each line made safe, then joined
        rows.append(("qemu log", tail))
    return _kv(rows)


class VmDetailScreen(FormScreen[None]):
    HELP = """\
## VM detail

Everything read about the VM, refreshed live: status and Pacemaker flags, failures (newest first,
headed by their **Cause**: libvirt's or QEMU's own error), disks, snapshots, user metadata and
settings. **d** or **l** adds the diagnosis (Pacemaker's operation history, libvirt's view, the QEMU
log tail); a VM with a failure is diagnosed at once. **escape** goes back; **m** metadata, **v**/**y**
XML (and **u** there to update it), **M** moves the VM, **T** its timeline, **L** its lock.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Back", id="detail.back"),
        Binding("m", gating.act("metadata"), "Metadata", id="detail.metadata"),
        Binding("v,y", gating.act("config"), "XML", id="detail.config"),
        Binding("d,l", "diagnose", "Diagnose", id="detail.diagnose"),
        Binding("M", gating.act("move"), "Move", id="detail.move"),
        Binding("T", "vm_timeline", "Timeline", id="detail.timeline"),
        Binding("L", gating.act("lock"), "Lock", id="detail.lock"),
        Binding("j", "scroll('down')", "Scroll down", show=False, id="detail.down"),
        Binding("k", "scroll('up')", "Scroll up", show=False, id="detail.up"),
        Binding("g,home", "scroll('home')", "Top", show=False, id="detail.top"),
        Binding("G,end", "scroll('end')", "Bottom", show=False, id="detail.bottom"),
    ]

    def __init__(self, vm: str, *, diagnose_now: bool = False) -> None:
        super().__init__(classes="form-screen")
        self.vm_name = vm
        self.diagnosis: Diagnosis | None = None
        self.diagnose_now = diagnose_now  # ``l``: diagnose at once and show the diagnosis
        self._diagnosing = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="form fill"):
            yield VerticalScroll(id="detail-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(".form").border_title = Text.assemble("VM ", text.plain(self.vm_name))
        console = console_of(self.app)
        console.state_signal.subscribe(self, self._state_changed)
        vm = console.state.vm(self.vm_name) if console.state is not None else None
        if console.state is not None:
            self._state_changed(console.state)
        failing = vm is not None and (
            vm.failed or vm.status is VmStatus.FAILED or console.failures.shown(vm) is not None
        )
        if self.diagnose_now or failing:
            self.diagnose(quiet=not self.diagnose_now)  # unasked, a diagnosis that fails says nothing
        self.query_one("#detail-body", VerticalScroll).focus()

    def action_scroll(self, where: str) -> None:
        body = self.query_one("#detail-body", VerticalScroll)
        {"down": body.scroll_down, "up": body.scroll_up, "home": body.scroll_home, "end": body.scroll_end}[where]()

    def action_vm_timeline(self) -> None:
        console_of(self.app).perform("timeline", argument=self.vm_name)

    def _state_changed(self, state: ClusterState) -> None:
        body = self.query_one("#detail-body", VerticalScroll)
        vm = state.vm(self.vm_name)
        widgets: list[Static] = []
        console = console_of(self.app)
        if vm is None:
            widgets.append(
                Static(Text.assemble(text.plain(self.vm_name), " is gone from the cluster.", style="bold red"))
            )
        else:
            cause = causes.cause_of(self.diagnosis) if self.diagnosis is not None else None
            sections = detail_sections(
                vm, console.now(), console.failures.shown(vm), cause.line() if cause is not None else None
            )
            if self.diagnosis is not None:
                sections.append(("Diagnosis", diagnosis_table(self.diagnosis)))
            elif self._diagnosing:
                sections.append(("Diagnosis", Text("diagnosing…", style="dim")))
            else:
                sections.append(
                    (
                        "Diagnosis",
                        Text(
                            "press d or l: Pacemaker's operation history, libvirt's view and the QEMU log tail",
                            style="dim",
                        ),
                    )
                )
            for title, renderable in sections:
                widgets.append(Static(Text(title, style="bold underline"), classes="section-title"))
                widgets.append(Static(renderable, classes="section"))
        with self.app.batch_update():
            body.remove_children()
            body.mount_all(widgets)

    def action_diagnose(self) -> None:
        self.diagnose()

    def diagnose(self, *, quiet: bool = False) -> None:
        vm = self.vm_name
        console = console_of(self.app)
        self._diagnosing = True

        def show(report: Diagnosis) -> None:
            self.diagnosis = report
            self._diagnosing = False
            cause = causes.cause_of(report)
            if cause is not None:
                console.failures.add_cause(vm, cause.line())
            if console.state is not None:
                self._state_changed(console.state)
            if self.diagnose_now:
                self.call_after_refresh(
                    lambda: self.query_one("#detail-body", VerticalScroll).scroll_end(animate=False)
                )

        def failed(_error: BaseException) -> None:
            self._diagnosing = False

        console.call_in_thread(
            lambda: diagnose.diagnose(console.services, vm), show, f"diagnose {vm}", on_error=failed, quiet=quiet
        )

    def action_act(self, name: str) -> None:
        console_of(self.app).perform(name, self.vm_name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return gating.check_action(self.app, action, parameters)

    def on_key(self, event: events.Key) -> None:
        gating.refuse_disabled_key(self, event)
