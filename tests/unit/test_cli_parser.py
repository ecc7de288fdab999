"""The shape of `vmconsole <noun> <verb>`: every noun and verb, in order, each with its handler in the
module of its noun; the shared switches in their fixed place; and the shared handler pieces."""

from __future__ import annotations

import argparse
import importlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from vmconsole.cli import common, options, output
from vmconsole.cli.main import build_parser, main
from vmconsole.core.tasks import Step, Task, TaskResult

# noun -> its verbs, in the order `--help` lists them (an empty tuple: the noun is the command)
TREE: dict[str, tuple[str, ...]] = {
    "vm": (
        "list",
        "status",
        "create",
        "clone",
        "enable",
        "disable",
        "start",
        "stop",
        "cleanup",
        "flatten",
        "remove",
        "update",
        "move",
        "migrate",
        "diagnose",
        "import",
        "console",
    ),
    "node": ("list", "standby", "online"),
    "metadata": ("list", "get", "set", "remove"),
    "constraint": ("colocate", "uncolocate"),
    "remote": ("add", "remove"),
    "history": (),
    "lock": ("show", "break"),
    "recover": (),
    "snapshot": ("create", "list", "remove", "protect", "unprotect", "rollback", "purge", "policy", "prune", "bulk"),
    "lab": ("up", "down", "status", "seed", "crash", "rejoin", "exec"),
}
# verbs that are another verb's twin run that verb's handler
TWINS = {("vm", "migrate"): "vm_move", ("snapshot", "unprotect"): "snapshot_protect"}
DESTRUCTIVE = {
    ("vm", "disable"),
    ("vm", "remove"),
    ("vm", "update"),
    ("node", "standby"),
    ("snapshot", "remove"),
    ("snapshot", "rollback"),
    ("snapshot", "purge"),
    ("snapshot", "prune"),
    ("snapshot", "bulk"),
}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(found[0].choices) if found else {}


def commands() -> Iterator[tuple[str, str | None, argparse.ArgumentParser]]:
    for noun, noun_parser in subcommands(build_parser()).items():
        verbs = subcommands(noun_parser)
        if not verbs:
            yield noun, None, noun_parser
        for verb, parser in verbs.items():
            yield noun, verb, parser


COMMANDS = [pytest.param(noun, verb, parser, id=f"{noun} {verb or ''}".strip()) for noun, verb, parser in commands()]


def test_every_noun_and_verb_in_order() -> None:
    nouns = subcommands(build_parser())
    assert list(nouns) == list(TREE)
    for noun, verbs in TREE.items():
        assert tuple(subcommands(nouns[noun])) == verbs, noun


@pytest.mark.parametrize(("noun", "verb", "parser"), COMMANDS)
def test_each_handler_lives_in_the_module_of_its_noun(
    noun: str, verb: str | None, parser: argparse.ArgumentParser
) -> None:
    handler = parser.get_default("handler")
    assert callable(handler), f"{noun} {verb} has no handler"
    module = importlib.import_module(f"vmconsole.cli.{noun}")
    expected = noun if verb is None else TWINS.get((noun, verb), f"{noun}_{verb}")
    assert handler.__module__ == module.__name__
    assert handler.__name__ == expected
    assert getattr(module, expected) is handler


@pytest.mark.parametrize(("noun", "verb", "parser"), COMMANDS)
def test_the_shared_switches_come_last_in_a_fixed_order(
    noun: str, verb: str | None, parser: argparse.ArgumentParser
) -> None:
    flags = [a.option_strings[0] for a in parser._actions if a.option_strings]
    tail = [f for f in flags if f in ("--json", "--yes", "--dry-run")]
    assert flags[len(flags) - len(tail) :] == tail, "--json, --yes, --dry-run come after the command's own options"
    if (noun, verb) in DESTRUCTIVE:
        assert tail[-2:] == ["--yes", "--dry-run"]
    else:
        assert "--yes" not in tail


def test_a_verb_without_help_is_not_listed_under_its_noun() -> None:
    nouns = subcommands(build_parser())
    assert "    add" not in nouns["remote"].format_help()
    assert "    show      who holds the lock" in nouns["lock"].format_help()


def test_key_values_repeat_and_later_keys_win() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metadata", nargs="+", action=options.KeyValues)
    args = parser.parse_args(["--metadata", "a=1", "b=x=y", "--metadata", "a=2"])
    assert args.metadata == {"a": "2", "b": "x=y"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--metadata", "novalue"])


def test_vm_settings_become_vm_options() -> None:
    args = build_parser().parse_args(
        [
            "vm",
            "clone",
            "a",
            "b",
            "--disable",
            "--pinned-host",
            "",
            "--disable-live-migration",
            "--pacemaker-meta",
            "m=1",
        ]
    )
    opts = options.vm_options(args)
    assert (opts.enable, opts.start, opts.pinned_host, opts.live_migration) == (False, True, "", False)
    assert opts.pacemaker_meta == {"m": "1"}
    assert opts.crm_config_cmd == []


def test_emit_prints_json_or_the_rendered_lines(capsys: pytest.CaptureFixture[str]) -> None:
    def lines() -> list[str]:
        raise AssertionError("text is not rendered for --json")

    output.emit(True, {"b": 1, "a": [2]}, lines)
    assert json.loads(capsys.readouterr().out) == {"a": [2], "b": 1, "changed": False}
    output.emit(True, [1], lines)
    assert json.loads(capsys.readouterr().out) == [1]
    output.emit(True, {"changed": "a user key"}, lines, changed=None)
    assert json.loads(capsys.readouterr().out) == {"changed": "a user key"}
    output.emit(False, {}, lambda: iter(["one", "two"]))
    assert capsys.readouterr().out == "one\ntwo\n"


@pytest.mark.parametrize(
    ("flags", "done", "out"),
    [
        (["--json", "--dry-run"], True, {"dry_run": True, "changed": False, "would_change": True, "plan": "p"}),
        (["--json"], False, ""),
        (["--dry-run"], False, "line 1\nline 2\n"),
        ([], False, "line 1\nline 2\n"),
    ],
)
def test_preview(flags: list[str], done: bool, out: Any, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(json="--json" in flags, dry_run="--dry-run" in flags)
    assert common.preview(args, {"plan": "p"}, ["line 1", "line 2"]) is done
    printed = capsys.readouterr().out
    assert (json.loads(printed) if isinstance(out, dict) else printed) == out


class FakeServices:
    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, task: Task, cancel: Any, listener: Any = None) -> TaskResult:
        self.ran.append(task.operation)
        return TaskResult("t1", task.operation, task.vm, True, 0.1, f"{task.operation} done", {})


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> FakeServices:
    svc = FakeServices()

    @contextmanager
    def fake_open(args: argparse.Namespace) -> Iterator[FakeServices]:
        yield svc

    monkeypatch.setattr(common, "open_services", fake_open)
    return svc


def fake_task(operation: str, vm: str) -> Task:
    return Task(operation, vm, {"_private": 1, "node": "n2"}, [Step("stop", run=lambda ctx: None)], description="why")


def test_a_plan_call_dry_run_prints_the_plan(
    services: FakeServices, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr("vmconsole.core.vms.plan_start", lambda svc, name: fake_task("start", name))
    assert main(["vm", "start", "web1", "--dry-run"]) == 0
    assert capsys.readouterr().out == "plan: why\n  1. stop\n(dry run: nothing was changed)\n"
    assert main(["vm", "start", "web1", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan == {
        "dry_run": True,
        "changed": False,
        "would_change": True,
        "plan": {
            "operation": "start",
            "vm": "web1",
            "description": "why",
            "steps": ["stop"],
            "args": {"node": "n2"},
            "warnings": [],
        },
    }
    assert services.ran == []
    assert main(["vm", "start", "web1"]) == 0
    assert services.ran == ["start"]
    assert capsys.readouterr().out == "start done\n"


def test_a_destructive_command_without_a_terminal_needs_yes(
    services: FakeServices, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import vmconsole.cli.node as node

    monkeypatch.setattr(node, "plan_node_standby", lambda svc, name, standby: fake_task("standby", name))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["node", "standby", "n1", "--json"]) == 2
    error = json.loads(capsys.readouterr().out)
    assert (error["error"], error["field"]) == ("ValidationError", "--yes")
    assert services.ran == []
    assert main(["node", "standby", "n1", "--yes"]) == 0
    assert services.ran == ["standby"]
