"""What every CLI command shares: the configuration, the services, showing a plan and running it as a task."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from vmconsole import config as configuration
from vmconsole.cli.output import ProgressPrinter, confirm, print_json, safe
from vmconsole.core.services import Services
from vmconsole.core.tasks import Task, TaskResult
from vmconsole.domain.errors import Cancelled


def load_config(args: argparse.Namespace) -> configuration.Config:
    """The configured cluster (``--config``, ``$VMCONSOLE_CONFIG``, the user's then the system's file),
    else SEAPATH's defaults. The local lab is used only when named (``--config``, as ``scripts/console``
    and the lab's own commands do): a file under /tmp is never trusted implicitly."""
    path = configuration.find_config_path(getattr(args, "config", None))
    if path is not None:
        return configuration.load_file(path)
    from vmconsole.lab.paths import LabPaths, default_dir

    lab_config = LabPaths(default_dir()).config_file
    if lab_config.exists():
        print(
            f"vmconsole: no cluster configured: SEAPATH's defaults (the local lab is `--config {safe(lab_config)}`)",
            file=sys.stderr,
        )
    return configuration.Config()


def read_only_reason(args: argparse.Namespace, config: configuration.Config) -> str | None:
    """Why this command may not change the cluster: ``--read-only`` or the configuration's ``read_only``."""
    if getattr(args, "read_only", False):
        return "--read-only"
    if config.console.read_only:
        return f"read_only = true in {config.source or 'the configuration'}"
    return None


@contextmanager
def open_services(args: argparse.Namespace) -> Iterator[Services]:
    """The service layer for one command, closed (connections released) when it returns. A read-only
    command line gets read-only services: core refuses every change (exit 12), whichever command asks."""
    config = load_config(args)
    svc = Services(config, read_only=read_only_reason(args, config))
    try:
        yield svc
    finally:
        svc.close()


def plan_dict(task: Task) -> dict[str, Any]:
    return {
        "operation": task.operation,
        "vm": task.vm,
        "description": task.description,
        "steps": [s.name for s in task.steps],
        "args": {k: v for k, v in task.args.items() if not k.startswith("_")},
        "warnings": list(task.warnings),
    }


def dry_run_document(plan: Mapping[str, Any], *, would_change: bool = True) -> dict[str, Any]:
    """The one JSON document of a dry run: nothing changed; ``would_change`` says whether running it would."""
    return {"dry_run": True, "changed": False, "would_change": would_change, **plan}


def unchanged(args: argparse.Namespace, message: str, **extra: Any) -> int:
    """A command that had nothing to do: one JSON document with ``changed: false``, or the message."""
    if args.json:
        print_json(
            {
                "ok": True,
                "changed": False,
                "dry_run": bool(getattr(args, "dry_run", False)),
                "message": message,
                **extra,
            }
        )
    else:
        print(safe(message))
    return 0


def warn(args: argparse.Namespace, warnings: Iterable[str]) -> None:
    """A plan's warnings, for people (with --json they are in the one document)."""
    if not args.json:
        for warning in warnings:
            print(f"warning: {safe(warning)}", file=sys.stderr)


def execute(
    args: argparse.Namespace,
    svc: Services,
    task: Task,
    *,
    confirm_with: str | None = None,
    warning: str = "",
) -> int:
    """Dry-run, confirm, run with progress, print the result: the same for every operation.

    The plan's warnings (a domain reaching into the host...) are shown with the plan, in the
    confirmation and before an unconfirmed run."""
    if getattr(args, "dry_run", False):
        if args.json:
            print_json(dry_run_document({"plan": plan_dict(task)}))
        else:
            print(f"plan: {safe(task.description or task.operation)}")
            for index, step in enumerate(task.steps, 1):
                print(f"  {index}. {safe(step.name)}")
            for item in task.warnings:
                print(f"warning: {safe(item)}")
            print("(dry run: nothing was changed)")
        return 0
    if confirm_with is not None:
        lines = [safe(warning)] if warning else []
        lines += [f"warning: {safe(item)}" for item in task.warnings]
        lines.append(f"This will: {safe(task.description)}")
        if not confirm("\n".join(lines), safe(confirm_with), getattr(args, "yes", False)):
            print("not confirmed: nothing was changed", file=sys.stderr)
            if args.json:
                print_json({"ok": False, "changed": False, "reason": "not_confirmed", "message": "not confirmed"})
            return 1
        if getattr(args, "yes", False):
            warn(args, task.warnings)
    else:
        warn(args, task.warnings)
    cancel = threading.Event()
    printer = ProgressPrinter(enabled=None if not args.json else False)
    try:
        result: TaskResult = svc.run(task, cancel, listener=printer)
    except KeyboardInterrupt:
        cancel.set()
        raise Cancelled(f"{task.operation} interrupted") from None
    if args.json:
        print_json({**result.to_dict(), "changed": True, "warnings": list(task.warnings)})
    else:
        print(safe(result.message))
    return 0


def plan_and_run(
    args: argparse.Namespace,
    plan: Callable[[Services], Task],
    *,
    confirm_with: str | None = None,
    warning: str = "",
) -> int:
    """Open the services, plan the task, then ``execute`` it: a command that is one core ``plan_*`` call."""
    with open_services(args) as svc:
        return execute(args, svc, plan(svc), confirm_with=confirm_with, warning=warning)


def preview(
    args: argparse.Namespace, as_json: Mapping[str, Any], lines: Iterable[str], *, would_change: bool = True
) -> bool:
    """Show a plan before it runs: its lines for people; with --json --dry-run the plan as JSON is the
    whole answer, and True says there is nothing more to do."""
    if args.json and args.dry_run:
        print_json(dry_run_document(as_json, would_change=would_change))
        return True
    if not args.json:
        for line in lines:
            print(line)
    return False
