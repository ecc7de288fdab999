"""Handlers of what ties a VM to the rest of the cluster: colocation with other resources and the
pacemaker-remote node it carries. Their forms have ``vmconsole.core.vms`` plan the change (a refusal
leaves the form open); the handler shows the plan, then runs it inline (progress on the VM's row, a
notification at the end)."""

from __future__ import annotations

from rich.text import Text

from vmconsole.core.tasks import Task
from vmconsole.tui import text
from vmconsole.tui.handlers.base import PlanConfirmation, Request, confirm_plan
from vmconsole.tui.screens.colocation import ColocationScreen
from vmconsole.tui.screens.remote import RemoteChoice, RemoteScreen


def colocate(request: Request) -> None:
    app, vm, state = request.app, request.vm, request.console.state
    name = vm.name
    candidates = sorted(v.name for v in state.vms if v.enabled and v.name != name) if state is not None else []

    def planned(result: tuple[tuple[list[str], bool | None], Task] | None) -> None:
        if result is None:
            return
        (resources, strong), task = result
        if strong is None:
            confirm_plan(
                app,
                task,
                PlanConfirmation(
                    title=f"Remove a colocation of {text.safe(name)}",
                    task_title=f"uncolocate {name} from {' '.join(resources)}",
                    vm=name,
                    label="Remove",
                    intro=Text.assemble(
                        "Stop keeping ", text.where(vm), " with ", text.plain(", ".join(resources), "bold")
                    ),
                    inline=True,
                ),
            )
            return
        confirm_plan(
            app,
            task,
            PlanConfirmation(
                title=f"Colocate {text.safe(name)}",
                task_title=f"colocate {name} with {' '.join(resources)}" + (" (strong)" if strong else ""),
                vm=name,
                label="Colocate",
                intro=Text.assemble(
                    "Keep ",
                    text.where(vm),
                    " with ",
                    text.plain(", ".join(resources), "bold"),
                    " (strong: score INFINITY, it never runs anywhere else)"
                    if strong
                    else " (score 700: a preference)",
                ),
                inline=True,
            ),
        )

    app.push_screen(ColocationScreen(vm, candidates, request.argument or ""), planned)


def remote(request: Request) -> None:
    app, vm = request.app, request.vm
    name = vm.name

    def planned(result: tuple[RemoteChoice, Task] | None) -> None:
        if result is None:
            return
        choice, task = result
        if choice.name is None:
            how = PlanConfirmation(
                title=f"Remove the pacemaker-remote node of {text.safe(name)}",
                task_title=f"remove pacemaker-remote of {name}",
                vm=name,
                label="Remove",
                intro=Text.assemble(
                    "Its guest leaves the cluster: Pacemaker stops the resources it ran inside ",
                    text.plain(name, "bold"),
                    ".",
                ),
                danger=True,
                inline=True,
            )
        else:
            how = PlanConfirmation(
                title=f"Pacemaker remote of {text.safe(name)}",
                task_title=f"add pacemaker-remote {choice.name} to {name}",
                vm=name,
                label="Add",
                intro=Text.assemble(
                    "The guest of ",
                    text.where(vm),
                    " joins the cluster as remote node ",
                    text.plain(choice.name, "bold"),
                    " at ",
                    text.plain(choice.address or "?", "bold"),
                    ".",
                ),
                inline=True,
            )
        confirm_plan(app, task, how)

    app.push_screen(RemoteScreen(vm), planned)
