"""The wire contract: every schema file is sound draft 2020-12 and its examples hold."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastjsonschema
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from streams.core import contracts

NAMES = ["churn-warning", "dead-letter", "lifecycle-transition", "recall-trigger",
         "segment-alias", "segment-group", "segment-identify", "segment-track", "user-event",
         "user-state"]
TIGHT = ["churn-warning", "recall-trigger", "lifecycle-transition", "dead-letter", "user-state",
         "user-event"]
DRAFT = jsonschema.Draft202012Validator


def reference(name: str) -> jsonschema.protocols.Validator:
    """The jsonschema package's validator, an independent second opinion."""
    return DRAFT(schemas.load(name), format_checker=DRAFT.FORMAT_CHECKER)


def property_nodes(schema: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, subschema) declared under a `properties` keyword, at any depth.

    `if` and `anyOf` subschemas only restate conditions on fields declared elsewhere, so
    they are not walked.
    """
    found: list[tuple[str, Any]] = []
    if not isinstance(schema, dict):
        return found
    for prop, sub in schema.get("properties", {}).items():
        found.append((f"{path}.{prop}", sub))
        found += property_nodes(sub, f"{path}.{prop}")
    for key in ("then", "else", "items"):
        found += property_nodes(schema.get(key), f"{path}/{key}")
    for key in ("allOf", "oneOf"):
        for i, sub in enumerate(schema.get(key, [])):
            found += property_nodes(sub, f"{path}/{key}[{i}]")
    for name, sub in schema.get("$defs", {}).items():
        found += property_nodes(sub, f"{path}/$defs/{name}")
    return found


def test_names_lists_every_schema_file() -> None:
    assert schemas.names() == NAMES


def test_the_contract_table_names_every_schema_file() -> None:
    assert sorted(c.name for c in contracts.CONTRACTS) == NAMES
    for c in contracts.CONTRACTS:
        assert (schemas.SCHEMA_DIR / c.file_name).is_file(), c.file_name
        assert schemas.load(c.name, c.version)["$id"] == schemas.BASE_URI + c.file_name


@pytest.mark.parametrize("contract", [c for c in contracts.CONTRACTS
                                      if c not in contracts.SEGMENT_CALLS],
                         ids=lambda c: c.name)
def test_a_contract_id_is_the_const_of_its_schema_field(contract: contracts.Contract) -> None:
    """The id code stamps on a record (and in its schema header) is the one its schema
    file demands; a Segment call carries no schema field."""
    doc = schemas.load(contract.name, contract.version)
    assert doc["properties"]["schema"]["const"] == contract.id
    for call in contracts.SEGMENT_CALLS:
        assert "schema" not in schemas.load(call.name, call.version)["properties"]


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft_2020_12_with_id_and_docs(name: str) -> None:
    doc = schemas.load(name)
    DRAFT.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"{schemas.BASE_URI}{name}.v1.json"
    assert doc["title"] and doc["description"] and doc["examples"]


@pytest.mark.parametrize("name", NAMES)
def test_every_property_is_described(name: str) -> None:
    nodes = property_nodes(schemas.load(name))
    assert nodes
    undocumented = [p for p, sub in nodes
                    if not isinstance(sub, dict) or not sub.get("description")]
    assert undocumented == []


@pytest.mark.parametrize("name", NAMES)
def test_examples_validate_with_both_validators(name: str) -> None:
    check, ref = schemas.validator(name), reference(name)
    for example in schemas.load(name)["examples"]:
        assert check(example) == example
        assert list(ref.iter_errors(example)) == []
        assert schemas.is_valid(name, example)


@pytest.mark.parametrize("name", NAMES)
def test_dropping_a_required_field_fails_in_both_validators(name: str) -> None:
    doc = schemas.load(name)
    example = doc["examples"][0]
    for field in doc["required"]:
        broken = {k: v for k, v in example.items() if k != field}
        assert not schemas.is_valid(name, broken), field
        assert not reference(name).is_valid(broken), field


@pytest.mark.parametrize("name", TIGHT)
def test_top_level_is_closed(name: str) -> None:
    example = dict(schemas.load(name)["examples"][0], surprise=1)
    assert not schemas.is_valid(name, example)
    assert not reference(name).is_valid(example)


@pytest.mark.parametrize("name", ["segment-track", "segment-identify", "segment-alias",
                                  "segment-group"])
def test_segment_calls_may_carry_extra_fields(name: str) -> None:
    example = dict(schemas.load(name)["examples"][0], writeKey="k", version=2, channel="server")
    assert schemas.is_valid(name, example)


def test_alert_schemas_share_their_vocabulary() -> None:
    warning, recall = schemas.load("churn-warning"), schemas.load("recall-trigger")
    assert warning["$defs"] == recall["$defs"]
    assert set(recall["properties"]) - set(warning["properties"]) == {"recall_number"}
    for field in warning["properties"]:
        if field not in ("schema", "type", "alert_id"):
            assert warning["properties"][field] == recall["properties"][field], field
    state = schemas.load("user-state")
    for shared in ("stage", "channel", "value_tier", "role", "funnel_stage"):
        assert state["$defs"][shared] == warning["$defs"][shared]


def test_alert_ids_are_tied_to_their_kind() -> None:
    recall = schemas.load("recall-trigger")["examples"][0]
    as_warning = dict(recall, schema="journey.churn-warning/1", type="churn_warning")
    del as_warning["recall_number"]
    assert not schemas.is_valid("churn-warning", as_warning)  # an rt- id
    as_warning["alert_id"] = "cw-" + recall["alert_id"][3:]
    assert schemas.is_valid("churn-warning", as_warning)


def test_load_returns_a_private_copy() -> None:
    doc = schemas.load("user-event")
    doc["properties"]["type"]["enum"].append("teleport")
    assert "teleport" not in schemas.load("user-event")["properties"]["type"]["enum"]
    assert not schemas.is_valid("user-event", dict(schemas.load("user-event")["examples"][1],
                                                   type="teleport"))


def test_validator_is_compiled_once_and_unknown_names_fail() -> None:
    assert schemas.validator("dead-letter") is schemas.validator("dead-letter")
    with pytest.raises(KeyError):
        schemas.load("no-such-thing")
    with pytest.raises(ValueError):
        schemas.load("../etc/passwd")


def test_refs_outside_journey_are_refused() -> None:
    with pytest.raises(Exception, match="refusing"):
        schemas.compile_schema({"$ref": "https://example.com/x.json"})({})


def test_date_time_fields_require_a_zone_in_both_validators() -> None:
    example = schemas.load("user-event")["examples"][1]
    for text in ("2024-05-03T16:02:11", "2024-05-03 16:02:11Z", "2024-05-03T16:02:11+0200",
                 "2024-05-03T16:02:11+01:60", "2024-05-03T16:02:11+24:00"):
        broken = dict(example, occurred_at=text)
        assert not schemas.is_valid("user-event", broken), text
        # the schema's pattern says so even to validators that ignore `format`
        assert not reference("user-event").is_valid(broken), text
    for text in ("2024-02-30T10:00:00Z", "2024-05-03T24:00:00Z"):  # the calendar: format only
        assert not schemas.is_valid("user-event", dict(example, occurred_at=text)), text


# --- RFC 3339 parsing --------------------------------------------------------------------

@pytest.mark.parametrize("text, epoch, offset", [
    ("2024-05-03T18:21:07+02:00", 1714753267.0, 120),
    ("2024-05-03T16:21:07Z", 1714753267.0, 0),
    ("2024-05-03t16:21:07z", 1714753267.0, 0),
    ("2024-05-03T16:21:07.118Z", 1714753267.118, 0),
    ("2024-05-03T10:51:07.5-05:30", 1714753267.5, -330),
    ("2024-05-03T16:21:07.123456789Z", 1714753267.123456, 0),
    ("2024-05-03T16:21:07-00:00", 1714753267.0, 0),
    ("2016-12-31T23:59:60Z", 1483228800.0, 0),  # leap second: the next minute's start
])
def test_parse_date_time_reads_rfc3339(text: str, epoch: float, offset: int) -> None:
    for _ in range(2):  # first sight of the hour, then the memo
        got = schemas.parse_date_time(text)
        assert got is not None
        assert got[0] == pytest.approx(epoch, abs=1e-6) and got[1] == offset


@pytest.mark.parametrize("text", [
    "2024-05-03T18:21:07", "2024-05-03", "18:21:07Z", "2024-05-03 18:21:07Z",
    "2024-05-03T18:21:07+0200", "2024-05-03T18:21:07+02", "2024-05-03T18:21:07,5Z",
    "2024-05-03T18:21:07.Z", "2024-05-03T18:21Z", "20240503T182107Z", "2024-W18-5T18:21:07Z",
    "2024-02-30T10:00:00Z", "2023-02-29T10:00:00Z", "2024-13-01T10:00:00Z",
    "2024-05-03T24:00:00Z", "2024-05-03T18:60:00Z", "2024-05-03T18:21:61Z",
    "2024-05-03T18:21:07+24:00", "2024-05-03T18:21:07+01:60", "0000-01-01T00:00:00Z",
    "２０２４-05-03T18:21:07Z",  # noqa: RUF001 - full-width digits are not RFC 3339's
    "2024-05-03T18:21:07Z\n", " 2024-05-03T18:21:07Z", "",
])
def test_parse_date_time_refuses_anything_else(text: str) -> None:
    assert schemas.parse_date_time(text) is None
    assert schemas.parse_date_time(text) is None


@pytest.mark.parametrize("value", [None, 1714753267, 1.5, b"2024-05-03T18:21:07Z", ["x"]])
def test_parse_date_time_refuses_non_strings(value: Any) -> None:
    assert schemas.parse_date_time(value) is None  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
       st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
       st.sampled_from([0, 3, 6]), st.booleans())
def test_parse_date_time_agrees_with_datetime(moment: datetime, offset: int, digits: int,
                                              zulu: bool) -> None:
    if zulu:
        offset = 0
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    spec = {0: "seconds", 3: "milliseconds", 6: "microseconds"}[digits]
    text = aware.isoformat(timespec=spec)
    if zulu:
        text = text.replace("+00:00", "Z")
    expected = datetime.fromisoformat(text).timestamp()
    schemas._HOURS.clear()
    cold = schemas.parse_date_time(text)
    warm = schemas.parse_date_time(text)
    assert cold == warm  # the same float whichever path read it
    assert cold is not None and cold[1] == offset
    assert math.isclose(cold[0], expected, rel_tol=0, abs_tol=1e-6)


def test_hour_memo_stays_bounded() -> None:
    base = datetime(2000, 1, 1, tzinfo=UTC)
    for h in range(schemas._HOURS_CAP + 50):
        text = (base + timedelta(hours=h)).isoformat().replace("+00:00", "Z")
        assert schemas.parse_date_time(text) == ((base + timedelta(hours=h)).timestamp(), 0)
    assert len(schemas._HOURS) <= schemas._HOURS_CAP


# --- leaf predicates: a fast "surely valid" must never contradict the validator -----------

LEAVES: list[dict[str, Any]] = [
    {"type": "string", "minLength": 1, "maxLength": 5},
    {"type": "string", "pattern": "^[A-Z]{3}$"},
    {"type": "number", "minimum": 0},
    {"type": "integer", "minimum": 1, "maximum": 5},
    {"enum": ["app_push", "email"]},
    {"const": "journey.user-event/1"},
    {"type": "array", "items": {"enum": ["a", "b"]}},
    {"type": "string", "format": "date-time"},
]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["EUR", "EUR\n", "app_push", "a", "2024-05-03T18:21:07Z", "5"]),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(LEAVES))), JSONISH)
def test_leaf_predicate_never_vouches_for_an_invalid_value(index: int, value: Any) -> None:
    leaf = LEAVES[index]
    if schemas.leaf_predicate(leaf, {})(value):
        schemas.compile_schema(leaf)(value)  # raises if the predicate was wrong


@pytest.mark.parametrize("leaf", [{"type": "object"}, {"type": "string", "format": "email"},
                                  {"anyOf": [{"type": "string"}]}, {"enum": [1, 2]},
                                  {"$ref": "https://journey.dev/x"}])
def test_leaf_predicate_refuses_what_it_cannot_check(leaf: dict[str, Any]) -> None:
    with pytest.raises(LookupError):
        schemas.leaf_predicate(leaf, {})


def test_pattern_dollar_means_end_of_string() -> None:
    check = schemas.leaf_predicate({"type": "string", "pattern": "^[A-Z]{3}$"}, {})
    assert check("EUR") and not check("EUR\n")
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        schemas.compile_schema({"type": "string", "pattern": "^[A-Z]{3}$"})("EUR\n")
