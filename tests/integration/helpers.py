"""Small helpers for tests against the real lab: make VMs quickly, read disks, check leftovers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vmconsole.config import Config
from vmconsole.core.services import Services
from vmconsole.core.tasks import Task
from vmconsole.core.vms import CreateSpec, VmOptions, plan_create, plan_metadata_set
from vmconsole.domain import naming
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml, disk_image


def make_spec(
    lab: Lab,
    name: str,
    *,
    data_disks: int = 0,
    enable: bool = True,
    start: bool = True,
    metadata: dict[str, str] | None = None,
    image: str | None = None,
    **options: Any,
) -> CreateSpec:
    state = lab.state()
    assert state is not None
    blank = image or str(disk_image(lab))
    return CreateSpec(
        name=name,
        image=blank,
        xml=base_xml(lab, name, state.domain_type),
        data_disks=[blank] * data_disks,
        options=VmOptions(
            pacemaker_params={"force_stop": "true"}, enable=enable, start=start, metadata=metadata, **options
        ),
    )


def create_vm(services: Services, lab: Lab, name: str, **kwargs: Any) -> None:
    services.run(plan_create(services, make_spec(lab, name, **kwargs)))


def leftovers(services: Services, name: str) -> list[str]:
    """Everything of VM ``name`` still on the cluster (group, images, primitive, journal entries)."""
    found: list[str] = []
    if name in services.rbd.group_names():
        found.append(f"group {name}")
    images = services.rbd.image_ids()
    found += [f"image {i}" for i in images if i == naming.system_image(name) or i.startswith(f"data_{name}_")]
    found += [f"temporary {g}" for g in services.rbd.group_names() if g.startswith("vmconsole")]
    found += [f"temporary image {i}" for i in images if "vmconsolenew" in i or "vmconsoleold" in i]
    if name in services.primitives():
        found.append(f"primitive {name}")
    found += [f"journal {e['task']} ({e['operation']})" for e in services.journal.entries() if e.get("vm") == name]
    return found


def checksum(services: Services, image: str) -> str:
    size = services.rbd.image_size(image)
    digest = hashlib.sha256()
    step = 4 << 20
    for chunk in services.rbd.read_ranges(image, [(o, min(step, size - o)) for o in range(0, size, step)]):
        digest.update(chunk)
    return digest.hexdigest()


def write_pattern(services: Services, image: str, seed: bytes, every: int = 4 << 20, length: int = 4096) -> None:
    """Write a distinct block at the start of every object of the image."""
    size = services.rbd.image_size(image)
    for offset in range(0, size, every):
        block = hashlib.sha256(seed + offset.to_bytes(8, "little")).digest() * (length // 32)
        services.rbd.write(image, offset, block)


def cli(config: Config, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert config.source is not None
    return subprocess.run(
        [sys.executable, "-m", "vmconsole", "--config", str(config.source), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_json(config: Config, *args: str) -> Any:
    result = cli(config, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def inject_failure(task: Task, index: int) -> Task:
    """Make step ``index`` fail right after it did its work (so its own undo must run too)."""
    step = task.steps[index]
    original = step.run

    def failing(ctx: Any) -> None:
        original(ctx)
        raise RuntimeError(f"injected failure after step {index}: {step.name}")

    step.run = failing
    return task


def random_qcow2(path: Path, mib: int) -> Path:
    raw = path.with_suffix(".raw")
    subprocess.run(["dd", "if=/dev/urandom", f"of={raw}", "bs=1M", f"count={mib}", "status=none"], check=True)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    return path


@contextmanager
def another_operator_holds(services: Services, config: Config, vm: str, metadata: dict[str, str]) -> Iterator[Services]:
    """While the body runs, a task (setting ``metadata`` on ``vm``) holds the VM's lock; the body gets
    the services of a second operator (another connection, as another console would have)."""
    gate, release = threading.Event(), threading.Event()
    task = plan_metadata_set(services, vm, metadata)
    original = task.steps[0].run

    def slow(ctx: Any) -> None:
        gate.set()
        release.wait(30)
        original(ctx)

    task.steps[0].run = slow
    worker = threading.Thread(target=services.run, args=(task,))
    worker.start()
    assert gate.wait(30), "the first task never started"
    other = Services(config)
    try:
        yield other
    finally:
        release.set()
        worker.join(30)
        other.close()
