"""The CLI's automation contract, without a cluster: one JSON document for every answer and error,
``changed`` everywhere, ``--read-only`` anywhere, options honoured or refused, control characters
escaped, plan warnings shown, no implicit lab configuration; and the cluster_vm module's pure parts."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vmconsole import config as configuration
from vmconsole.cli import cluster_vm, common
from vmconsole.cli.main import main, split_read_only
from vmconsole.core.tasks import Step, Task, TaskResult
from vmconsole.domain.errors import (
    ConflictError,
    NotFoundError,
    OperationIncomplete,
    ReadOnlyError,
    ValidationError,
)


class FakeServices:
    """Services whose ``run`` refuses like core's when read-only, else records the task."""

    def __init__(self, read_only: str | None = None, fail: Exception | None = None) -> None:
        self.read_only = read_only
        self.fail = fail
        self.ran: list[Task] = []

    def run(self, task: Task, cancel: Any = None, listener: Any = None) -> TaskResult:
        if self.read_only is not None:
            raise ReadOnlyError(f"{task.description} refused: this session is read-only ({self.read_only})")
        if self.fail is not None:
            raise self.fail
        self.ran.append(task)
        return TaskResult("t1", task.operation, task.vm, True, 0.1, f"{task.operation} done", {})

    def close(self) -> None:
        pass


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[FakeServices]:
    """Every FakeServices the commands open, built from the command line as ``open_services`` does."""
    made: list[FakeServices] = []

    @contextmanager
    def fake_open(args: argparse.Namespace) -> Iterator[FakeServices]:
        svc = FakeServices(common.read_only_reason(args, configuration.Config()))
        made.append(svc)
        yield svc

    monkeypatch.setattr(common, "open_services", fake_open)
    return made


def task(operation: str = "metadata-set", vm: str = "web1", warnings: tuple[str, ...] = ()) -> Task:
    return Task(operation, vm, {}, [Step("write", run=lambda ctx: None)], description="set", warnings=warnings)


def one_json(out: str) -> Any:
    """stdout holds exactly one JSON document."""
    decoder = json.JSONDecoder()
    value, end = decoder.raw_decode(out.strip())
    assert out.strip()[end:].strip() == "", f"more than one document: {out!r}"
    return value


@pytest.mark.parametrize(
    "argv",
    [
        ["--read-only", "metadata", "set", "web1", "k=v"],
        ["metadata", "--read-only", "set", "web1", "k=v"],
        ["metadata", "set", "web1", "k=v", "--read-only"],
        ["metadata", "set", "--read-only", "web1", "k=v"],
    ],
)
def test_read_only_anywhere_refuses_every_change(
    argv: list[str], opened: list[FakeServices], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr("vmconsole.core.vms.plan_metadata_set", lambda svc, name, values, remove=(): task())
    assert main([*argv, "--json"]) == 12
    error = one_json(capsys.readouterr().out)
    assert (error["reason"], error["changed"], error["exit_code"]) == ("read_only", False, 12)
    assert opened[0].read_only == "--read-only" and opened[0].ran == []


def test_read_only_refuses_the_lab_changes_too(capsys: Any) -> None:
    assert main(["lab", "down", "--read-only"]) == 12
    assert "read-only" in capsys.readouterr().err


def test_read_only_is_not_taken_from_an_operand_after_double_dash() -> None:
    assert split_read_only(["vm", "--read-only", "x"]) == (["vm", "x"], True)
    assert split_read_only(["vm", "--", "--read-only"]) == (["vm", "--", "--read-only"], False)


def test_a_usage_error_with_json_is_one_json_document(capsys: Any) -> None:
    assert main(["vm", "start", "--json"]) == 2
    captured = capsys.readouterr()
    error = one_json(captured.out)
    assert (error["error"], error["reason"], error["changed"]) == ("UsageError", "usage", False)
    assert "the following arguments are required: name" in captured.err


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["vm", "update", "web1", "--disable"], "unrecognized arguments: --disable"),
        (["vm", "update", "web1", "--nostart"], "unrecognized arguments: --nostart"),
        (["vm", "update", "web1", "--force"], "unrecognized arguments: --force"),
        (["vm", "import", "dom1", "--force"], "unrecognized arguments: --force"),
    ],
)
def test_options_a_command_would_drop_are_not_accepted(argv: list[str], text: str, capsys: Any) -> None:
    assert main([*argv, "--yes"]) == 2
    assert text in capsys.readouterr().err


def test_clone_snapshot_without_linked_is_refused(opened: list[FakeServices], capsys: Any) -> None:
    assert main(["vm", "clone", "a", "b", "--snapshot", "s1", "--json"]) == 2
    error = one_json(capsys.readouterr().out)
    assert (error["field"], error["reason"]) == ("--snapshot", "invalid")
    assert opened == []


def test_errors_carry_reason_and_escape_control_characters(
    opened: list[FakeServices], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    def refuse(svc: Any, name: str) -> Task:
        raise ConflictError("web1 is already Started on \x1b[31mhv1", reason="already_started")

    monkeypatch.setattr("vmconsole.core.vms.plan_start", refuse)
    assert main(["vm", "start", "web1"]) == 4
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[31mhv1" in err
    assert main(["vm", "start", "web1", "--json"]) == 4
    error = one_json(capsys.readouterr().out)
    assert (error["reason"], error["changed"], error["ok"]) == ("already_started", False, False)


def test_an_incomplete_task_exits_11_says_what_was_kept_and_changed(
    opened: list[FakeServices], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr("vmconsole.core.vms.plan_start", lambda svc, name: task("start"))
    monkeypatch.setattr(FakeServices, "run", lambda *a, **k: (_ for _ in ()).throw(OperationIncomplete("kept: x")))
    assert main(["vm", "start", "web1", "--json"]) == 11
    captured = capsys.readouterr()
    error = one_json(captured.out)
    assert (error["reason"], error["changed"], error["message"]) == ("incomplete", True, "kept: x")
    assert "kept: x" in captured.err


def test_results_carry_changed_and_warnings(
    opened: list[FakeServices], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(
        "vmconsole.core.vms.plan_start", lambda svc, name: task("start", warnings=("qemu:commandline \x07",))
    )
    assert main(["vm", "start", "web1", "--json"]) == 0
    result = one_json(capsys.readouterr().out)
    assert (result["changed"], result["ok"], result["warnings"]) == (True, True, ["qemu:commandline \x07"])
    assert main(["vm", "start", "web1", "--dry-run"]) == 0
    assert "warning: qemu:commandline \\x07" in capsys.readouterr().out
    assert main(["vm", "start", "web1"]) == 0
    assert "warning: qemu:commandline \\x07" in capsys.readouterr().err


def test_the_confirmation_shows_the_plan_warnings(
    opened: list[FakeServices], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import vmconsole.cli.node as node

    monkeypatch.setattr(node, "plan_node_standby", lambda svc, n, standby: task("standby", n, ("host device",)))
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "no")
    assert main(["node", "standby", "n1", "--json"]) == 1
    assert "warning: host device" in prompts[0]
    answer = one_json(capsys.readouterr().out)
    assert (answer["reason"], answer["changed"]) == ("not_confirmed", False)


def test_lock_break_recover_and_policy_take_dry_run() -> None:
    from vmconsole.cli.main import build_parser

    parser = build_parser()
    for argv in (
        ["lock", "break", "web1", "--dry-run"],
        ["recover", "t1", "--undo", "--dry-run"],
        ["snapshot", "policy", "web1", "--keep-last", "3", "--dry-run"],
    ):
        assert parser.parse_args(argv).dry_run is True


def test_no_implicit_lab_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "vmconsole.toml").write_text('[ceph]\npool = "labpool"\n')
    monkeypatch.setenv("VMCONSOLE_LAB_DIR", str(lab))
    monkeypatch.delenv("VMCONSOLE_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(configuration, "SYSTEM_PATH", tmp_path / "none.toml")
    config = common.load_config(argparse.Namespace(config=None))
    assert config.source is None and config.ceph.pool == "rbd"
    assert "--config" in capsys.readouterr().err
    named = common.load_config(argparse.Namespace(config=str(lab / "vmconsole.toml")))
    assert named.ceph.pool == "labpool"


# ------------------------------------------------------------------------------ cluster_vm, pure parts


def test_cluster_vm_refuses_options_a_command_would_drop() -> None:
    with pytest.raises(ValidationError, match="force does nothing for command create_snapshot"):
        cluster_vm.check_params({"command": "create_snapshot", "name": "a", "snapshot_name": "s", "force": True})
    with pytest.raises(ValidationError, match="disk_bus"):
        cluster_vm.check_params({"command": "clone", "name": "b", "src_name": "a", "disk_bus": "sata"})
    with pytest.raises(ValidationError, match="snapshot_name required"):
        cluster_vm.check_params({"command": "rollback_snapshot", "name": "a"})
    # defaults are not "given"; stop honours force; crm_config_cmd goes with clone
    assert cluster_vm.check_params({"command": "stop", "name": "a", "force": True, "enable": True}) == "stop"
    assert cluster_vm.check_params({"command": "clone", "name": "b", "src_name": "a", "crm_config_cmd": ["x"]})


def test_cluster_vm_purge_date_forms() -> None:
    assert cluster_vm.purge_before({"posix": 1_700_000_000}) == datetime.fromtimestamp(1_700_000_000, UTC)
    aware = cluster_vm.purge_before({"iso_8601": "2024-01-02T03:04:05+02:00"})
    assert aware.isoformat() == "2024-01-02T03:04:05+02:00"
    local = cluster_vm.purge_before({"date": "2021-01-24", "time": "08:00"})
    assert local.tzinfo is not None and (local.hour, local.minute) == (8, 0)
    for bad in ({"date": "2021-01-24"}, {"posix": 1, "iso_8601": "2021-01-01"}, {"date": "24/01/2021", "time": "8:00"}):
        with pytest.raises(ValidationError):
            cluster_vm.purge_before(bad)


def test_cluster_vm_options_as_vm_manager_stores_them() -> None:
    options = cluster_vm.vm_options(
        {
            "pacemaker_params": {"autoset_utilization_cpu": False},
            "pacemaker_utilization": {"cpu": 4},
            "metadata": {"size": 3},
            "stop_timeout": 60,
            "enable": False,
            "nostart": True,
        }
    )
    assert options.pacemaker_params == {"autoset_utilization_cpu": "false"}
    assert options.pacemaker_utilization == {"cpu": "4"}
    assert options.metadata == {"size": "3"}
    assert (options.stop_timeout, options.enable, options.start) == ("60", False, False)


def test_cluster_vm_status_of_an_absent_vm_is_undefined() -> None:
    class Absent:
        def vm(self, name: str) -> Any:
            raise NotFoundError(f"no VM named {name!r}")

    outcome = cluster_vm.run(Absent(), {"command": "status", "name": "gone1"})  # type: ignore[arg-type]
    assert (outcome.changed, outcome.values["status"]) == (False, "Undefined")


def test_cluster_vm_failure_says_incomplete_changed() -> None:
    assert cluster_vm.failure(OperationIncomplete("kept"))["changed"] is True
    failed = cluster_vm.failure(ConflictError("no", reason="conflict"))
    assert (failed["changed"], failed["reason"]) == (False, "conflict")
