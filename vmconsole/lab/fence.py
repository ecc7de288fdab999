"""``fence_vmclab``: the multi-node lab's fence agent, an RHCS-style agent for pacemaker-fenced.

Pacemaker runs it inside a surviving node (the lab overlays it on /usr/sbin there) with its
arguments as ``key=value`` lines on stdin (or ``-o ACTION -n NODE``). "Off" and "reboot" power the
node off the way ``vmconsole lab crash`` does, by killing every process in its namespaces; a fenced
node stays off until ``vmconsole lab rejoin``. "status" says whether the node runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_vmclab" shortdesc="Power switch of the vmconsole multi-node lab">
<longdesc>Powers a node of the vmconsole multi-node lab off by killing every process in its namespaces.</longdesc>
<vendor-url>https://github.com/seapath</vendor-url>
<parameters>
 <parameter name="action" unique="0" required="0"><getopt mixed="-o, --action=[action]"/>
  <content type="string" default="reboot"/><shortdesc lang="en">Fencing action</shortdesc></parameter>
 <parameter name="port" unique="0" required="0"><getopt mixed="-n, --plug=[name]"/>
  <content type="string"/><shortdesc lang="en">Node name</shortdesc></parameter>
 <parameter name="plug" unique="0" required="0" obsoletes="port"><getopt mixed="-n, --plug=[name]"/>
  <content type="string"/><shortdesc lang="en">Node name</shortdesc></parameter>
</parameters>
<actions>
 <action name="on"/><action name="off"/><action name="reboot"/><action name="status"/>
 <action name="list"/><action name="monitor"/><action name="metadata"/>
</actions>
</resource-agent>
"""


def _arguments(argv: list[str]) -> tuple[Path, str, str]:
    parser = argparse.ArgumentParser(prog="fence_vmclab")
    parser.add_argument("--lab", type=Path, required=True)
    parser.add_argument("-o", "--action", default="")
    parser.add_argument("-n", "--plug", default="")
    args = parser.parse_args(argv)
    action, plug = args.action, args.plug
    if not action and not sys.stdin.isatty():
        for line in sys.stdin.read().splitlines():
            key, _, value = line.strip().partition("=")
            if key in ("action", "option"):
                action = value
            elif key in ("port", "plug", "nodename"):
                plug = plug or value
    return args.lab, action or "reboot", plug


def main(argv: list[str] | None = None) -> int:
    lab_dir, action, plug = _arguments(sys.argv[1:] if argv is None else argv)
    if action == "metadata":
        print(METADATA, end="")
        return 0
    if action in ("monitor", "list-status", "validate-all"):
        return 0
    from vmconsole.lab.lab import Lab
    from vmconsole.lab.nodes import power_off, processes

    lab = Lab(lab_dir)
    state = lab.state()
    if state is None:
        print(f"no lab in {lab_dir}", file=sys.stderr)
        return 1
    if action == "list":
        for member in state.nodes:
            print(f"{member.name},")
        return 0
    node = state.find_node(plug)
    if node is None:
        print(f"no node {plug!r} in the lab", file=sys.stderr)
        return 1
    if action == "status":
        return 0 if processes(node) else 2
    if action == "on":
        return 0  # a fenced node comes back with `vmconsole lab rejoin`
    if action not in ("off", "reboot"):
        print(f"unknown action {action!r}", file=sys.stderr)
        return 1
    started = time.monotonic()
    count = power_off(node)
    seconds = time.monotonic() - started
    with lab.paths.fence_log.open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} {action} {plug}: {count} processes killed in {seconds:.2f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
