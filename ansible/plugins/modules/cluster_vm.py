#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module cluster_vm: SEAPATH's VM module, on vmconsole's service layer."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_vm
short_description: Manage the virtual machines of a SEAPATH cluster with vmconsole
version_added: "0.1.0"
description:
  - A drop-in replacement for SEAPATH's C(cluster_vm) module (same commands, options, aliases and
    return keys), running vmconsole's service layer on the hypervisor the play targets.
  - Every change runs as a vmconsole task, exactly as the console and the C(vmconsole) CLI run it
    (per-VM cluster-wide locks, a journal that C(vmconsole recover) can finish or undo, and the audit
    history, which records the user of the Ansible connection).
  - Check mode is real. It plans the command, validates everything the real run would, changes
    nothing, and reports C(changed) as what the real run would change.
  - C(changed) is true exactly when something changed. A state that holds already (create an
    existing VM without O(force), remove an absent VM, start a Started VM, stop a Stopped one, enable
    an enabled VM, disable a disabled one, create a snapshot that exists, remove an absent snapshot,
    purge with nothing to purge, a colocation or pacemaker-remote that is recorded already) is C(ok).
    A real conflict fails with vmconsole's message and a stable RV(reason) code.
  - An option is honoured by the command it is given to, or the module fails saying so; SEAPATH's
    module accepted every option with every command and dropped most of them.
  - Differences from SEAPATH's module. O(purge_date.posix) is seconds (SEAPATH documented
    milliseconds and read seconds). O(force) with C(stop) powers the VM off when a normal stop does
    not finish (SEAPATH ignored it). O(crm_config_cmd) is honoured by C(clone) too. RV(status) uses
    vmconsole's seven words - C(Stopped) where vm_manager said "Stopped (disabled)", C(Failed) where
    it said "FAILED" followed by the node. RV(list_metadata) lists the user keys only (not C(xml) nor the C(_) settings).
    C(rollback_snapshot) takes a safety snapshot first and returns the VM to its previous state.
author:
  - vmconsole developers
options:
  command:
    description:
      - The action to perform.
      - C(create) imports O(system_image) and O(additional_disks) and builds the VM from O(xml), then
        enables and starts it (see O(enable), O(nostart)). Requires O(name), O(xml), O(system_image).
      - C(clone) copies the VM O(src_name) into O(name) (a deep copy taken at one instant across its disks).
      - C(remove) deletes a VM, its Pacemaker resource, disks and snapshots.
      - C(list_vms) lists every VM of the cluster; C(status) returns the status of one.
      - C(start), C(stop), C(enable), C(disable) change its state in Pacemaker.
      - C(list_snapshots), C(create_snapshot), C(remove_snapshot), C(rollback_snapshot) and
        C(purge_image) manage its snapshots (every disk at one instant).
      - C(list_metadata) and C(get_metadata) read its user metadata.
      - C(define_colocation) keeps it with other resources (recorded in the VM, re-applied on enable).
      - C(add_pacemaker_remote) and C(remove_pacemaker_remote) manage the pacemaker-remote node its
        guest carries.
    type: str
    required: true
    choices: [create, remove, list_vms, start, status, stop, clone, list_snapshots, create_snapshot,
              remove_snapshot, rollback_snapshot, purge_image, list_metadata, get_metadata, disable,
              enable, define_colocation, add_pacemaker_remote, remove_pacemaker_remote]
  name:
    description:
      - The VM (letters and digits). For C(clone), the new VM.
      - Required by every command but C(list_vms).
    type: str
    aliases: [guest]
  xml:
    description:
      - The libvirt domain XML of the VM, without its disks, as content (for example from
        C(lookup('file', ...)) or C(lookup('template', ...))), not a file name.
      - Required by C(create); for C(clone), replaces the XML of the source.
    type: str
  system_image:
    description:
      - The system disk image (qcow2 or raw) on the target host, for C(create).
    type: path
  additional_disks:
    description:
      - Image files of the data disks (C(data_<vm>_0), C(data_<vm>_1)...), for C(create).
    type: list
    elements: path
    default: []
  disk_bus:
    description:
      - The bus of the VM's disks (C(virtio), C(sata), C(scsi), C(ide), C(usb)), for C(create).
      - Default C(virtio). A clone keeps its source's.
    type: str
  force:
    description:
      - With C(create) and C(clone), replace a VM of that name. The new VM is built aside and swapped
        in at the end; the old one stays if anything fails.
      - With C(stop), power the VM off when a normal stop does not finish in its stop timeout.
    type: bool
    default: false
  enable:
    description:
      - With C(create) and C(clone), add the new VM to Pacemaker. V(false) leaves it C(Disabled).
    type: bool
    default: true
  nostart:
    description:
      - With C(create), C(clone) and C(enable), add the VM to Pacemaker stopped (target-role Stopped).
    type: bool
  src_name:
    description:
      - The VM to clone, for C(clone).
    type: str
  snapshot_name:
    description:
      - The snapshot, for C(create_snapshot), C(remove_snapshot) and C(rollback_snapshot).
    type: str
  metadata_name:
    description:
      - The metadata key, for C(get_metadata).
    type: str
  metadata:
    description:
      - User metadata (key, value) stored with the VM, for C(create) and C(clone). Keys are letters
        and digits.
    type: dict
  purge_date:
    description:
      - For C(purge_image), remove the snapshots taken before this moment. Give O(purge_date.date)
        and O(purge_date.time), or O(purge_date.iso_8601), or O(purge_date.posix).
      - A date in the future is refused. Protected snapshots, snapshots with linked clones and the
        safety snapshot of the last rollback are kept (the result says why).
    type: dict
    suboptions:
      date:
        description: Date, YYYY-MM-DD, local time of the target host (with O(purge_date.time)).
        type: str
      time:
        description: Time, HH:MM, local time of the target host (with O(purge_date.date)).
        type: str
      iso_8601:
        description:
          - Date and time in ISO 8601. Its time zone is honoured when it has one; without one it is
            the local time of the target host.
        type: str
      posix:
        description:
          - Seconds since 1970-01-01 00:00:00 UTC (SEAPATH's module documented milliseconds but read
            seconds).
        type: int
  purge_number:
    description:
      - For C(purge_image), remove this many snapshots, the oldest first. Without O(purge_date) and
        O(purge_number), C(purge_image) removes every snapshot it may.
    type: int
  preferred_host:
    description: With C(create) and C(clone), the node the VM runs on when it can.
    type: str
  pinned_host:
    description: With C(create) and C(clone), the only node the VM may run on.
    type: str
  live_migration:
    description: With C(create) and C(clone), allow live migration.
    type: bool
  migration_user:
    description: With C(create) and C(clone), the user for live migration over SSH (default root).
    type: str
  stop_timeout:
    description: With C(create) and C(clone), seconds the VM has to stop (default 30).
    type: raw
  migrate_to_timeout:
    description: With C(create) and C(clone), seconds a live migration may take (default 120).
    type: raw
  migration_downtime:
    description: With C(create) and C(clone), milliseconds of downtime allowed when live migrating (default 0).
    type: raw
  priority:
    description: With C(create) and C(clone), the Pacemaker priority of the VM (default 0).
    type: raw
  clear_constraint:
    description: With C(clone), do not inherit the source's preferred or pinned host.
    type: bool
    default: false
  pacemaker_meta:
    description: With C(create) and C(clone), extra meta attributes of the VM's primitive (a clone merges them over its source's).
    type: dict
  pacemaker_params:
    description: With C(create) and C(clone), extra parameters of the VM's primitive (a clone merges them over its source's).
    type: dict
  pacemaker_utilization:
    description: With C(create) and C(clone), utilization attributes of the VM's primitive (a clone merges them over its source's).
    type: dict
  clear_pacemaker_meta:
    description: With C(clone), do not inherit the source's O(pacemaker_meta).
    type: bool
    default: false
  clear_pacemaker_params:
    description: With C(clone), do not inherit the source's O(pacemaker_params).
    type: bool
    default: false
  clear_pacemaker_utilization:
    description: With C(clone), do not inherit the source's O(pacemaker_utilization).
    type: bool
    default: false
  crm_config_cmd:
    description:
      - With C(create) and C(clone), C(crm configure) commands run when the VM is enabled
        (location, colocation and order constraints only; needs crmsh).
    type: list
    elements: str
  strong:
    description:
      - With C(define_colocation), a strong colocation (score INFINITY; 700 otherwise). The VM then
        runs only where all of O(colocated_vms) run.
    type: bool
    default: false
  colocated_vms:
    description: The resources to keep the VM with, for C(define_colocation).
    type: list
    elements: str
  remote_name:
    description: The pacemaker-remote node name the guest carries, for C(add_pacemaker_remote).
    type: str
  remote_address:
    description: The address of that node, for C(add_pacemaker_remote).
    type: str
  remote_port:
    description: Its port, for C(add_pacemaker_remote).
    type: raw
  remote_timeout:
    description: Its connection timeout in seconds, for C(add_pacemaker_remote).
    type: raw
  config:
    description:
      - vmconsole's configuration file on the target host (not in SEAPATH's module). Default
        C($VMCONSOLE_CONFIG), then C(~/.config/vmconsole/config.toml), C(/etc/vmconsole/config.toml),
        else the defaults of a SEAPATH hypervisor (C(/etc/ceph/ceph.conf), pool C(rbd), C(qemu:///system)).
    type: path
requirements:
  - vmconsole on the target host, importable by the Python that runs the module (the
    C(vmconsole.seapath.vmconsole) role installs it in C(/opt/vmconsole), which the module finds by
    itself; C($VMCONSOLE_VENV) names another virtualenv)
  - Debian's python3-rbd, python3-rados and python3-libvirt
notes:
  - Runs on a hypervisor of the cluster (as root, like vm_manager).
  - A task that stops part-way fails with RV(reason=incomplete) and C(changed=true); its message says
    what was kept and the command (C(vmconsole recover), C(vmconsole vm remove) ...) that finishes or
    reverts it.
"""

EXAMPLES = r"""
- name: Create and start guest0
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: create
    system_image: /tmp/os.qcow2
    xml: "{{ lookup('file', 'guest0.xml', errors='strict') }}"
    metadata:
      myMetadata: value
    pacemaker_params:
      autoset_utilization_cpu: false
    pacemaker_utilization:
      cpu: 4
      memory: 2048

- name: Create guest1 with a data disk, disabled (status Disabled)
  vmconsole.seapath.cluster_vm:
    name: guest1
    command: create
    system_image: /tmp/os.qcow2
    additional_disks:
      - /tmp/data.qcow2
    xml: "{{ lookup('template', 'guest.xml.j2') }}"
    enable: false

- name: Status of guest0 (Undefined when it does not exist)
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: status
  register: guest0_status

- name: List all VMs
  vmconsole.seapath.cluster_vm:
    command: list_vms
  register: vms

- name: Stop guest0, powering it off if it does not stop in time
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: stop
    force: true

- name: Clone guest0 into guest2, without its pacemaker params
  vmconsole.seapath.cluster_vm:
    name: guest2
    src_name: guest0
    command: clone
    clear_pacemaker_params: true

- name: Snapshot guest0
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: create_snapshot
    snapshot_name: snap1

- name: Roll guest0 back to snap1
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: rollback_snapshot
    snapshot_name: snap1

- name: Remove the snapshots of guest0 taken before January 24th 2021 8:00 (local time)
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: purge_image
    purge_date:
      date: '2021-01-24'
      time: '08:00'

- name: Remove the snapshots of guest0 older than one week
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: purge_image
    purge_date:
      posix: "{{ (now(utc=true).timestamp() - 7 * 86400) | int }}"

- name: Read a metadata value
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: get_metadata
    metadata_name: myMetadata
  register: md

- name: Colocate guest0 with guest1
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: define_colocation
    colocated_vms:
      - guest1

- name: Add a pacemaker remote
  vmconsole.seapath.cluster_vm:
    name: guest0
    command: add_pacemaker_remote
    remote_name: remote1
    remote_address: 192.0.2.6
    remote_port: 3121
    remote_timeout: 20

- name: Remove guest2
  vmconsole.seapath.cluster_vm:
    name: guest2
    command: remove
"""

RETURN = r"""
list_vms:
  description: The VMs of the cluster, for C(list_vms).
  returned: when command is list_vms
  type: list
  elements: str
  sample: [guest0, guest1]
status:
  description:
    - The status of the VM, for C(status) - C(Undefined) (no such VM), C(Disabled) (not in Pacemaker),
      C(Starting), C(Started), C(Stopping), C(Stopped) or C(Failed).
  returned: when command is status
  type: str
  sample: Started
node:
  description: The node the VM runs on, for C(status).
  returned: when command is status
  type: str
  sample: hv1
enabled:
  description: Whether the VM is in Pacemaker, for C(status).
  returned: when command is status
  type: bool
list_snapshot:
  description: The snapshot names of the VM, oldest first, for C(list_snapshots) (the key SEAPATH's module returns).
  returned: when command is list_snapshots
  type: list
  elements: str
  sample: [snap0, snap1]
list_snapshots:
  description: The same list, under the key SEAPATH's documentation named.
  returned: when command is list_snapshots
  type: list
  elements: str
snapshots:
  description: Each snapshot with its creation time, protection and kind, for C(list_snapshots).
  returned: when command is list_snapshots
  type: list
  elements: dict
list_metadata:
  description: The user metadata keys of the VM, for C(list_metadata).
  returned: when command is list_metadata
  type: list
  elements: str
  sample: [myMetadata]
metadata:
  description: The user metadata of the VM, keys and values, for C(list_metadata).
  returned: when command is list_metadata
  type: dict
metadata_value:
  description: The value of O(metadata_name), for C(get_metadata).
  returned: when command is get_metadata
  type: str
  sample: my metadata value
purged:
  description: The snapshots C(purge_image) removed (in check mode, would remove).
  returned: when command is purge_image
  type: list
  elements: str
kept:
  description: The snapshots C(purge_image) kept, each with the reason.
  returned: when command is purge_image
  type: list
  elements: dict
safety_snapshot:
  description: The snapshot C(rollback_snapshot) took first (C(vmconsole snapshot rollback VM --undo) returns to it).
  returned: when command is rollback_snapshot and not in check mode
  type: str
plan:
  description: The vmconsole plan of a changing command (its steps); in check mode, what would run.
  returned: when something changed or would change
  type: dict
task:
  description: The vmconsole task that ran (its id, duration and message; C(vmconsole history) lists it).
  returned: when something changed
  type: dict
reason:
  description:
    - A stable code. On success without a change, why nothing was to be done (C(already_started),
      C(already_exists), C(already_absent)...). On failure, vmconsole's reason (C(not_found),
      C(conflict), C(locked), C(invalid), C(incomplete), C(read_only)...).
  returned: when nothing changed because the state held already, and on failure
  type: str
  sample: already_started
"""

import glob
import os
import sys
import traceback

from ansible.module_utils.basic import AnsibleModule

DEFAULT_VENV = "/opt/vmconsole"

ARGUMENT_SPEC = dict(
    command=dict(
        type="str",
        required=True,
        choices=[
            "create",
            "remove",
            "list_vms",
            "start",
            "status",
            "stop",
            "clone",
            "list_snapshots",
            "create_snapshot",
            "remove_snapshot",
            "rollback_snapshot",
            "purge_image",
            "list_metadata",
            "get_metadata",
            "disable",
            "enable",
            "define_colocation",
            "add_pacemaker_remote",
            "remove_pacemaker_remote",
        ],
    ),
    name=dict(type="str", aliases=["guest"]),
    xml=dict(type="str"),
    system_image=dict(type="path"),
    additional_disks=dict(type="list", elements="path", default=[]),
    disk_bus=dict(type="str"),
    force=dict(type="bool", default=False),
    enable=dict(type="bool", default=True),
    nostart=dict(type="bool"),
    src_name=dict(type="str"),
    snapshot_name=dict(type="str"),
    metadata_name=dict(type="str"),
    metadata=dict(type="dict"),
    purge_date=dict(
        type="dict",
        options=dict(
            date=dict(type="str"),
            time=dict(type="str"),
            iso_8601=dict(type="str"),
            posix=dict(type="int"),
        ),
        required_together=[("date", "time")],
        mutually_exclusive=[("date", "iso_8601", "posix"), ("time", "iso_8601", "posix")],
        required_one_of=[("date", "iso_8601", "posix")],
    ),
    purge_number=dict(type="int"),
    preferred_host=dict(type="str"),
    pinned_host=dict(type="str"),
    live_migration=dict(type="bool"),
    migration_user=dict(type="str"),
    stop_timeout=dict(type="raw"),
    migrate_to_timeout=dict(type="raw"),
    migration_downtime=dict(type="raw"),
    priority=dict(type="raw"),
    clear_constraint=dict(type="bool", default=False),
    pacemaker_meta=dict(type="dict"),
    pacemaker_params=dict(type="dict"),
    pacemaker_utilization=dict(type="dict"),
    clear_pacemaker_meta=dict(type="bool", default=False),
    clear_pacemaker_params=dict(type="bool", default=False),
    clear_pacemaker_utilization=dict(type="bool", default=False),
    crm_config_cmd=dict(type="list", elements="str"),
    strong=dict(type="bool", default=False),
    colocated_vms=dict(type="list", elements="str"),
    remote_name=dict(type="str"),
    remote_address=dict(type="str"),
    remote_port=dict(type="raw"),
    remote_timeout=dict(type="raw"),
    config=dict(type="path"),
)

REQUIRED_IF = [
    ("command", "create", ("name", "xml", "system_image")),
    ("command", "clone", ("name", "src_name")),
    ("command", "remove", ("name",)),
    ("command", "start", ("name",)),
    ("command", "stop", ("name",)),
    ("command", "status", ("name",)),
    ("command", "enable", ("name",)),
    ("command", "disable", ("name",)),
    ("command", "list_metadata", ("name",)),
    ("command", "get_metadata", ("name", "metadata_name")),
    ("command", "purge_image", ("name",)),
    ("command", "create_snapshot", ("name", "snapshot_name")),
    ("command", "remove_snapshot", ("name", "snapshot_name")),
    ("command", "rollback_snapshot", ("name", "snapshot_name")),
    ("command", "list_snapshots", ("name",)),
    ("command", "define_colocation", ("name", "colocated_vms")),
    ("command", "add_pacemaker_remote", ("name", "remote_name", "remote_address")),
    ("command", "remove_pacemaker_remote", ("name",)),
]


def import_vmconsole():
    """vmconsole's module for this one: from the Python running the module, else from the virtualenv
    the install role makes (``$VMCONSOLE_VENV``, default /opt/vmconsole), made from this same Python."""
    try:
        from vmconsole.cli import cluster_vm
    except ImportError:
        venv = os.environ.get("VMCONSOLE_VENV", DEFAULT_VENV)
        version = "python%d.%d" % sys.version_info[:2]
        sys.path.extend(glob.glob(os.path.join(venv, "lib", version, "site-packages")))
        from vmconsole.cli import cluster_vm
    return cluster_vm


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=REQUIRED_IF,
        mutually_exclusive=[("purge_date", "purge_number")],
    )
    try:
        cluster_vm = import_vmconsole()
        from vmconsole import config as configuration
        from vmconsole.core.services import Services
        from vmconsole.domain.errors import VmConsoleError
    except ImportError as exc:
        module.fail_json(
            msg="vmconsole is not importable on this host (%s): install it with the vmconsole.seapath.vmconsole "
            "role, or set ansible_python_interpreter to the Python of its virtualenv" % exc,
            reason="not_installed",
        )
        return
    try:
        config = configuration.load(module.params["config"])
        read_only = None
        if module.check_mode:
            read_only = "Ansible check mode"  # core refuses any change: a plan only
        elif config.console.read_only:
            read_only = "read_only = true in %s" % (config.source or "the configuration")
        services = Services(config, read_only=read_only)
    except VmConsoleError as exc:
        module.fail_json(**cluster_vm.failure(exc))
        return
    try:
        outcome = cluster_vm.run(services, module.params, check_mode=module.check_mode)
    except VmConsoleError as exc:
        module.fail_json(**cluster_vm.failure(exc))
        return
    except Exception as exc:  # a bug: the traceback goes with it
        module.fail_json(msg="vmconsole failed: %r" % (exc,), exception=traceback.format_exc())
        return
    finally:
        services.close()
    for warning in outcome.warnings:
        module.warn(warning)
    module.exit_json(**outcome.to_result())


if __name__ == "__main__":
    main()
