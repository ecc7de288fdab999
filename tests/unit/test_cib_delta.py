"""crm_mon asked about the changed resources alone reports them as it does among all the others.

The oracle is Pacemaker's own crm_mon, run offline on a CIB file (no daemon, as the fixtures were made):
for every two recorded scenarios whose shared parts read the same, the first scenario's recorded answer
with the changed resources as crm_mon reports them from a CIB of those resources alone must equal the
second scenario's recorded answer, field by field.
"""

from __future__ import annotations

import copy
import itertools
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from vmconsole.backends import cib, cib_delta
from vmconsole.backends.crm_mon import merge_resources, parse_crm_mon
from vmconsole.domain.pacemaker_status import CrmMonSnapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pacemaker"
SCENARIOS = sorted(p.name.split(".")[0] for p in FIXTURES.glob("*.cib.xml"))


def root_of(scenario: str) -> etree._Element:
    return cib.parse_cib((FIXTURES / f"{scenario}.cib.xml").read_text())


def answer_of(scenario: str) -> CrmMonSnapshot:
    return parse_crm_mon((FIXTURES / f"{scenario}.crm_mon.xml").read_text())


def changed(old: etree._Element, new: etree._Element) -> set[str] | None:
    return cib_delta.changed_resources(cib_delta.cib_pieces(old), cib_delta.cib_pieces(new))


def crm_mon_of(cib_text: str) -> CrmMonSnapshot:
    crm_mon = shutil.which("crm_mon")
    if crm_mon is None:
        pytest.skip("Pacemaker's crm_mon is not installed")
    result = subprocess.run(
        [crm_mon, "--output-as=xml", "--inactive"],
        input=cib_text,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CIB_file": "/dev/stdin"},
        check=False,
    )
    return parse_crm_mon(result.stdout)


def comparable(snapshot: CrmMonSnapshot) -> CrmMonSnapshot:
    """The flat list of failures is rebuilt resource by resource when merged: compare it as a set."""
    return replace(snapshot, failures=tuple(sorted(snapshot.failures, key=repr)))


PAIRS = [
    (old, new) for old, new in itertools.permutations(SCENARIOS, 2) if changed(root_of(old), root_of(new)) is not None
]


def test_the_recorded_scenarios_give_comparable_pairs() -> None:
    # nodes, cluster options and groups differ between the others: those ask about everything
    assert len(PAIRS) >= 20
    assert ("healthy", "orphaned") in PAIRS and ("healthy", "migrating") in PAIRS
    assert ("failed-start", "failed-stop") in PAIRS


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_asking_about_the_changed_resources_alone_gives_crm_mons_whole_answer(old: str, new: str) -> None:
    new_root = root_of(new)
    resources = changed(root_of(old), new_root)
    assert resources
    pieces = cib_delta.cib_pieces(new_root)
    status = new_root.find("status")
    assert status is not None
    subset = cib_delta.subset_cib(cib.attributes(new_root), pieces.configuration, status, resources)
    merged = merge_resources(answer_of(old), crm_mon_of(subset), resources)
    assert comparable(merged) == comparable(answer_of(new))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_same_cib_printed_otherwise_changes_nothing(scenario: str) -> None:
    root = root_of(scenario)
    # the status section alone, as ``cibadmin --query --scope status`` prints it: another indentation
    status = root.find("status")
    assert status is not None
    alone = cib.parse_cib(etree.tostring(status, pretty_print=True))
    before = cib_delta.cib_pieces(root)
    after = cib_delta.CibPieces(before.attributes, before.configuration, cib_delta.status_pieces(alone))
    assert cib_delta.changed_resources(before, after) == set()


def edited(scenario: str, xpath: str, change: str, value: str = "x") -> etree._Element:
    root = copy.deepcopy(root_of(scenario))
    element = root.xpath(xpath)
    assert isinstance(element, list) and element, xpath
    target = element[0]
    assert isinstance(target, etree._Element)
    if change == "remove":
        parent = target.getparent()
        assert parent is not None
        parent.remove(target)
    else:
        target.set(change, value)
    return root


@pytest.mark.parametrize(
    ("xpath", "change", "expected"),
    [
        # one primitive's own element, history or fail count: that resource alone
        ("//primitive[@id='vm1']/meta_attributes/nvpair[@name='target-role']", "value", {"vm1"}),
        ("//lrm_resource[@id='vm2']/lrm_rsc_op", "rc-code", {"vm2"}),
        ("//lrm_resource[@id='dummy1']", "remove", {"dummy1"}),
        ("//primitive[@id='vm4']", "remove", {"vm4"}),
        # what crm_mon never reads for another resource: nothing to ask
        ("//node_state[@id='1']", "crm-debug-origin", set()),
        ("/cib", "num_updates", set()),
        ("/cib", "cib-last-written", set()),
        ("//constraints/*[1]", "remove", set()),
        # what every resource shares, or a member of a group or clone: everything
        ("//crm_config//nvpair", "value", None),
        ("//node_state[@id='2']", "in_ccm", None),
        ("/cib", "have-quorum", None),
        ("//nodes/node[@id='1']", "type", None),
        ("//primitive[@id='tool-a']", "description", None),
        ("//lrm_resource[@id='tool-a']", "remove", None),
        ("//lrm_resource[starts-with(@id, 'ping')]", "remove", None),
    ],
)
def test_what_a_change_asks_about(xpath: str, change: str, expected: set[str] | None) -> None:
    assert changed(root_of("healthy"), edited("healthy", xpath, change)) == expected


def test_a_fail_count_belongs_to_its_resource() -> None:
    assert cib_delta.attribute_resource("fail-count-vm5#start_0") == "vm5"
    assert cib_delta.attribute_resource("last-failure-vm5#monitor_10000") == "vm5"
    assert cib_delta.attribute_resource("fail-count-vm5") == "vm5"
    assert cib_delta.attribute_resource("#feature-set") is None
    assert cib_delta.attribute_resource("standby") is None
    # vm5's fail count is in failed-start, not in healthy's node attributes: vm5 alone changed
    assert changed(root_of("failed-start-recovering"), root_of("failed-start")) == {"vm5"}


def test_a_subset_holds_only_the_resources_asked_about() -> None:
    root = root_of("failed-start")
    status = root.find("status")
    assert status is not None
    text = cib_delta.subset_cib(cib.attributes(root), cib_delta.cib_pieces(root).configuration, status, {"vm5"})
    subset = cib.parse_cib(text)
    assert [p.get("id") for p in subset.iter("primitive")] == ["vm5"]
    assert {h.get("id") for h in subset.iter("lrm_resource")} == {"vm5"}
    assert {p.get("name") for p in subset.iter("nvpair") if "fail" in (p.get("name") or "")} <= {
        "fail-count-vm5#start_0",
        "last-failure-vm5#start_0",
    }
    constraints = subset.find("configuration/constraints")
    assert constraints is not None and len(constraints) == 0
    assert subset.get("epoch") == root.get("epoch")
