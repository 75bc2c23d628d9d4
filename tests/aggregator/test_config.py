"""uptake.toml: a valid file's typed form, and one clear message for each kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uptake_aggregator.config import (
    METRICS,
    Alerts,
    ConfigError,
    Goal,
    find_config,
    load_config,
    parse_config,
    parse_duration,
)
from uptake_aggregator.errors import AggregatorError

GOOD = """\
# the product's KPIs
[metrics]
core_features = ["share_link", "export_csv"]

[[goal]]
metric = "utilization"
scope = "account"
target = 0.7
only = ["acme", "globex"]

[[goal]]
metric = "stickiness"
scope = "product"
target = 0.2

[[goal]]
metric = "users"
scope = "feature"
target = 10
direction = "at_most"

[alerts]
every = "1s"
command = "notify-ops --urgent"
webhook = "http://127.0.0.1:9/hook"
webhook_timeout = "500ms"
webhook_retries = 2
"""


def test_a_valid_file_is_typed() -> None:
    config = parse_config(GOOD, Path("uptake.toml"))
    assert config.core_features == ("export_csv", "share_link")
    assert config.goals == (
        Goal("utilization", "account", 0.7, "at_least", ("acme", "globex")),
        Goal("stickiness", "product", 0.2),
        Goal("users", "feature", 10.0, "at_most"),
    )
    assert config.goals[2].key == "feature.users <= 10"
    assert Goal("mau", "product", 1234567.5).key == "product.mau >= 1234567.5"
    assert config.alerts == Alerts(
        every_s=1.0,
        command=("notify-ops", "--urgent"),
        webhook="http://127.0.0.1:9/hook",
        webhook_timeout_s=0.5,
        webhook_retries=2,
    )


def test_metric_names_come_from_the_report_schema() -> None:
    assert "utilization" in METRICS["account"]
    assert "band" not in METRICS["account"]  # text, not a number
    assert "dau" not in METRICS["product"]  # a series, not a number
    assert set(METRICS["feature"]) >= {"events", "users", "accounts", "adoption"}


def _goal_file(**fields: object) -> str:
    lines = ["[metrics]", 'core_features = ["a"]', "", "[[goal]]"]
    base: dict[str, object] = {"metric": "mau", "scope": "product", "target": 10}
    base.update(fields)
    for key, value in base.items():
        if value is not None:
            lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[goal]]\nmetric = \n", ["uptake.toml:2", "not valid TOML"]),
        (
            _goal_file(metric="utilisation", scope="account"),
            ["uptake.toml:5", "metric", "'utilisation'", "active_users, adoption_rate"],
        ),
        (_goal_file(scope="team"), ["uptake.toml:6", "scope", "product, account, feature"]),
        (_goal_file(target=-1), ["uptake.toml:7", "target", ">= 0"]),
        (_goal_file(target="high"), ["uptake.toml:7", "target", "number"]),
        (_goal_file(direction="above"), ["uptake.toml:8", "direction", "at_least, at_most"]),
        (_goal_file(only=["acme"]), ["uptake.toml:8", "only", "account and feature goals"]),
        (
            _goal_file(metric="seats", scope="account", only="acme"),
            ["uptake.toml:8", "only", "list"],
        ),
        (_goal_file(metric=None), ["uptake.toml:4", "[[goal]] #1", "missing key 'metric'"]),
        (_goal_file(colour="red"), ["uptake.toml:8", "colour", "accepted keys: metric"]),
        ('[metrics]\ncore_features = "a"\n', ["uptake.toml:2", "core_features", "list"]),
        ('[alerts]\nevery = "soon"\n', ["uptake.toml:2", "every", '"15m"']),
        ('[alerts]\nevery = "0s"\n', ["uptake.toml:2", "at least 1s"]),
        ('[alerts]\nwebhook = "ftp://x"\n', ["uptake.toml:2", "webhook", "http://"]),
        ("[alerts]\ncommand = 3\n", ["uptake.toml:2", "command", "command line"]),
        ("[alerts]\nwebhook_retries = 99\n", ["uptake.toml:2", "0 to 20"]),
        ('[alert]\nevery = "1m"\n', ["uptake.toml:1", "alert", "metrics, goal, alerts"]),
        ("goal = 3\n", ["uptake.toml:1", "goal", "[[goal]]"]),
    ],
)
def test_a_bad_file_gets_one_message_naming_line_key_and_accepted_values(
    text: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("uptake.toml"))
    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    assert isinstance(caught.value, AggregatorError)


def test_the_second_goal_is_located_in_its_own_table() -> None:
    text = _goal_file() + '\n[[goal]]\nmetric = "mau"\nscope = "product"\ntarget = "x"\n'
    with pytest.raises(ConfigError, match=r"uptake.toml:12: \[\[goal\]\] #2 target"):
        parse_config(text, Path("uptake.toml"))


def test_where_the_file_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPTAKE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert find_config(None) is None  # no default file: the empty config
    assert load_config(None).goals == ()
    default = tmp_path / "xdg" / "uptake" / "uptake.toml"
    default.parent.mkdir(parents=True)
    default.write_text(GOOD)
    assert find_config(None) == default
    other = tmp_path / "other.toml"
    other.write_text("")
    monkeypatch.setenv("UPTAKE_CONFIG", str(other))
    assert find_config(None) == other
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("")
    assert find_config(explicit) == explicit
    with pytest.raises(ConfigError, match="--config: no config file at"):
        find_config(tmp_path / "missing.toml")
    monkeypatch.setenv("UPTAKE_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="UPTAKE_CONFIG: no config file"):
        find_config(None)


@given(st.text(max_size=200))
def test_any_text_is_a_config_or_one_config_error(text: str) -> None:
    try:
        parse_config(text, Path("uptake.toml"))
    except ConfigError as exc:
        assert str(exc).startswith("uptake.toml")


@given(
    st.sampled_from(METRICS["account"]),
    st.floats(min_value=0, max_value=1e12, allow_nan=False),
    st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), min_size=1, max_size=4),
)
def test_a_written_goal_reads_back(metric: str, target: float, only: list[str]) -> None:
    text = (
        f'[[goal]]\nmetric = "{metric}"\nscope = "account"\ntarget = {target!r}\n'
        f'direction = "at_most"\nonly = {json.dumps(only)}\n'
    )
    assert parse_config(text).goals == (Goal(metric, "account", target, "at_most", tuple(only)),)


@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_durations(amount: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{amount}{unit}") == amount * factor
