"""`taktline grafana push`: the InfluxDB datasource, the folder and every dashboard JSON of a
folder, into Grafana through its HTTP API.

Idempotent: each item is read first and written only when what Grafana has differs from what
would be sent, ignoring what Grafana adds itself (ids, versions) and what it never returns
(secrets: only which ones are set is compared). A second push makes no write at all. Updates
send the version just read with `overwrite: false`, so an edit saved in between is reported
(412), not lost. Items Grafana holds read-only (provisioned from files) are left alone.

One progress line per item as it is done, then a summary; a failed item is reported with
Grafana's message and the push goes on with the rest, except when the token is refused or
Grafana cannot be reached (then the rest is "not tried").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from dashboards.datasource import DATASOURCE_TYPE, DATASOURCE_UID
from server.grafana.client import (
    Grafana,
    GrafanaAuthError,
    GrafanaError,
    GrafanaUnreachableError,
    Json,
)
from taktline.config.settings import GrafanaSettings, InfluxV1, InfluxV2, ServerSettings
from taktline.model.secrets import SecretError

DATASOURCE_NAME = "taktline InfluxDB"
"""The datasource's name, as in deploy/grafana's provisioning files."""

MESSAGE = "taktline grafana push"
"""The version message of every dashboard version the push saves."""

GRAFANA_SETS = frozenset({"id", "version"})
"""Dashboard keys Grafana sets on save; never compared."""

Result = Literal["created", "updated", "unchanged", "skipped", "failed", "not tried"]


class PushConfigError(ValueError):
    """The push cannot start: no `grafana` section, no dashboards, an unreadable token."""


class ItemError(ValueError):
    """One item cannot be pushed for a reason of ours (a bad dashboard file, a missing secret)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to push: its label in the progress display, and how to push it."""

    label: str
    push: Callable[[Grafana], Awaitable[tuple[Result, str]]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one item; `detail` says why it was skipped or failed."""

    label: str
    result: Result
    detail: str = ""

    def line(self, number: int, total: int) -> str:
        """`[2/6] dashboard taktline-overview (Plant overview): updated`."""
        text = f"[{number}/{total}] {self.label}: {self.result}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class PushReport:
    """Every item's outcome, in push order."""

    url: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.result not in ("failed", "not tried") for o in self.outcomes)

    def summary(self) -> str:
        counts = {r: sum(o.result == r for o in self.outcomes) for r in get_args(Result)}
        parts = [f"{n} {r}" for r, n in counts.items() if n or r in ("unchanged", "failed")]
        return f"Grafana {self.url}: {', '.join(parts)}"


async def push(
    settings: ServerSettings,
    dashboards: Path,
    *,
    update_secrets: bool = False,
    out: Callable[[str], None] | None = None,
) -> PushReport:
    """Push the datasource, the folder and every `*.json` of `dashboards`, printing progress
    through `out` (default: stdout, flushed per line). Raises PushConfigError before any call
    when the push cannot start."""
    out = out or _print
    grafana_settings = settings.grafana
    if grafana_settings is None:
        raise PushConfigError("the server file has no `grafana` section (url, token)")
    items = plan(settings, grafana_settings, dashboards, update_secrets=update_secrets)
    try:
        client = Grafana(grafana_settings)
    except GrafanaError as exc:
        raise PushConfigError(str(exc)) from None
    report = PushReport(grafana_settings.url)
    async with client:
        for number, item in enumerate(items, start=1):
            outcome, stop = await _push_one(item, client)
            report.outcomes.append(outcome)
            out(outcome.line(number, len(items)))
            if stop:
                for later in items[number:]:
                    report.outcomes.append(Outcome(later.label, "not tried"))
                out(f"stopped: {stop}; {len(items) - number} item(s) not tried")
                break
    out(report.summary())
    return report


def _print(line: str) -> None:
    print(line, flush=True)


async def _push_one(item: Item, client: Grafana) -> tuple[Outcome, str]:
    """The item's outcome, and why to stop when nothing else can succeed ("" to go on)."""
    try:
        result, detail = await item.push(client)
    except GrafanaAuthError as exc:
        return Outcome(item.label, "failed", str(exc)), "Grafana refused the token"
    except GrafanaUnreachableError as exc:
        return Outcome(item.label, "failed", str(exc)), "Grafana cannot be reached"
    except (GrafanaError, ItemError) as exc:
        return Outcome(item.label, "failed", str(exc)), ""
    return Outcome(item.label, result, detail), ""


def plan(
    settings: ServerSettings,
    grafana: GrafanaSettings,
    dashboards: Path,
    *,
    update_secrets: bool = False,
) -> list[Item]:
    """The items of a push, in order: datasource, folder, dashboards by file name."""
    if not dashboards.is_dir():
        raise PushConfigError(f"{dashboards} is not a folder")
    files = sorted(dashboards.glob("*.json"))
    if not files:
        raise PushConfigError(f"no dashboard JSON (*.json) in {dashboards}")
    datasource = Item(
        f"datasource {DATASOURCE_UID}",
        lambda g: _push_datasource(g, settings, grafana, update_secrets=update_secrets),
    )
    folder = Item(
        f"folder {grafana.folder_uid} ({grafana.folder_title})",
        lambda g: _push_folder(g, grafana.folder_uid, grafana.folder_title),
    )
    return [datasource, folder, *(_dashboard_item(file, grafana.folder_uid) for file in files)]


# --- the datasource ----------------------------------------------------------------------------


def datasource_body(influx: InfluxV1 | InfluxV2, url: str) -> tuple[Json, Json]:
    """What Grafana is sent for the InfluxDB datasource, InfluxQL in both cases: the settings,
    and the secrets (`secureJsonData`). InfluxDB 2.x/3.x answer InfluxQL on a database name that
    maps to the bucket (DBRP), authenticated by an `Authorization: Token ...` header."""
    body: Json = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": url,
    }
    json_data: Json = {"version": "InfluxQL", "httpMode": "POST"}
    secrets: Json = {}
    try:
        if isinstance(influx, InfluxV1):
            body["user"] = influx.username or ""
            json_data["dbName"] = influx.database
            if influx.password is not None:
                secrets["password"] = influx.password.reveal()
        else:
            json_data.update(dbName=influx.bucket, httpHeaderName1="Authorization")
            secrets["httpHeaderValue1"] = f"Token {influx.token.reveal()}"
    except SecretError as exc:
        raise ItemError(f"InfluxDB credentials: {exc}") from None
    body["jsonData"] = json_data
    return body, secrets


async def _push_datasource(
    client: Grafana, settings: ServerSettings, grafana: GrafanaSettings, *, update_secrets: bool
) -> tuple[Result, str]:
    if settings.influxdb is None:
        return "skipped", "the server file has no influxdb section"
    body, secrets = datasource_body(
        settings.influxdb, grafana.datasource_url or settings.influxdb.url
    )
    existing = await client.get_datasource(DATASOURCE_UID)
    if existing is None:
        await client.create_datasource({**body, "secureJsonData": secrets})
        return "created", ""
    if existing.get("readOnly"):
        return "skipped", "provisioned from files (read-only in Grafana)"
    if _datasource_unchanged(existing, body, secrets) and not update_secrets:
        return "unchanged", ""
    update = {**body, "secureJsonData": secrets, "version": existing.get("version", 0)}
    await client.update_datasource(DATASOURCE_UID, update)
    return "updated", ""


def _datasource_unchanged(existing: Json, body: Json, secrets: Json) -> bool:
    """Every field sent is as Grafana has it, and the same secrets are set (their values are
    never returned)."""
    set_secrets = {k for k, v in (existing.get("secureJsonFields") or {}).items() if v}
    return all(existing.get(k) == v for k, v in body.items()) and set_secrets == set(secrets)


# --- the folder --------------------------------------------------------------------------------


async def _push_folder(client: Grafana, uid: str, title: str) -> tuple[Result, str]:
    existing = await client.get_folder(uid)
    if existing is None:
        await client.create_folder(uid, title)
        return "created", ""
    if existing.get("title") == title:
        return "unchanged", ""
    await client.update_folder(uid, title, int(existing.get("version") or 0))
    return "updated", ""


# --- dashboards ----------------------------------------------------------------------------------


def load_dashboard(file: Path) -> Json:
    """A dashboard JSON file, without the keys Grafana sets. Raises ItemError."""
    try:
        dashboard = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ItemError(f"cannot read {file}: {exc}") from None
    if not isinstance(dashboard, dict):
        raise ItemError(f"{file} is not a dashboard (a JSON object)")
    for key in ("uid", "title"):
        if not isinstance(dashboard.get(key), str) or not dashboard[key]:
            raise ItemError(f"{file} has no `{key}`; every pushed dashboard needs one")
    return {k: v for k, v in dashboard.items() if k not in GRAFANA_SETS}


def _dashboard_item(file: Path, folder_uid: str) -> Item:
    try:
        dashboard = load_dashboard(file)
    except ItemError as exc:
        error = exc

        async def fail(client: Grafana) -> tuple[Result, str]:
            raise error

        return Item(f"dashboard {file.name}", fail)
    label = f"dashboard {dashboard['uid']} ({dashboard['title']})"
    return Item(label, lambda g: _push_dashboard(g, dashboard, folder_uid))


async def _push_dashboard(client: Grafana, dashboard: Json, folder_uid: str) -> tuple[Result, str]:
    existing = await client.get_dashboard(dashboard["uid"])
    if existing is None:
        await client.save_dashboard(dashboard, folder_uid, MESSAGE)
        return "created", ""
    stored: Json = existing.get("dashboard") or {}
    meta: Json = existing.get("meta") or {}
    if meta.get("provisioned"):
        return "skipped", "provisioned from files (Grafana refuses to save it)"
    same = {k: v for k, v in stored.items() if k not in GRAFANA_SETS} == dashboard
    if same and meta.get("folderUid") == folder_uid:
        return "unchanged", ""
    current: Any = stored.get("version", meta.get("version"))
    await client.save_dashboard({**dashboard, "version": current}, folder_uid, MESSAGE)
    return "updated", ""
