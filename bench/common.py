"""Shared by the benchmarks: the lab, and synthetic VMs made fast (straight to RBD and the CIB)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lxml import etree

from vmconsole import config as configuration
from vmconsole.backends.proc import run
from vmconsole.core.services import Services
from vmconsole.domain.primitive_builder import PrimitiveSpec, build_primitive
from vmconsole.lab.lab import Lab

PREFIX = "bench"


@contextmanager
def bench_services() -> Iterator[Services]:
    """Services on the running lab (started here when none runs, and then stopped at the end); the
    synthetic VMs are removed on the way out, whatever happened."""
    lab = Lab(log=lambda m: print(m, file=sys.stderr))
    started = False
    if not lab.is_up():
        lab.up()
        started = True
    services = Services(configuration.load_file(lab.paths.config_file))
    try:
        yield services
    finally:
        remove_synthetic_vms(services)
        services.close()
        if started:
            lab.down()


def make_synthetic_vms(services: Services, count: int, *, snapshots: int = 0, size: int = 64 << 20) -> list[str]:
    """``count`` VMs in vm_manager's layout (group, system image, metadata, a Stopped primitive)."""
    names = [f"{PREFIX}{i:04d}" for i in range(count)]
    existing = set(services.rbd.group_names())
    xml = "<domain type='kvm'><name>x</name><memory>65536</memory><devices/></domain>"
    fragment = etree.Element("configuration")
    resources = etree.SubElement(fragment, "resources")
    for name in names:
        if name in existing:
            continue
        image = f"system_{name}"
        services.rbd.create_image(image, size)
        services.rbd.create_group(name)
        services.rbd.group_add(name, image)
        services.rbd.metadata_set_many(
            image, {"vm_name": name, "xml": xml, "_base_xml": xml, "_disk_bus": "virtio", "role": "bench"}
        )
        for index in range(snapshots):
            services.rbd.group_snap_create(name, f"s{index}")
        resources.append(
            build_primitive(PrimitiveSpec(name=name, xml_dir="/tmp/vmconsole-bench-xml", target_role="Stopped"))
        )
    if len(resources):
        services.pacemaker.modify_configuration(etree.tostring(fragment, encoding="unicode"))
    return names


def remove_synthetic_vms(services: Services) -> None:
    names = [g for g in services.rbd.group_names() if g.startswith(PREFIX)]
    services.pacemaker.delete_primitives(names)
    for name in names:
        for snap in services.rbd.group_snapshots(name):
            services.rbd.group_snap_remove(name, snap)
        services.rbd.group_remove_image(name, f"system_{name}")
        services.rbd.remove_group(name)
        services.rbd.remove_image(f"system_{name}")
        services.rbd.remove_object(f"vmconsole.snapshots.{name}")


@contextmanager
def paxos_interval(services: Services, seconds: float) -> Iterator[None]:
    """Run with a monitor commit interval like a real cluster's (Ceph's default is 1 s); the monitors'
    value before is put back on the way out, whatever happened (the lab is shared)."""
    conf = services.config.ceph.conf

    def current() -> float:
        result = run(
            ["ceph", "-c", conf, "tell", "mon.*", "config", "get", "paxos_propose_interval", "--format", "json"],
            timeout=60,
            backend="ceph",
            check=True,
        )
        values = [json.loads(line)["paxos_propose_interval"] for line in result.stdout.splitlines() if line.strip()]
        return float(values[0]) if values else 0.05

    def set_interval(value: float) -> None:
        # at runtime: the lab's ceph.conf value would win over the monitors' config database
        run(
            ["ceph", "-c", conf, "tell", "mon.*", "config", "set", "paxos_propose_interval", str(value)],
            timeout=60,
            backend="ceph",
            check=True,
        )

    before = current()
    set_interval(seconds)
    try:
        yield
    finally:
        set_interval(before)
        print(f"paxos_propose_interval back to {before:g} s", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any], repeat: int = 1) -> float:
    """Median wall time of ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2]


def report(name: str, results: dict[str, Any]) -> None:
    print(json.dumps({"benchmark": name, **results}, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
