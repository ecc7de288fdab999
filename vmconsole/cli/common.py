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
    """The configured cluster; with none configured anywhere, the local lab when it runs."""
    path = configuration.find_config_path(getattr(args, "config", None))
    if path is not None:
        return configuration.load_file(path)
    from vmconsole.lab.paths import LabPaths, default_dir

    lab_config = LabPaths(default_dir()).config_file
    if lab_config.exists():
        print(f"vmconsole: no cluster configured, using the local lab ({lab_config})", file=sys.stderr)
        return configuration.load_file(lab_config)
    return configuration.Config()


@contextmanager
def open_services(args: argparse.Namespace) -> Iterator[Services]:
    """The service layer for one command, closed (connections released) when it returns."""
    svc = Services(load_config(args))
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
    }


def execute(
    args: argparse.Namespace,
    svc: Services,
    task: Task,
    *,
    confirm_with: str | None = None,
    warning: str = "",
) -> int:
    """Dry-run, confirm, run with progress, print the result: the same for every operation."""
    if getattr(args, "dry_run", False):
        if args.json:
            print_json({"dry_run": True, "plan": plan_dict(task)})
        else:
            print(f"plan: {safe(task.description or task.operation)}")
            for index, step in enumerate(task.steps, 1):
                print(f"  {index}. {safe(step.name)}")
            print("(dry run: nothing was changed)")
        return 0
    if confirm_with is not None:
        prompt = f"{warning}\nThis will: {task.description}" if warning else f"This will: {task.description}"
        if not confirm(prompt, confirm_with, getattr(args, "yes", False)):
            print("not confirmed: nothing was changed", file=sys.stderr)
            return 1
    cancel = threading.Event()
    printer = ProgressPrinter(enabled=None if not args.json else False)
    try:
        result: TaskResult = svc.run(task, cancel, listener=printer)
    except KeyboardInterrupt:
        cancel.set()
        raise Cancelled(f"{task.operation} interrupted") from None
    if args.json:
        print_json(result.to_dict())
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


def preview(args: argparse.Namespace, as_json: Mapping[str, Any], lines: Iterable[str]) -> bool:
    """Show a plan before it runs: its lines for people; with --json --dry-run the plan as JSON is the
    whole answer, and True says there is nothing more to do."""
    if args.json and args.dry_run:
        print_json({"dry_run": True, **as_json})
        return True
    if not args.json:
        for line in lines:
            print(line)
    return False
