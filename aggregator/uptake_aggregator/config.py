"""``uptake.toml``: the product's core features, goals per KPI and alert delivery.

Read by the CLI (`usage report`, `usage check`) and the daemon (scheduled goal
evaluation). The whole file is validated before anything uses it: a bad file raises one
``ConfigError`` naming the file, the line, the key and what is accepted, and nothing
runs on a half-valid config. docs/metrics.md ("Goals and alerts") describes the file.

Example::

    config = load_config(Path("uptake.toml"))
    [goal.metric for goal in config.goals]
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin

import msgspec

from uptake_aggregator.errors import ConfigError
from uptake_aggregator.metrics.report_schema import AccountRow, FeatureRow, Product

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

__all__ = [
    "CONFIG_NAME",
    "METRICS",
    "SCOPES",
    "Alerts",
    "Config",
    "ConfigError",
    "Direction",
    "Goal",
    "Scope",
    "default_config_path",
    "find_config",
    "load_config",
    "parse_config",
    "parse_duration",
]

CONFIG_NAME: Final = "uptake.toml"

Scope = Literal["product", "account", "feature"]
Direction = Literal["at_least", "at_most"]
SCOPES: Final[tuple[Scope, ...]] = ("product", "account", "feature")
_DIRECTIONS: Final[tuple[Direction, ...]] = ("at_least", "at_most")


def _numeric_fields(row: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of a report row whose type is a number (or a number or null)."""
    names = []
    for struct_field in msgspec.structs.fields(row):
        kinds = get_args(struct_field.type) if get_origin(struct_field.type) else ()
        members = set(kinds) if kinds else {struct_field.type}
        members.discard(type(None))
        if members and members <= {int, float}:
            names.append(struct_field.name)
    return tuple(sorted(names))


#: The metrics a goal may name, per scope: the numeric fields of the report's
#: ``product``, ``accounts[]`` and ``features[]`` (``metrics.report_schema``).
METRICS: Final[dict[str, tuple[str, ...]]] = {
    "product": _numeric_fields(Product),
    "account": _numeric_fields(AccountRow),
    "feature": _numeric_fields(FeatureRow),
}

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_HEADER: Final = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?")
_KEY: Final = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*=")


@dataclass(frozen=True)
class Goal:
    """A target for one KPI: ``metric`` of ``scope`` should be ``at_least``/``at_most`` target.

    ``only`` names the accounts or features it applies to (None: every one in the report).
    """

    metric: str
    scope: Scope
    target: float
    direction: Direction = "at_least"
    only: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        """A stable name for the goal, e.g. ``account.utilization >= 0.7`` (the alert log's)."""
        sign = ">=" if self.direction == "at_least" else "<="
        # Exact text of the target (never rounded: two targets must not share a key).
        value = float(self.target)
        target = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        return f"{self.scope}.{self.metric} {sign} {target}"


@dataclass(frozen=True)
class Alerts:
    """How and how often goal status changes are announced (``[alerts]``)."""

    #: Seconds between the daemon's goal evaluations.
    every_s: float = 900.0
    #: A program run once per change, the change's JSON on stdin (argv, no shell).
    command: tuple[str, ...] | None = None
    #: An http(s) URL the change's JSON is POSTed to.
    webhook: str | None = None
    command_timeout_s: float = 10.0
    webhook_timeout_s: float = 5.0
    #: Attempts after the first failed POST, with doubling waits from ``retry_wait_s``.
    webhook_retries: int = 3
    retry_wait_s: float = 1.0


@dataclass(frozen=True)
class Config:
    """The whole ``uptake.toml``; ``path`` is None for the empty default."""

    path: Path | None = None
    core_features: tuple[str, ...] = ()
    goals: tuple[Goal, ...] = ()
    alerts: Alerts = field(default_factory=Alerts)


def default_config_path() -> Path:
    """``<platformdirs user config dir>/uptake.toml`` (same app name as ``uptake.paths``)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("uptake")) / CONFIG_NAME


def find_config(explicit: Path | None) -> Path | None:
    """The config file to read: ``explicit`` (``--config``), ``$UPTAKE_CONFIG``, else the default.

    An explicit or environment path must exist (``ConfigError`` otherwise); the default
    path is used only when the file is there (None when not: no goals, no core features).
    """
    chosen = explicit
    source = "--config"
    if chosen is None and os.environ.get("UPTAKE_CONFIG"):
        chosen, source = Path(os.environ["UPTAKE_CONFIG"]), "UPTAKE_CONFIG"
    if chosen is not None:
        if not chosen.is_file():
            raise ConfigError(f"{source}: no config file at {chosen}; create it or fix the path")
        return chosen
    default = default_config_path()
    return default if default.is_file() else None


def load_config(path: Path | None) -> Config:
    """Read and validate the config at ``path`` (None: the empty config).

    Raises ``ConfigError`` with one message for an unreadable or invalid file.
    """
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from None
    return parse_config(text, path)


def parse_duration(text: str) -> float:
    """Seconds in a duration text: a number and a unit, ``ms``, ``s``, ``m``, ``h`` or ``d``.

    >>> parse_duration("15m"), parse_duration("1.5s"), parse_duration("2h")
    (900.0, 1.5, 7200.0)
    """
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


class _Locator:
    """Finds the line of a key or table in the file text (tomllib reports no positions)."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def line(self, table: str | None, index: int = 0, key: str | None = None) -> int | None:
        """1-based line of ``key`` in the ``index``-th ``[table]``/``[[table]]`` (top: None)."""
        current: str | None = None
        seen = -1
        header_line: int | None = None
        for number, raw in enumerate(self._lines, start=1):
            line = raw.split("#", 1)[0] if '"' not in raw and "'" not in raw else raw
            header = _HEADER.match(line)
            if header is not None and not _KEY.match(line):
                current = header.group(2).strip().strip("\"'")
                if table is None and key is not None and current.split(".")[0] == key:
                    return number  # a top-level table named like the key
                if current == table:
                    seen += 1
                    if seen == index:
                        header_line = number
                        if key is None:
                            return number
                continue
            if key is None or current != table or (table is not None and seen != index):
                continue
            match = _KEY.match(line)
            if match is not None and match.group(1).strip("\"'") == key:
                return number
        return header_line


class _Checker:
    """Validates the decoded TOML; ``fail`` raises the one ``ConfigError``."""

    def __init__(self, path: Path | None, text: str) -> None:
        self._where = str(path) if path is not None else CONFIG_NAME
        self._locate = _Locator(text)

    def fail(
        self, message: str, table: str | None, index: int = 0, key: str | None = None
    ) -> ConfigError:
        line = self._locate.line(table, index, key)
        at = f"{self._where}:{line}" if line is not None else self._where
        name = table if table is not None else ""
        if table == "goal":
            name = f"[[goal]] #{index + 1}"
        elif table is not None:
            name = f"[{table}]"
        label = f"{name} {key}" if key and name else (key or name)
        return ConfigError(f"{at}: {label}: {message}")

    def table(self, document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        value = document.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(f"must be a table ([{name}])", None, key=name)
        return value

    def unknown_keys(
        self, values: Mapping[str, Any], allowed: tuple[str, ...], table: str | None, index: int = 0
    ) -> None:
        for key in values:
            if key not in allowed:
                raise self.fail(
                    f"unknown key; accepted keys: {', '.join(allowed)}", table, index, key
                )

    def names(self, value: Any, table: str, index: int, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self.fail(
                'must be a list of non-empty names, e.g. ["acme", "globex"]', table, index, key
            )
        return tuple(value)

    def number(self, value: Any, table: str, index: int, key: str, *, minimum: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"must be a number >= {minimum:g}, not {value!r}", table, index, key)
        if not math.isfinite(value) or value < minimum:
            raise self.fail(f"must be a number >= {minimum:g}, not {value!r}", table, index, key)
        return float(value)

    def duration(self, value: Any, table: str, key: str, *, minimum: float) -> float:
        try:
            seconds = parse_duration(value) if isinstance(value, str) else -1.0
        except ValueError:
            seconds = -1.0
        if seconds < minimum:
            raise self.fail(
                f"{value!r} is not a duration of at least {minimum:g}s; write a number and a "
                'unit (ms, s, m, h, d), e.g. "15m"',
                table,
                key=key,
            )
        return seconds


_TOP_KEYS: Final = ("metrics", "goal", "alerts")
_METRICS_KEYS: Final = ("core_features",)
_GOAL_KEYS: Final = ("metric", "scope", "target", "direction", "only")
_ALERT_KEYS: Final = (
    "every",
    "command",
    "webhook",
    "command_timeout",
    "webhook_timeout",
    "webhook_retries",
    "retry_wait",
)


def parse_config(text: str, path: Path | None = None) -> Config:
    """Validate the TOML ``text`` of a config file (``path`` names it in messages).

    >>> parse_config('[[goal]]\\nmetric = "mau"\\nscope = "product"\\ntarget = 100').goals[0].key
    'product.mau >= 100'
    """
    where = str(path) if path is not None else CONFIG_NAME
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        at = f"{where}:{found.group(1)}" if found else where
        raise ConfigError(f"{at}: not valid TOML: {exc}") from None
    check = _Checker(path, text)
    check.unknown_keys(document, _TOP_KEYS, None)
    metrics = check.table(document, "metrics")
    check.unknown_keys(metrics, _METRICS_KEYS, "metrics")
    core: tuple[str, ...] = ()
    if "core_features" in metrics:
        core = check.names(metrics["core_features"], "metrics", 0, "core_features")
    goals_value = document.get("goal", [])
    if not isinstance(goals_value, list):
        raise check.fail("must be [[goal]] tables, one per goal", None, key="goal")
    goals = tuple(_goal(check, table, index) for index, table in enumerate(goals_value))
    return Config(
        path=path,
        core_features=tuple(sorted(set(core))),
        goals=goals,
        alerts=_alerts(check, check.table(document, "alerts")),
    )


def _goal(check: _Checker, table: Any, index: int) -> Goal:
    if not isinstance(table, dict):
        raise check.fail("must be a table", "goal", index)
    check.unknown_keys(table, _GOAL_KEYS, "goal", index)
    for required in ("metric", "scope", "target"):
        if required not in table:
            raise check.fail(f"missing key {required!r}", "goal", index)
    scope = table["scope"]
    if scope not in SCOPES:
        raise check.fail(
            f"{scope!r} is not a scope; accepted: {', '.join(SCOPES)}", "goal", index, "scope"
        )
    metric = table["metric"]
    valid = METRICS[scope]
    if metric not in valid:
        raise check.fail(
            f"{metric!r} is not a numeric {scope} metric; valid {scope} metrics: "
            f"{', '.join(valid)}",
            "goal",
            index,
            "metric",
        )
    direction = table.get("direction", "at_least")
    if direction not in _DIRECTIONS:
        raise check.fail(
            f"{direction!r} is not a direction; accepted: {', '.join(_DIRECTIONS)}",
            "goal",
            index,
            "direction",
        )
    only: tuple[str, ...] | None = None
    if "only" in table:
        if scope == "product":
            raise check.fail(
                "applies to account and feature goals only; remove it or change the scope",
                "goal",
                index,
                "only",
            )
        only = check.names(table["only"], "goal", index, "only")
    target = check.number(table["target"], "goal", index, "target", minimum=0.0)
    return Goal(metric=metric, scope=scope, target=target, direction=direction, only=only)


def _alerts(check: _Checker, table: Mapping[str, Any]) -> Alerts:
    check.unknown_keys(table, _ALERT_KEYS, "alerts")
    defaults = Alerts()
    command: tuple[str, ...] | None = None
    if "command" in table:
        raw = table["command"]
        if isinstance(raw, str) and raw.strip():
            command = tuple(shlex.split(raw))
        elif isinstance(raw, list) and raw and all(isinstance(part, str) for part in raw):
            command = tuple(raw)
        else:
            raise check.fail(
                'must be a command line ("notify-ops --urgent") or a list of its words',
                "alerts",
                key="command",
            )
    webhook: str | None = None
    if "webhook" in table:
        webhook = table["webhook"]
        if not isinstance(webhook, str) or not re.match(r"^https?://[^\s/]+", webhook):
            raise check.fail(
                f"{webhook!r} is not an http:// or https:// URL", "alerts", key="webhook"
            )
    retries = table.get("webhook_retries", defaults.webhook_retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise check.fail(
            f"must be a whole number from 0 to 20, not {retries!r}", "alerts", key="webhook_retries"
        )

    def duration(key: str, default: float, minimum: float) -> float:
        if key not in table:
            return default
        return check.duration(table[key], "alerts", key, minimum=minimum)

    return Alerts(
        every_s=duration("every", defaults.every_s, 1.0),
        command=command,
        webhook=webhook,
        command_timeout_s=duration("command_timeout", defaults.command_timeout_s, 0.001),
        webhook_timeout_s=duration("webhook_timeout", defaults.webhook_timeout_s, 0.001),
        webhook_retries=retries,
        retry_wait_s=duration("retry_wait", defaults.retry_wait_s, 0.0),
    )
