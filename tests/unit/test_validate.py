"""Unit tests for vmconsole.domain.validate: every bad input is refused with the right field named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError


def refused(call: Callable[[], object], field: str, *fragments: str) -> ValidationError:
    """Assert ``call`` raises ValidationError on ``field`` whose message holds every fragment."""
    with pytest.raises(ValidationError) as caught:
        call()
    error = caught.value
    assert error.field == field, f"field {error.field!r} != {field!r}: {error}"
    for fragment in fragments:
        assert fragment in error.message, f"{fragment!r} not in {error.message!r}"
    # Nothing typed by the user can reach the terminal as a raw control character.
    assert all(ch.isprintable() for ch in error.message), repr(error.message)
    return error


# --- vm_name -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vm1", "A", "Vm2Prod", "XML", "a" * 48, "consoleVm", "myvmconsole"])
def test_vm_name_accepts(name: str) -> None:
    assert validate.vm_name(name) == name


def test_vm_name_empty() -> None:
    refused(lambda: validate.vm_name(""), "name", "empty")


def test_vm_name_field_is_the_callers() -> None:
    refused(lambda: validate.vm_name("", field="dst_name"), "dst_name", "empty")


def test_vm_name_too_long_says_the_length() -> None:
    refused(lambda: validate.vm_name("a" * 49), "name", "49 characters", "maximum is 48")


def test_vm_name_non_ascii_names_the_character() -> None:
    refused(lambda: validate.vm_name("vmé"), "name", "non-ASCII", "'é'", "U+00E9", "position 3")


@pytest.mark.parametrize(
    ("name", "shown", "position"),
    [
        ("vm-1", "'-'", 3),
        ("vm_1", "'_'", 3),
        ("vm.1", "'.'", 3),
        ("vm/1", "'/'", 3),
        ("vm 1", "a space", 3),
        ("vm1;", "';'", 4),
        ("[b]vm", "'['", 1),
    ],
)
def test_vm_name_special_character_named_with_position(name: str, shown: str, position: int) -> None:
    refused(lambda: validate.vm_name(name), "name", shown, f"position {position}")


def test_vm_name_escape_sequence_never_echoed() -> None:
    error = refused(lambda: validate.vm_name("\x1b[31mvm"), "name", "control character U+001B", "position 1")
    assert "\x1b" not in str(error)


def test_vm_name_invisible_unicode() -> None:
    refused(lambda: validate.vm_name("vm\u200b1"), "name", "invisible character U+200B", "position 3")


def test_vm_name_reserved_xml() -> None:
    refused(lambda: validate.vm_name("xml"), "name", "reserved")


@pytest.mark.parametrize("name", ["vmconsole", "VMConsoleLock", "vmconsole1", "VmCoNsOlEjournal"])
def test_vm_name_reserved_vmconsole_prefix(name: str) -> None:
    refused(lambda: validate.vm_name(name), "name", "reserved", "vmconsole")


def test_vm_name_must_start_with_a_letter() -> None:
    refused(lambda: validate.vm_name("1vm"), "name", "start with a letter", "Pacemaker")


@pytest.mark.parametrize("value", [None, 5, b"vm1", ["vm1"]])
def test_vm_name_not_a_string(value: object) -> None:
    refused(lambda: validate.vm_name(value), "name", "must be a string")


# --- metadata --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["owner", "Site2", "XML", "a" * 64])
def test_metadata_key_accepts(key: str) -> None:
    assert validate.metadata_key(key) == key


@pytest.mark.parametrize("key", ["vm_name", "xml", "_base_xml", "_stop_timeout", "_", "_anything"])
def test_metadata_key_reserved(key: str) -> None:
    refused(lambda: validate.metadata_key(key), "key", "managed by vmconsole/vm_manager")


def test_metadata_key_bad_inputs() -> None:
    refused(lambda: validate.metadata_key(""), "key", "empty")
    refused(lambda: validate.metadata_key("a-b"), "key", "'-'", "position 2")
    refused(lambda: validate.metadata_key("clé"), "key", "non-ASCII", "position 3")
    refused(lambda: validate.metadata_key("a" * 65), "key", "65 characters", "maximum is 64")
    refused(lambda: validate.metadata_key(3), "key", "must be a string")
    refused(lambda: validate.metadata_key("a b", field="metadata"), "metadata", "a space")


def test_metadata_value_accepts() -> None:
    assert validate.metadata_value("") == ""
    assert validate.metadata_value("two\nlines") == "two\nlines"
    exact = "x" * (64 * 1024)
    assert validate.metadata_value(exact) == exact


def test_metadata_value_refused() -> None:
    refused(lambda: validate.metadata_value("ab\x00c"), "value", "NUL", "position 3")
    refused(lambda: validate.metadata_value("x" * (64 * 1024 + 1)), "value", "65537 bytes", "64 KiB")
    # The limit counts UTF-8 bytes, what librbd stores, not characters.
    refused(lambda: validate.metadata_value("é" * 32769), "value", "65538 bytes")
    refused(lambda: validate.metadata_value(12), "value", "must be a string")


# --- snapshots -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["snap-20261126-030000", "2026-11-26T03:00:00", "before_upgrade.v2", "s", "a" * 64])
def test_snapshot_name_accepts(name: str) -> None:
    assert validate.snapshot_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("", ("empty",)),
        ("a" * 65, ("65 characters", "maximum is 64")),
        ("my snap", ("a space", "position 3")),
        ("[bold]x", ("'['", "position 1")),
        ("x]", ("']'", "position 2")),
        ("snap@1", ("'@'",)),
        ("a/b", ("'/'",)),
        ("snap\x1b", ("control character U+001B",)),
        ("snap\n", ("control character U+000A",)),
        ("été", ("non-ASCII",)),
        (".group.snap", ("start with a letter or a digit", "'.'")),
        ("-rf", ("start with a letter or a digit", "'-'")),
        (":x", ("start with a letter or a digit",)),
    ],
)
def test_snapshot_name_refused(name: str, fragments: tuple[str, ...]) -> None:
    refused(lambda: validate.snapshot_name(name), "snapshot", *fragments)


def test_default_snapshot_name_is_utc_and_valid() -> None:
    assert validate.default_snapshot_name(datetime(2026, 11, 26, 3, 0, 0, tzinfo=UTC)) == "snap-20261126-030000"
    paris_winter = timezone(timedelta(hours=1))
    name = validate.default_snapshot_name(datetime(2026, 11, 26, 4, 0, 0, tzinfo=paris_winter))
    assert name == "snap-20261126-030000"
    assert validate.snapshot_name(validate.default_snapshot_name()).startswith("snap-")


def test_default_snapshot_name_refuses_naive() -> None:
    with pytest.raises(ValueError, match="aware"):
        validate.default_snapshot_name(datetime(2026, 11, 26, 3, 0, 0))


# --- nodes -------------------------------------------------------------------------------------------


def test_node_name() -> None:
    assert validate.node_name("hv1", ["hv1", "hv2"]) == "hv1"
    refused(lambda: validate.node_name("hv9", ["hv2", "hv1", "hv1"]), "node", "'hv9'", "known nodes: hv1, hv2")
    refused(lambda: validate.node_name("HV1", ["hv1"]), "node", "known nodes: hv1")
    refused(lambda: validate.node_name("hv1", []), "node", "no node is known")
    refused(lambda: validate.node_name("", ["hv1"]), "node", "empty")
    refused(lambda: validate.node_name(None, ["hv1"], field="pinned_host"), "pinned_host", "must be a string")


# --- Pacemaker options -------------------------------------------------------------------------------


def test_pacemaker_options_converts_values() -> None:
    value = {"a": "x", "b": 1, "c": 1.5, "on": True, "off": False, "dot.ted_name-x": ""}
    assert validate.pacemaker_options(value, "pacemaker_meta") == {
        "a": "x",
        "b": "1",
        "c": "1.5",
        "on": "true",
        "off": "false",
        "dot.ted_name-x": "",
    }


@pytest.mark.parametrize("value", [None, [], ["a=b"], "a=b", 3, {"a", "b"}])
def test_pacemaker_options_not_a_mapping(value: object) -> None:
    refused(
        lambda: validate.pacemaker_options(value, "pacemaker_params"),
        "pacemaker_params",
        "expected a mapping",
    )


@pytest.mark.parametrize(
    ("options", "field", "fragments"),
    [
        ({"a b": "1"}, "meta", ("a space",)),
        ({"a=b": "1"}, "meta", ("'='",)),
        ({"ké": "1"}, "meta", ("non-ASCII",)),
        ({"": "1"}, "meta", ("empty",)),
        ({1: "1"}, "meta", ("must be strings",)),
        ({"k": [1]}, "meta.k", ("expected a string or a number", "list")),
        ({"k": None}, "meta.k", ("NoneType",)),
        ({"k": "a\nb"}, "meta.k", ("U+000A", "position 2")),
        ({"k": "\x1b[2J"}, "meta.k", ("U+001B",)),
        ({"k": float("nan")}, "meta.k", ("not a usable number",)),
        ({"target-role": "Started"}, "meta", ("set by vmconsole",)),
    ],
)
def test_pacemaker_options_refused(options: dict[object, object], field: str, fragments: tuple[str, ...]) -> None:
    refused(
        lambda: validate.pacemaker_options(options, "meta", reserved={"target-role", "is-managed"}),
        field,
        *fragments,
    )


# --- timeouts and counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(30, "30"), ("30", "30"), ("30s", "30"), ("30 sec", "30"), ("2min", "120"), ("2m", "120"),
     ("1h", "3600"), ("1HR", "3600"), (" 45 ", "45"), ("030", "30"), (86400, "86400")],
)  # fmt: skip
def test_timeout_seconds_accepts(value: object, expected: str) -> None:
    assert validate.timeout_seconds(value, "stop_timeout") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "at least 1 second"),
        (-5, "at least 1 second"),
        ("0s", "at least 1 second"),
        ("-5", "not a timeout"),
        ("abc", "not a timeout"),
        ("", "not a timeout"),
        ("1.5", "not a timeout"),
        ("30 years", "not a timeout"),
        ("²", "not a timeout"),
        ("500ms", "not a timeout"),
        (86401, "maximum is 86400"),
        ("25h", "maximum is 86400"),
        (1.5, "float"),
        (True, "bool"),
        (None, "NoneType"),
    ],
)
def test_timeout_seconds_refused(value: object, fragment: str) -> None:
    refused(lambda: validate.timeout_seconds(value, "stop_timeout"), "stop_timeout", fragment)


def test_count() -> None:
    assert validate.count(0, "number") == 0
    assert validate.count(7, "number") == 7
    assert validate.count("3", "number") == 3
    refused(lambda: validate.count(-1, "number"), "number", "0 or more", "-1")
    refused(lambda: validate.count("-1", "number"), "number", "not a whole number")
    refused(lambda: validate.count(True, "number"), "number", "bool")
    refused(lambda: validate.count(1.0, "number"), "number", "float")
    refused(lambda: validate.count("1.0", "number"), "number", "not a whole number")
    refused(lambda: validate.count("٣", "number"), "number", "not a whole number")  # Arabic-Indic 3
    refused(lambda: validate.count(None, "keep"), "keep", "NoneType")


# --- dates -------------------------------------------------------------------------------------------

PLUS_ONE = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T03:00", datetime(2026, 11, 26, 3, 0, tzinfo=PLUS_ONE)),
        ("2026-11-26T03:00:05", datetime(2026, 11, 26, 3, 0, 5, tzinfo=PLUS_ONE)),
        ("2026-11-26t03:00:05.25", datetime(2026, 11, 26, 3, 0, 5, 250000, tzinfo=PLUS_ONE)),
        ("2026-11-26 03:00", datetime(2026, 11, 26, 3, 0, tzinfo=PLUS_ONE)),
        ("2026-11-26 03:00:59", datetime(2026, 11, 26, 3, 0, 59, tzinfo=PLUS_ONE)),
        ("2026-11-26", datetime(2026, 11, 26, 0, 0, tzinfo=PLUS_ONE)),
        ("26/11/2026 03:00:00", datetime(2026, 11, 26, 3, 0, tzinfo=PLUS_ONE)),
        ("26/11/2026 03:00", datetime(2026, 11, 26, 3, 0, tzinfo=PLUS_ONE)),
        ("  26/11/2026  ", datetime(2026, 11, 26, 0, 0, tzinfo=PLUS_ONE)),
    ],
)
def test_parse_datetime_naive_inputs_read_in_given_zone(text: str, expected: datetime) -> None:
    parsed = validate.parse_datetime(text, PLUS_ONE)
    assert parsed.value == expected
    assert parsed.value.utcoffset() == timedelta(hours=1)
    assert parsed.assumed_local is True
    assert "(read as local time)" in parsed.describe()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T03:00:00Z", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        ("2026-11-26T03:00z", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        ("2026-11-26T04:00+01:00", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        ("2026-11-26 04:00:00+0100", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        ("2026-11-25T21:30:00-05:30", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        ("@1795662000", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
    ],
)
def test_parse_datetime_aware_inputs_kept(text: str, expected: datetime) -> None:
    parsed = validate.parse_datetime(text, PLUS_ONE)  # tz is ignored: the input says its offset
    assert parsed.value == expected
    assert parsed.assumed_local is False
    assert "local" not in parsed.describe()


def test_parse_datetime_naive_without_tz_uses_system_local_time() -> None:
    parsed = validate.parse_datetime("2026-11-26T03:00")
    assert parsed.value.tzinfo is not None
    assert parsed.assumed_local is True
    assert parsed.value == datetime(2026, 11, 26, 3, 0).astimezone()


def test_parse_datetime_result_compares_with_aware_snapshot_timestamps() -> None:
    """A naive date is local time, never compared as if it were UTC with librbd's timestamps."""
    snapshot_taken = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    before = validate.parse_datetime("26/11/2026 03:00:00", PLUS_ONE).value  # 02:00 UTC
    assert snapshot_taken > before  # no TypeError, and the offset is honoured


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "31/02/2026 00:00:00",
        "11/26/2026",  # US order: month 26 does not exist
        "2026-11-26T25:00",
        "2026-11-26T03:60",
        "2026-11-26T03:00+25:00",
        "2026-11-26Z",
        "2026-11-26T03",
        "26-11-2026",
        "1795662000",
        "@",
        "@999999999999",  # past year 9999
        "２０２６-11-26",  # full-width digits
    ],
)
def test_parse_datetime_garbage_names_the_formats(text: str) -> None:
    refused(lambda: validate.parse_datetime(text), "before", "is not a date", "accepted formats", "ISO 8601",
            "26/11/2026")  # fmt: skip


def test_parse_datetime_empty_and_non_string() -> None:
    refused(lambda: validate.parse_datetime("   "), "before", "empty")
    refused(lambda: validate.parse_datetime(None, field="date"), "date", "must be a string")


def test_parse_datetime_garbage_with_escape_is_not_echoed() -> None:
    error = refused(lambda: validate.parse_datetime("\x1b]0;pwned\x07"), "before", "is not a date")
    assert "\x1b" not in str(error) and "\x07" not in str(error)


def test_not_in_future() -> None:
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    past = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    assert validate.not_in_future(past, now) == past
    assert validate.not_in_future(now, now) == now
    refused(lambda: validate.not_in_future(now + timedelta(days=2), now), "before", "in the future", "by 2 days")
    refused(lambda: validate.not_in_future(now + timedelta(seconds=30), now, field="date"), "date", "30 seconds")
    # Default "now" is the real clock.
    refused(lambda: validate.not_in_future(datetime.now(UTC) + timedelta(hours=3)), "before", "in the future")


def test_not_in_future_refuses_naive() -> None:
    with pytest.raises(ValueError, match="aware"):
        validate.not_in_future(datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC))


# --- helpers -----------------------------------------------------------------------------------------


def test_show_escapes_and_shortens() -> None:
    assert validate.show("a\x1bb") == "'a\\u001bb'"
    assert validate.show("x" * 100, limit=10) == "'" + "x" * 9 + "…'"


@pytest.mark.parametrize("name", ["1vm", "vmconsoleprod", "VMConsoleA", "a" * 120, "db1"])
def test_names_vm_manager_accepts_are_operable(name: str) -> None:
    assert validate.existing_vm_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("vmconsolenew0123abcd", "temporary"),
        ("vmconsoleold89abcdef", "temporary"),
        ("db-1", "position 3"),
        ("", "empty"),
        ("a" * 201, "exceeds"),
    ],
)
def test_names_no_vm_has_are_refused(name: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        validate.existing_vm_name(name)


def test_temporary_names_are_recognised_and_fresh() -> None:
    from vmconsole.domain import naming

    first, second = naming.temporary_vm("new"), naming.temporary_vm("new")
    assert first != second and naming.is_temporary(first) and naming.is_temporary(naming.temporary_vm("old"))
    assert not naming.is_temporary("vmconsoleprod") and not naming.is_temporary("vmconsolenew0123abcdX")
