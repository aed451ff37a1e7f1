"""The one Settings object: defaults, TOML, environment, validation, masking, reference."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.settings_doc import settings_markdown
from streams.settings_load import ENV_PREFIX
from streams.testing import Harness, make_event

TomlFactory = Callable[[str], Path]


@pytest.fixture
def toml_file(tmp_path: Path) -> TomlFactory:
    """``toml_file(text)``: a config file with this content."""

    def write(text: str) -> Path:
        path = tmp_path / "journey.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_defaults_without_file_or_environment() -> None:
    assert Settings.load(environ={}) == Settings()


def test_environment_overrides_with_types() -> None:
    s = Settings.load(environ={
        "JOURNEY_PURCHASE_CYCLE_DAYS": "90",
        "JOURNEY_PARTITIONS": "12",
        "JOURNEY_HASH_USER_IDS_IN_LOGS": "true",
        "JOURNEY_CHANNELS": "sms, email ,app_push",
        "JOURNEY_BROKER": "kafka:9092",
        "UNRELATED": "x",
    })
    assert s.purchase_cycle_days == 90.0 and isinstance(s.purchase_cycle_days, float)
    assert s.partitions == 12 and isinstance(s.partitions, int)
    assert s.hash_user_ids_in_logs is True
    assert s.channels == ["sms", "email", "app_push"]
    assert s.broker == "kafka:9092"


@pytest.mark.parametrize("text", ['["sms", "email"]', ' ["sms","email"] ', "sms,email"])
def test_a_list_in_the_environment_is_comma_separated_or_a_json_array(text: str) -> None:
    assert Settings.load(environ={"JOURNEY_CHANNELS": text}).channels == ["sms", "email"]


@pytest.mark.parametrize("text", ['["sms", 1]', '["sms"', '[["sms"]]'])
def test_a_broken_json_array_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="setting channels"):
        Settings.load(environ={"JOURNEY_CHANNELS": text})


@pytest.mark.parametrize("text, expected", [("1", True), ("yes", True), ("ON", True),
                                            ("0", False), ("false", False), ("off", False)])
def test_boolean_spellings(text: str, expected: bool) -> None:
    env = {"JOURNEY_HASH_USER_IDS_IN_LOGS": text}
    assert Settings.load(environ=env).hash_user_ids_in_logs is expected


def test_unreadable_boolean_is_rejected() -> None:
    """A typo must not silently switch a privacy setting off."""
    with pytest.raises(ValueError, match="hash_user_ids_in_logs"):
        Settings.load(environ={"JOURNEY_HASH_USER_IDS_IN_LOGS": "ture"})


def test_toml_file_with_sections(toml_file: TomlFactory) -> None:
    path = toml_file("""
app_id = "shop"

[lifecycle]
purchase_cycle_days = 7
reactivation_requires = "purchase"

[alerts]
quiet_hours_start = 22
default_consent = ["email"]
""")
    s = Settings.load(path, environ={})
    assert s.app_id == "shop"
    assert s.purchase_cycle_days == 7.0 and isinstance(s.purchase_cycle_days, float)
    assert s.reactivation_requires == "purchase"
    assert s.quiet_hours_start == 22
    assert s.default_consent == ["email"]
    assert s.partitions == Settings().partitions


def test_environment_wins_over_the_file(toml_file: TomlFactory) -> None:
    path = toml_file("[kafka]\npartitions = 8\n")
    assert Settings.load(path, environ={"JOURNEY_PARTITIONS": "3"}).partitions == 3
    assert Settings.load(path, environ={}).partitions == 8


def test_config_path_from_the_environment(toml_file: TomlFactory) -> None:
    path = toml_file("contact_cap = 5\n")
    assert Settings.load(environ={"JOURNEY_CONFIG": str(path)}).contact_cap == 5


def test_unknown_key_in_the_file_is_rejected(toml_file: TomlFactory) -> None:
    path = toml_file("[lifecycle]\npurchase_cycle_dayz = 7\n")
    with pytest.raises(ValueError, match="purchase_cycle_dayz"):
        Settings.load(path, environ={})


def test_a_misspelt_variable_is_an_error_naming_the_setting_meant() -> None:
    with pytest.raises(ValueError, match=r"JOURNEY_PARTITION \(did you mean JOURNEY_PARTITIONS"):
        Settings.load(environ={"JOURNEY_PARTITION": "12"})
    with pytest.raises(ValueError, match="JOURNEY_NO_SUCH_THING"):
        Settings.load(environ={"JOURNEY_NO_SUCH_THING": "1"})
    # the config path, a secret's _FILE and the test suite's switches are not settings
    loaded = Settings.load(environ={"JOURNEY_TEST_BOOTSTRAP": "x:1", "JOURNEY_WEB_TOKEN": "t"})
    assert loaded.web_token == "t"


def test_unreadable_value_names_the_setting() -> None:
    with pytest.raises(ValueError, match="partitions"):
        Settings.load(environ={"JOURNEY_PARTITIONS": "four"})


@pytest.mark.parametrize("changes, fragment", [
    ({"control_share": 1.0}, "control_share"),
    ({"control_share": -0.1}, "control_share"),
    ({"churn_after_gaps": 1.0, "decline_after_gaps": 1.5}, "churn_after_gaps"),
    ({"new_user_churn_days": 5.0, "new_user_decline_days": 7.0}, "new_user_churn_days"),
    ({"quiet_hours_start": 24}, "quiet hours"),
    ({"quiet_hours_end": -1}, "quiet hours"),
    ({"reactivation_requires": "prayer"}, "reactivation_requires"),
    ({"purchase_cycle_days": 0.0}, "purchase_cycle_days"),
    ({"top_tier_share": 0.0}, "tier shares"),
    ({"middle_tier_share": 1.0}, "tier shares"),
    ({"partitions": 0}, "partitions"),
    ({"channels": ["email", "whatsapp"]}, "unknown channel 'whatsapp'"),
    ({"default_consent": ["fax"]}, "default_consent"),
    ({"default_timezone": "Mars/Olympus"}, "default_timezone"),
    ({"churn_gone_horizons": 0.5}, "churn_gone_horizons"),
    ({"churn_gone_horizons": float("inf")}, "churn_gone_horizons"),
])
def test_validation_errors(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Settings().with_overrides(**changes).validate()
    env = {ENV_PREFIX + k.upper(): ",".join(v) if isinstance(v, list) else str(v)
           for k, v in changes.items()}
    with pytest.raises(ValueError, match=fragment):
        Settings.load(environ=env)


@pytest.mark.parametrize("changes", [
    {"refit_interval_days": 0.0},
    {"new_user_decline_days": 0.0, "new_user_churn_days": 30.0},
    {"population_sample_size": 0},
    {"refit_min_buyers": 0},
])
def test_values_the_core_cannot_run_with_are_rejected_or_harmless(
        changes: dict[str, object]) -> None:
    """Either validate() refuses the value up front, or the processor copes with it; a
    configuration must not crash the worker on its first events."""
    settings = Settings().with_overrides(**changes)
    try:
        settings.validate()
    except ValueError:
        return
    h = Harness(settings)
    h.send(make_event("u", "page_view", 0), make_event("v", "page_view", 1))
    h.advance_days(40)
    assert h.state("u").stage == "churned"


def test_negative_refit_interval_is_rejected() -> None:
    # a negative epoch step puts every next re-fit in the past: the processor would loop
    with pytest.raises(ValueError):
        Settings().with_overrides(refit_interval_days=-7.0).validate()


def test_secrets_are_masked() -> None:
    s = Settings().with_overrides(sasl_password="hunter2", web_token="t0k3n",
                                  sasl_username="journey")
    public = s.public_dict()
    assert public["sasl_password"] == "***" and public["web_token"] == "***"
    assert public["sasl_username"] == "journey"
    assert "hunter2" not in repr(public) and "t0k3n" not in repr(public)
    assert Settings().public_dict()["sasl_password"] == ""  # nothing to hide
    assert set(public) == {f.name for f in dataclasses.fields(Settings)}


def test_markdown_reference_lists_every_field() -> None:
    text = settings_markdown()
    for f in dataclasses.fields(Settings):
        row = next((line for line in text.splitlines() if line.startswith(f"| `{f.name}` |")),
                   None)
        assert row is not None, f.name
        assert f"`{ENV_PREFIX}{f.name.upper()}`" in row
        assert f.metadata["doc"] in row
    sections = {f.metadata["section"] for f in dataclasses.fields(Settings)}
    for section in sections:
        assert f"## {section}" in text


def test_settings_are_immutable_and_overridable() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.partitions = 3  # type: ignore[misc]
    t = s.with_overrides(partitions=3)
    assert (s.partitions, t.partitions) == (4, 3)
    assert s.channels is not Settings().channels  # list defaults are not shared
    assert s.seconds(1.5) == 129600.0
