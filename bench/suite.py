"""``bench/run``: every figure of issue 12 in one command, each with its baseline measured in the same run.

    bench/run            # everything: the scale fixture at 500, 200 and 50 VMs (seeded when missing,
                         # kept after), then the data-path and snapshot figures
    bench/run --quick    # the scale pass at 50 VMs only, fewer repeats of the others
    bench/run --io       # the data-path and snapshot figures only (no scale pass): about 5 minutes
    bench/run --figures import,deep-clone,linked-clone,snapshots,pause,scale   # any of them
    bench/run --keep-primitives   # leave the fixture's primitives in the CIB (faster next run)

One JSON line per figure on stdout (``{"figure", "vms", "value", "unit", "baseline", "ratio",
"target", "meets"}``, or ``"measured": false`` with ``"why"``), a copy in ``bench/results/run.jsonl``,
and ``BENCHMARKS.md`` written (machine, command, figures, ratios, what the profiles showed). Exit 0
when every figure of the run was measured, 1 otherwise. Progress goes to stderr. A run of some figures
only (``--figures``, ``--io``) keeps the other figures' lines of ``bench/results/run.jsonl`` (each with
the date of its own run) in both files, so ``BENCHMARKS.md`` always lists every figure.

The lab: the machine's single-node lab, used as it is when it is up (started when none runs, and then
stopped after). The fixture lives in pool ``bench`` (see ``fixture.py``); its primitives are taken out
of the CIB after the scale pass, before the data-path figures, unless ``--keep-primitives``. The other
figures' VMs and images (``io_figures.py``, ``snapshot_figures.py``) are made for the run and removed at
its end, whatever happened.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fixture
import io_figures
import snapshot_figures

from vmconsole import config as configuration
from vmconsole.backends.proc import run
from vmconsole.backends.rbd import RbdSession
from vmconsole.config import Config
from vmconsole.core.state import StateReader
from vmconsole.lab.lab import Lab

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
FIGURES: list[dict[str, Any]] = []
BASELINE_SAMPLE = 3  # VMs the per-VM way is timed on (each costs seconds), scaled to the table

RUN: dict[str, str] = {}  # "at": when this run started (every line carries it), "command"
GROUPS = ("scale", "pause", "import", "deep-clone", "linked-clone", "snapshots")
IO_GROUPS = GROUPS[1:]
# the figures each group emits (what --figures replaces in run.jsonl; a group that fails emits them unmeasured)
GROUP_FIGURES = {
    "pause": ("guest_pause_multi_disk_snapshot",),
    "import": ("import_2gib_qcow2_vs_rbd_import",),
    "deep-clone": ("deep_clone_vs_rbd_deep_cp",),
    "linked-clone": ("linked_clone_10gib",),
    "snapshots": ("bulk_snapshot_50_vms_vs_serial", "purge_100_snapshots_vs_serial"),
}
PER_VM_BASELINE = "vm_manager's per-VM way"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(figure: str, vms: int | None, **fields: Any) -> None:
    line: dict[str, Any] = {"figure": figure, "vms": vms, "measured": "value" in fields, **fields, "run": RUN["at"]}
    for key in ("value", "baseline", "ratio"):
        if isinstance(line.get(key), float):
            line[key] = round(line[key], 4 if line[key] < 1 else 2)
    FIGURES.append(line)
    print(json.dumps(line), flush=True)


def median_of(fn: Callable[[], float], repeat: int) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(repeat)]
    return statistics.median(samples), samples


# ------------------------------------------------------------------------------------------- state
def per_vm_way(config: Config, names: list[str]) -> float:
    """vm_manager's status() per VM: a new RADOS connection and the group list, then ``crm resource
    status`` twice (its list_resources, then show()). Seconds per VM."""
    started = time.perf_counter()
    for name in names:
        with RbdSession(config.ceph) as session:
            session.group_exists(name)
        for _ in range(2):
            run(["crm", "resource", "status"], timeout=120, backend="pacemaker")
    return (time.perf_counter() - started) / len(names)


def cold_read(config_path: Path) -> tuple[float, float, int]:
    """A new process reading the whole state as the ``vmconsole`` command does (its modules' objects
    settled out of the collector's way once imported, the process ended as soon as its answer is out):
    (its wall time from launch, the read alone, VMs)."""
    code = (
        "import time, json, sys\n"
        "t0 = time.perf_counter()\n"
        "from pathlib import Path\n"
        "from vmconsole import config\n"
        "from vmconsole.cli.main import leave, settle\n"
        "from vmconsole.core.state import StateReader\n"
        "settle()\n"
        "r = StateReader(config.load_file(Path(sys.argv[1])))\n"
        "t1 = time.perf_counter(); s = r.read(); t2 = time.perf_counter()\n"
        "print(json.dumps({'read': t2 - t1, 'vms': len(s.vms), 'problems': list(s.problems)}))\n"
        "r.close()\n"
        "leave(0)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "-c", code, str(config_path)], capture_output=True, text=True, timeout=300, check=True
    )
    wall = time.perf_counter() - started
    data = json.loads(result.stdout.strip().splitlines()[-1])
    if data["problems"]:
        raise RuntimeError(f"partial state: {data['problems']}")
    return wall, float(data["read"]), int(data["vms"])


def touch_cluster(config: Config, round_: int) -> None:
    """A change as a refresh meets it: a Pacemaker configuration change (a meta attribute of one fixture
    primitive: a new CIB epoch) and a Ceph one (a metadata key of another VM's system disk)."""
    run(
        [
            "crm_resource",
            "--resource",
            fixture.vm_name(20),
            "--meta",
            "--set-parameter",
            "vmconsole-bench-touch",
            "--parameter-value",
            str(round_),
        ],
        timeout=60,
        backend="pacemaker",
        check=True,
    )
    with RbdSession(config.ceph) as session:
        session.metadata_set_many(f"system_{fixture.vm_name(21)}", {"bench_touch": str(round_)})


def measure_state(size: int, config: Config, config_path: Path) -> None:
    names = [fixture.vm_name(i) for i in range(size)]
    log(f"state reads at {size} VMs: the per-VM way (vm_manager), on {BASELINE_SAMPLE} VMs")
    per_vm = per_vm_way(config, names[20 : 20 + BASELINE_SAMPLE])
    baseline = per_vm * size
    emit("vm_manager_status_per_vm", size, value=per_vm, unit="s/VM", note="2 crmsh calls + a RADOS connection")

    log(f"state reads at {size} VMs: cold (a new process)")
    colds = [cold_read(config_path) for _ in range(3)]
    vms = colds[0][2]
    if vms < size:
        raise RuntimeError(f"the cold read saw {vms} VMs, not {size}")
    cold_wall = statistics.median(c[0] for c in colds)
    cold_read_only = statistics.median(c[1] for c in colds)
    emit(
        "state_read_cold",
        size,
        value=cold_wall,
        unit="s",
        read_alone=cold_read_only,
        baseline=baseline,
        ratio=baseline / cold_wall,
        target=1.0,
        meets=cold_wall < 1.0,
        note="a new process as the vmconsole command runs one: interpreter start, imports, connection, read, "
        "the process ended once the answer is out",
    )

    reader = StateReader(config)
    try:
        reader.read()
        warm, _ = median_of(lambda: _timed(reader.read), 5)
        emit(
            "state_read_warm",
            size,
            value=warm,
            unit="s",
            baseline=baseline,
            ratio=baseline / warm,
            target=1.0,
            meets=warm < 1.0,
            note="a console's refresh, nothing changed",
        )
        samples = []
        for round_ in range(3):
            touch_cluster(config, round_)
            samples.append(_timed(reader.read))
        changed = statistics.median(samples)
        emit(
            "state_read_after_change",
            size,
            value=changed,
            unit="s",
            samples=[round(s, 3) for s in samples],
            baseline=baseline,
            ratio=baseline / changed,
            target=1.0,
            meets=changed < 1.0,
            note="a CIB configuration change and a metadata change since the last read",
        )
    finally:
        reader.close()

    # Pacemaker's own floor, same run: what its tools take to answer, before vmconsole reads a byte
    floor_status, _ = median_of(
        lambda: _timed(lambda: run(["crm_mon", "--output-as=xml", "--inactive"], timeout=120, backend="pacemaker")), 3
    )

    def whole_cib_then_crm_mon() -> None:
        cib_text = run(["cibadmin", "--query"], timeout=120, backend="pacemaker", check=True).stdout
        run(
            ["crm_mon", "--output-as=xml", "--inactive"],
            timeout=120,
            backend="pacemaker",
            env={"CIB_file": "/dev/stdin"},
            input_text=cib_text,
            check=True,
        )

    floor_chain, _ = median_of(lambda: _timed(whole_cib_then_crm_mon), 3)
    emit(
        "pacemaker_floor_crm_mon",
        size,
        value=floor_status,
        unit="s",
        note="one crm_mon --output-as=xml --inactive alone (a read after a status change waits for it)",
    )
    emit(
        "pacemaker_floor_cib_then_crm_mon",
        size,
        value=floor_chain,
        unit="s",
        note="cibadmin --query (the whole CIB), then crm_mon computing the status from that CIB on its standard "
        "input, alone: what a first read and a read after a configuration change wait for at least",
    )

    started = time.perf_counter()
    listed = subprocess.run(
        [PYTHON, "-m", "vmconsole", "--config", str(config_path), "vm", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    vm_list = time.perf_counter() - started
    rows = len(json.loads(listed.stdout).get("vms", [])) if listed.stdout.strip() else 0
    emit(
        "cli_vm_list",
        size,
        value=vm_list,
        unit="s",
        rows=rows,
        exit_code=listed.returncode,
        baseline=baseline,
        ratio=baseline / vm_list,
        note="vmconsole vm list --json, a new process",
    )


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------- console
def measure_console(size: int, config_path: Path, idle: float) -> None:
    log(f"console at {size} VMs: first paint, full table, refresh, idle {idle:g} s")
    result = subprocess.run(
        [PYTHON, str(HERE / "console_probe.py"), str(config_path), str(size), str(idle)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        why = result.stderr.strip().splitlines()[-1:] or ["no output"]
        for figure in ("console_first_paint", "console_full_table", "console_refresh_main_thread"):
            emit(figure, size, why=f"the console probe failed: {why[0]}")
        return
    data = json.loads(result.stdout.strip().splitlines()[-1])
    imports = float(data["imports"])
    # timed from the console's start (the app made, its modules loaded), as issue 12's "now" figures
    # were; the process's start adds the imports, a line of their own (bytecode compiled, as installed)
    emit("console_imports", size, value=round(imports, 4), unit="s", note="the interpreter's imports of the console")
    first_paint, full_table = data["first_paint"] - imports, data["full_table"] - imports
    emit(
        "console_first_paint",
        size,
        value=round(first_paint, 4),
        unit="s",
        from_process_start=data["first_paint"],
        target=0.5,
        meets=first_paint < 0.5,
        note=f"from the console's start to the main screen; from the process start: {data['first_paint']:.2f} s",
    )
    emit(
        "console_full_table",
        size,
        value=round(full_table, 4),
        unit="s",
        rows=data["rows"],
        from_process_start=data["full_table"],
        target=1.5,
        meets=full_table < 1.5,
        note=f"from the console's start to every row; from the process start: {data['full_table']:.2f} s",
    )
    refresh = data["refresh_main_thread"]
    emit(
        "console_refresh_main_thread_max",
        size,
        value=refresh["max"],
        unit="s",
        median=refresh["median"],
        samples=refresh["samples"],
        cpu_max=refresh["cpu_max"],
        cpu_median=refresh["cpu_median"],
        target=0.030,
        meets=refresh["max"] < 0.030,
        note="10 % of the rows changed, applied as the refresher does; wall time (cpu_*: the main thread's "
        "own CPU time, without the waits for a core or the GIL that the machine's load adds)",
    )
    emit("console_refresh_main_thread_median", size, value=refresh["median"], unit="s", target=0.030)
    idle_cpu = data["idle_cpu"]
    emit(
        "console_idle_cpu",
        size,
        value=idle_cpu["share_of_one_core"],
        unit="share of one core",
        cpu_seconds=idle_cpu["cpu_seconds"],
        wall_seconds=idle_cpu["seconds"],
        refresh_interval=data["refresh_interval"],
        target=0.05,
        meets=idle_cpu["share_of_one_core"] < 0.05,
        note="every thread of the console process (its refresh reads included); not the daemons it asks",
    )
    memory = data["memory_mib"]
    emit(
        "console_rss",
        size,
        value=memory["VmRSS"],
        unit="MiB",
        peak=memory["VmHWM"],
        target=150,
        meets=memory["VmHWM"] < 150,
    )


# ------------------------------------------------------------------------------------------- report
def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "?",
    )

    def version(argv: list[str]) -> str:
        result = run(argv, timeout=30, backend="bench")
        return (result.stdout or result.stderr).strip().splitlines()[0] if result.ok else "?"

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores (shared with other sessions: timings are noisy, ratios are what count)",
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ceph": version(["ceph", "--version"]),
        "pacemaker": version(["pacemakerd", "--version"]),
        "load_at_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def merged_lines(previous: list[dict[str, Any]], groups: set[str]) -> list[dict[str, Any]]:
    """This run's lines, and the lines of ``previous`` (an earlier run.jsonl) for the figures this run
    did not measure: a run of some figures only leaves the others' last results in place."""
    if set(GROUPS) <= groups:
        return list(FIGURES)
    replaced = {figure for group in groups if group != "scale" for figure in GROUP_FIGURES[group]}
    scale_figures = {
        line["figure"] for line in previous if not any(line["figure"] in f for f in GROUP_FIGURES.values())
    }
    if "scale" in groups:
        replaced |= scale_figures | {line["figure"] for line in FIGURES}
    kept = [line for line in previous if line["figure"] not in replaced]
    # the scale figures first, as a whole run writes them, then the others in GROUPS order
    order = {figure: index for index, figure in enumerate(f for g in GROUPS[1:] for f in GROUP_FIGURES[g])}

    def rank(line: dict[str, Any]) -> tuple[int, int]:
        return (1, order[line["figure"]]) if line["figure"] in order else (0, 0)

    return sorted([*kept, *FIGURES], key=rank)


def _cell(line: dict[str, Any], key: str) -> str:
    value = line.get(key)
    return "" if value is None else str(value)


def write_markdown(
    command: str, info: dict[str, str], started: datetime, seconds: float, lines_out: list[dict[str, Any]]
) -> None:
    carried = sorted({line.get("run") or "an earlier run" for line in lines_out if line.get("run") != RUN["at"]})
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {started:%Y-%m-%d %H:%M} UTC ({seconds:.0f} s). Every baseline was measured in",
        "the same run as its figure. Re-run it to refresh this file; `bench/results/run.jsonl` has the raw lines.",
    ]
    if carried:
        lines += [
            "",
            f"This run measured some figures only; the rows marked † are kept from earlier runs of `bench/run`"
            f" ({', '.join(carried)}), on the machine as it was then.",
        ]
    lines += [
        "",
        "## Machine",
        "",
        *[f"- **{key}**: {value}" for key, value in info.items()],
        "",
        "## Figures",
        "",
        "| figure | VMs | value | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for line in lines_out:
        name = line["figure"] + (" †" if line.get("run") != RUN["at"] else "")
        if not line["measured"]:
            lines.append(f"| {name} | {_cell(line, 'vms')} | **not measured**: {line.get('why', '')} | | | | |")
            continue
        unit = line.get("unit", "")
        baseline = ""
        if "baseline" in line:
            baseline_unit = "s" if line.get("target_of") != "ratio" else unit
            baseline = f"{line['baseline']} {baseline_unit} ({line.get('baseline_what', PER_VM_BASELINE)})"
        ratio = f"{line['ratio']}×" if "ratio" in line else ""
        target = _cell(line, "target")
        if target and line.get("target_of") == "ratio":
            target = f"ratio ≥ {target}"
        elif target:
            target = f"< {target} {unit}"
        met = {True: "yes", False: "**no**"}.get(line.get("meets"), "")  # type: ignore[arg-type]
        value = f"{line['value']} {unit}"
        if "seconds" in line:
            value += f" ({round(line['seconds'], 2)} s)"
        lines.append(f"| {name} | {_cell(line, 'vms')} | {value} | {baseline} | {ratio} | {target} | {met} |")
    noted = FIGURE_NOTES | {"console_first_paint", "console_full_table"}
    notes = [line for line in lines_out if line["measured"] and line.get("note") and line["figure"] in noted]
    if notes:
        lines += ["", "### How the console, data-path and snapshot figures are measured", ""]
        lines += [f"- **{line['figure']}**: {line['note']}." for line in notes]
    lines += ["", (HERE / "PROFILES.md").read_text().rstrip(), ""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


FIGURE_NOTES = {figure for figures in GROUP_FIGURES.values() for figure in figures}


def parse_groups(args: argparse.Namespace) -> set[str]:
    if args.figures:
        wanted = {g.strip() for g in args.figures.split(",") if g.strip()}
        unknown = wanted - set(GROUPS)
        if unknown:
            raise SystemExit(f"bench/run: unknown figures {', '.join(sorted(unknown))} (known: {', '.join(GROUPS)})")
        return wanted
    return set(IO_GROUPS) if args.io else set(GROUPS)


def why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def measure_io(lab: Lab, lab_config: Config, groups: set[str], repeat: int) -> None:
    """The data-path and snapshot figures: each group that fails says why in its lines, the others go on."""
    if "pause" in groups:
        try:
            io_figures.measure_guest_pause(lab, lab_config, emit, max(repeat, 5))
        except Exception as exc:
            for figure in GROUP_FIGURES["pause"]:
                emit(figure, None, why=why(exc))
    in_namespace = [g for g in ("import", "deep-clone", "linked-clone", "snapshots") if g in groups]
    if not in_namespace:
        return
    measures: dict[str, Callable[[Any], None]] = {
        "import": lambda s: io_figures.measure_import(s, lab, emit, repeat),
        "deep-clone": lambda s: io_figures.measure_deep_clone(s, lab, emit, repeat),
        "linked-clone": lambda s: io_figures.measure_linked_clone(s, lab, emit, repeat),
        "snapshots": lambda s: snapshot_figures.measure(s, emit),
    }
    try:
        with io_figures.io_services(lab, lab_config) as services:
            for group in in_namespace:
                try:
                    measures[group](services)
                except Exception as exc:
                    for figure in GROUP_FIGURES[group]:
                        if not any(line["figure"] == figure for line in FIGURES):
                            emit(figure, None, why=why(exc))
    except Exception as exc:  # the namespace could not be set up (or cleaned): say so for what is missing
        for group in in_namespace:
            for figure in GROUP_FIGURES[group]:
                if not any(line["figure"] == figure for line in FIGURES):
                    emit(figure, None, why=why(exc))
        log(f"the io namespace: {why(exc)}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the scale pass at 50 VMs only; fewer repeats")
    parser.add_argument("--io", action="store_true", help="the data-path and snapshot figures only (no scale pass)")
    parser.add_argument("--figures", help=f"comma-separated, any of: {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--repeat", type=int, default=None, help="repeats of each data-path figure (5; --quick 1)")
    parser.add_argument("--keep-primitives", action="store_true", help="leave the fixture's primitives in the CIB")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds the idle console is watched (30)")
    args = parser.parse_args()
    groups = parse_groups(args)
    repeat = args.repeat or (1 if args.quick else 5)
    command = " ".join(["bench/run", *sys.argv[1:]])
    sizes = (50,) if args.quick else tuple(sorted(fixture.SIZES, reverse=True))
    started_at = datetime.now(UTC)
    RUN["at"] = f"{started_at:%Y-%m-%d %H:%M} UTC"
    started = time.perf_counter()
    info = machine()
    # new processes (a cold read, the console) start as an installed vmconsole does: pip compiles the
    # package at install, while a checkout's environment may forbid writing bytecode
    # (PYTHONDONTWRITEBYTECODE), which would time a compile of every module
    compileall.compile_dir(str(HERE.parent / "vmconsole"), quiet=1)
    lab = Lab(log=log)
    lab_started = False
    if not lab.is_up():
        lab.up()
        lab_started = True
    lab_config = configuration.load_file(lab.paths.config_file)
    try:
        if "scale" in groups:
            for size in sizes:
                try:
                    seeded = fixture.seed(lab, lab_config, size)
                    emit("fixture_seed", size, value=seeded, unit="s", note="0 work when it exists already")
                    placed = fixture.set_primitives(lab_config, size)
                    emit("fixture_primitives", size, value=placed, unit="s", note="CIB set to this size, probes done")
                    config, config_path = fixture.size_config(lab_config, size)
                    measure_state(size, config, config_path)
                    if size == max(sizes):
                        measure_console(size, config_path, args.idle)
                except Exception as exc:  # a size that could not be measured says why, the others go on
                    emit("state_read_cold", size, why=why(exc))
            if not args.keep_primitives:
                # the data-path figures time copies and snapshots, not the fixture's dozen running
                # guests and their monitors: those go before them
                log(f"removed {fixture.remove_primitives(lab_config)} fixture primitives from the CIB")
        measure_io(lab, lab_config, groups, repeat)
    finally:
        if "scale" in groups and not args.keep_primitives:
            left = fixture.remove_primitives(lab_config)
            if left:
                log(f"removed {left} fixture primitives from the CIB")
        if lab_started:
            lab.down()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    jsonl = out / "run.jsonl"
    previous = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()] if jsonl.exists() else []
    lines_out = merged_lines(previous, groups)
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines_out))
    write_markdown(command, info, started_at, time.perf_counter() - started, lines_out)
    return 0 if all(line["measured"] for line in FIGURES) else 1


if __name__ == "__main__":
    raise SystemExit(main())
