"""deploy/docker-compose*.yml, .env.example and deploy/config/, without a Docker engine.

The docker client here has no compose plugin, so `docker compose config` cannot run. The files
are interpolated from .env.example the way compose does it, then validated against the Compose
Specification's JSON schema (deploy/schema/compose-spec.json) and cross-checked: what compose
itself would resolve (services, volumes, mounted files), that each taktline container's config
passes `taktline check-config` with the environment compose gives it, and that this
environment is exactly the secrets taktline reads. The overrides (docker-compose.influxdb3.yml,
docker-compose.replicas.yml) are merged into docker-compose.yml by compose's rules where a test
needs the result. Mosquitto runs for real with the stack's mosquitto.conf, ACL and password
script (paths and port moved to a temporary folder), PostgreSQL's health check against a real
PostgreSQL.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel
from sqlalchemy import make_url

from taktline.cli import main
from taktline.config import load_edge_config, load_plant, load_server_config
from taktline.localbroker import free_port
from taktline.model import Plant
from taktline.model.secrets import SecretRef
from taktline.model.sources import MqttSource
from tests.deploy.test_dockerfile import HealthServer, check_healthcheck
from tests.fixtures.postgres import PostgresService
from tests.fixtures.services import MosquittoService, require_binary, wait_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONFIG = DEPLOY / "config"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_INFLUXDB3 = DEPLOY / "docker-compose.influxdb3.yml"
COMPOSE_REPLICAS = DEPLOY / "docker-compose.replicas.yml"
OVERRIDES = (COMPOSE_INFLUXDB3, COMPOSE_REPLICAS)
ENV_EXAMPLE = DEPLOY / ".env.example"
SCHEMA = DEPLOY / "schema" / "compose-spec.json"
TAKTLINE_SERVICES = {"server", "edge-1", "edge-2", "sim"}
REPLICAS = ("server", "server-2")
"""The server replicas of docker-compose.replicas.yml."""

VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
"""Compose interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $VAR."""


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is unset or empty."""


def interpolate(text: str, env: dict[str, str], used: set[str]) -> str:
    """Resolve compose variables in `text` from `env`; record every variable named in `used`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        used.add(name)
        value = env.get(name)
        op, arg = match.group("op"), match.group("arg")
        if op in (":-", "-"):
            return arg if value is None or (op == ":-" and value == "") else value
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise InterpolationError(f"{name}: {arg}")
        return value or ""

    return VARIABLE.sub(replace, text)


def interpolate_tree(node: Any, env: dict[str, str], used: set[str]) -> Any:
    """A copy of a loaded YAML document with every string value interpolated."""
    if isinstance(node, str):
        return interpolate(node, env, used)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env, used) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env, used) for item in node]
    return node


def read_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines as compose reads an .env file (a value may use earlier ${KEYS})."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), line
        assert key not in env, f"{key} twice"
        env[key] = interpolate(value, env, set())
    return env


@dataclass
class Compose:
    """A compose file loaded and interpolated from .env.example."""

    raw: dict[str, Any]
    resolved: dict[str, Any]
    used: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, file: Path, env: dict[str, str]) -> Compose:
        return cls.parse(file.read_text(encoding="utf-8"), env)

    @classmethod
    def parse(cls, text: str, env: dict[str, str]) -> Compose:
        raw = yaml.safe_load(text)
        used: set[str] = set()
        return cls(raw, interpolate_tree(raw, env, used), used)

    def service(self, name: str) -> dict[str, Any]:
        return self.services()[name]

    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = self.resolved["services"]
        return services


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return read_env(ENV_EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(env: dict[str, str]) -> Compose:
    return Compose.load(COMPOSE, env)


@pytest.fixture(scope="module")
def compose_influxdb3(env: dict[str, str]) -> Compose:
    return Compose.load(COMPOSE_INFLUXDB3, env)


@pytest.fixture(scope="module")
def compose_replicas(env: dict[str, str]) -> Compose:
    return Compose.load(COMPOSE_REPLICAS, env)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts (short syntax, ./ or ../)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((DEPLOY / source).resolve(), target))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    return [v.split(":")[0] for v in service.get("volumes", []) if not v.startswith(".")]


# --- the files against the compose specification ----------------------------------------------


@pytest.mark.parametrize("file", [COMPOSE, *OVERRIDES], ids=lambda f: f.name)
def test_compose_file_follows_the_compose_specification(
    file: Path, env: dict[str, str], validator: jsonschema.protocols.Validator
) -> None:
    document = Compose.load(file, env).resolved
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def test_schema_catches_a_misspelt_key(
    compose: Compose, validator: jsonschema.protocols.Validator
) -> None:
    broken = json.loads(json.dumps(compose.resolved))
    broken["services"]["server"]["restart_policy"] = "always"
    broken["services"]["edge-1"]["healthcheck"]["intervall"] = "30s"
    paths = {tuple(e.absolute_path) for e in validator.iter_errors(broken)}
    assert ("services", "server") in paths
    assert ("services", "edge-1", "healthcheck") in paths


def test_the_schema_is_vendored_with_its_source_and_licence() -> None:
    notes = (DEPLOY / "schema" / "README.md").read_text(encoding="utf-8")
    assert "https://github.com/compose-spec/compose-spec" in notes
    assert "Apache License" in (DEPLOY / "schema" / "LICENSE").read_text(encoding="utf-8")
    assert json.loads(SCHEMA.read_text(encoding="utf-8"))["title"] == "Compose Specification"


def test_every_variable_is_in_env_example_and_every_entry_is_used(
    env: dict[str, str], compose: Compose, compose_influxdb3: Compose, compose_replicas: Compose
) -> None:
    used = compose.used | compose_influxdb3.used | compose_replicas.used
    assert used - set(env) == set(), "add these to .env.example"
    example_refs = set(re.findall(r"\$\{([A-Z0-9_]+)\}", ENV_EXAMPLE.read_text(encoding="utf-8")))
    assert set(env) - used - example_refs == set(), "stale entries in .env.example"


def test_env_example_holds_placeholders_not_secrets(env: dict[str, str]) -> None:
    raw = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    secrets = {k: v for k, v in raw.items() if re.search(r"PASSWORD|TOKEN|KEY", k)}
    assert len(secrets) >= 9
    for key, value in secrets.items():
        assert "change-me" in value or re.fullmatch(r"\$\{[A-Z0-9_]+\}", value), key
    assert env["INFLUXDB_ADMIN_TOKEN"].startswith("apiv3_")  # InfluxDB 3 takes it too


@pytest.mark.parametrize(
    ("file", "secret"),
    [
        (COMPOSE, "MQTT_EDGE_PASSWORD"),
        (COMPOSE_REPLICAS, "POSTGRES_PASSWORD"),
        (COMPOSE_REPLICAS, "TAKTLINE_ACK_SIGNING_KEY"),
    ],
)
def test_a_missing_secret_stops_compose(file: Path, secret: str, env: dict[str, str]) -> None:
    without = {k: v for k, v in env.items() if k != secret}
    with pytest.raises(InterpolationError, match=secret):
        Compose.load(file, without)


def test_env_file_is_never_committed() -> None:
    checked = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/.env"], cwd=REPO, timeout=30, check=False
    )
    assert checked.returncode == 0, "deploy/.env must be ignored by git"


# --- what compose would resolve ---------------------------------------------------------------


def test_references_resolve(
    compose: Compose, compose_influxdb3: Compose, compose_replicas: Compose
) -> None:
    overrides = (compose_influxdb3, compose_replicas)
    services = compose.resolved["services"] | compose_replicas.resolved["services"]
    declared = set(compose.resolved["volumes"]).union(*(o.resolved["volumes"] for o in overrides))
    for name, service in [(n, s) for f in (compose, *overrides) for n, s in f.services().items()]:
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on {dependency}"
        for volume in named_volumes(service):
            assert volume in declared, f"{name}: volume {volume}"
        for host, _ in bind_mounts(service):
            assert host.exists(), f"{name}: {host}"
    for config in compose_influxdb3.service("influxdb").get("configs", []):
        assert config["source"] in compose_influxdb3.resolved["configs"]
    for file in (compose, *overrides):
        assert set(file.resolved["volumes"]) == {
            v for s in file.resolved["services"].values() for v in named_volumes(s)
        }


def test_services_of_the_stack(compose: Compose) -> None:
    services = compose.resolved["services"]
    assert set(services) == {"mosquitto-init", "mosquitto", "influxdb", "grafana"} | (
        TAKTLINE_SERVICES
    )
    assert [n for n, s in services.items() if s.get("profiles")] == ["sim"]
    assert services["sim"]["profiles"] == ["sim"]
    for name in TAKTLINE_SERVICES:
        service = services[name]
        assert service["image"] == "taktline:local"
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    for name, service in services.items():
        if name != "mosquitto-init":
            assert service["restart"] == "unless-stopped", name
        is_taktline = name in TAKTLINE_SERVICES
        assert "healthcheck" in service or is_taktline or name == "mosquitto-init", name
    for name in ("edge-1", "edge-2", "server"):
        assert named_volumes(services[name]) == [f"{name}-state"]
    assert services["sim"]["healthcheck"] == {"disable": True}


def test_the_stack_plant_is_the_example_plant_with_the_stack_hosts() -> None:
    stack = load_plant(CONFIG / "plant.yaml")
    example = load_plant(REPO / "examples" / "plant.yaml")
    assert stack.model_dump(exclude={"sources"}) == example.model_dump(exclude={"sources"})

    def mapping(plant: Plant) -> list[dict[str, Any]]:
        """Each source without where it is reached."""
        return [s.model_dump(exclude={"endpoint", "broker"}) for s in plant.sources]

    assert mapping(stack) == mapping(example)
    hosts = {s.id: s.endpoint if s.type == "opcua" else s.broker.host for s in stack.sources}
    assert hosts == {
        "eol-fa1": "opc.tcp://sim:4840/taktline/fa1",
        "eol-fa2": "opc.tcp://sim:4841/taktline/fa2",
        "paint-mqtt": "mosquitto",
    }


# --- each taktline container: its files, its command, its environment ---------------------------


def container_files(service: dict[str, Any], root: Path) -> Path:
    """Copy the service's mounted files to their container paths below `root`; return the file
    its command names (`--config` or `--plant`)."""
    for host, target in bind_mounts(service):
        if host.is_file():
            destination = root / target.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host, destination)
    command: list[str] = service["command"]
    flag = "--plant" if command[0] == "sim" else "--config"
    return root / command[command.index(flag) + 1].lstrip("/")


def secret_envs(node: Any) -> set[str]:
    """The environment variables of every `{env: ...}` secret in a model tree."""
    if isinstance(node, SecretRef):
        return {node.env} if node.env else set()
    if isinstance(node, BaseModel):
        return set().union(*(secret_envs(getattr(node, n)) for n in type(node).model_fields))
    if isinstance(node, list | tuple):
        return set().union(*(secret_envs(item) for item in node))
    if isinstance(node, dict):
        return set().union(*(secret_envs(item) for item in node.values()))
    return set()


def secrets_read(command: str, file: Path) -> set[str]:
    """The secrets the part started by `command` reads: its settings, and of the plant the
    sources it connects to (the edge: its own; the simulator: all; the server: none)."""
    if command == "edge":
        edge = load_edge_config(file)
        wanted = edge.settings.sources
        sources = [s for s in edge.plant.sources if wanted is None or s.id in wanted]
        return secret_envs(edge.settings) | secret_envs(sources)
    if command == "server":
        server = load_server_config(file)
        plant = server.plant.model_copy(update={"sources": []})
        return secret_envs(server.settings) | secret_envs(plant)
    return secret_envs(load_plant(file).sources)


@pytest.mark.parametrize("name", sorted(TAKTLINE_SERVICES))
def test_taktline_container_config_passes_check_config_with_its_environment(
    name: str,
    compose: Compose,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = compose.service(name)
    environment: dict[str, str] = service["environment"]
    assert all(environment.values())
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    file = container_files(service, tmp_path)
    assert main(["check-config", str(file)]) == 0
    assert "OK" in capsys.readouterr().out
    assert set(environment) == secrets_read(service["command"][0], file), (
        "every variable given to the container is a secret taktline reads, and each is given"
    )


def uncomment_blocks(text: str, keys: tuple[str, ...]) -> str:
    """`text` with the commented YAML blocks that start `# KEY:` (for each key) uncommented."""
    lines = []
    inside = False
    for line in text.splitlines():
        if line.removeprefix("# ").split(":")[0] in keys and line.startswith("# "):
            inside = True
        elif not line.startswith("#   "):
            inside = False
        lines.append(line.removeprefix("# ") if inside else line)
    return "\n".join(lines) + "\n"


def test_optional_server_blocks_work_once_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """config/server.yaml's commented `grafana` and `alerts` blocks, with the commented lines of
    docker-compose.yml and .env.example they name."""
    env_text = re.sub(r"(?m)^# ([A-Z_]+=change-me)", r"\1", ENV_EXAMPLE.read_text())
    compose_text = re.sub(r"(?m)^(\s+)# (TAKTLINE_[A-Z_]+: \$)", r"\1\2", COMPOSE.read_text())
    server = Compose.parse(compose_text, read_env(env_text)).service("server")
    server_text = uncomment_blocks((CONFIG / "server.yaml").read_text(), ("grafana", "alerts"))
    assert server_text.count("\n# ") < (CONFIG / "server.yaml").read_text().count("\n# ") - 10
    file = container_files(server, tmp_path)
    file.write_text(server_text)
    for key, value in server["environment"].items():
        monkeypatch.setenv(key, value)
    assert main(["check-config", str(file)]) == 0
    settings = load_server_config(file).settings
    assert settings.grafana is not None and settings.alerts.delivery.smtp is not None
    assert set(server["environment"]) == secrets_read("server", file)
    assert {"TAKTLINE_GRAFANA_TOKEN", "TAKTLINE_SMTP_PASSWORD"} <= set(server["environment"])
    capsys.readouterr()


def test_every_taktline_config_file_is_mounted_and_valid(
    compose: Compose, compose_replicas: Compose, capsys: pytest.CaptureFixture[str]
) -> None:
    services = [compose.service(name) for name in TAKTLINE_SERVICES]
    services += [compose_replicas.service(name) for name in REPLICAS]
    mounted = {host for service in services for host, _ in bind_mounts(service)}
    mounted = {host for host in mounted if host.suffix == ".yaml"}
    files = set(CONFIG.glob("*.yaml"))
    assert files == mounted
    for file in sorted(files):
        assert main(["check-config", str(file)]) == 0, file
    assert capsys.readouterr().out.count(": OK (") == len(files)


def test_taktline_files_name_the_stack_hosts_and_the_influxdb_setup(compose: Compose) -> None:
    influxdb = compose.service("influxdb")["environment"]
    settings = [load_edge_config(CONFIG / f).settings for f in ("edge-1.yaml", "edge-2.yaml")]
    settings_all = [*settings, load_server_config(CONFIG / "server.yaml").settings]
    for item in settings_all:
        assert item.live_bus.host == "mosquitto" and item.live_bus.port == 1883
        assert item.influxdb is not None and item.influxdb.api == "v2"
        assert item.influxdb.url == "http://influxdb:8086"
        assert item.influxdb.org == influxdb["DOCKER_INFLUXDB_INIT_ORG"]
        assert item.influxdb.bucket == influxdb["DOCKER_INFLUXDB_INIT_BUCKET"]
    client_ids = [item.live_bus.client_id for item in settings_all]
    assert len(set(client_ids)) == len(client_ids)
    sources = [s for item in settings for s in item.sources or []]
    assert sorted(sources) == sorted(s.id for s in load_plant(CONFIG / "plant.yaml").sources)
    assert (
        compose.service("grafana")["environment"]["TAKTLINE_INFLUX_DB"]
        == (influxdb["TAKTLINE_INFLUX_DB"])
    )


def test_influxdb_init_script_maps_the_bucket_for_influxql(compose: Compose) -> None:
    mounts = dict(bind_mounts(compose.service("influxdb")))
    script = CONFIG / "influxdb-dbrp.sh"
    assert mounts[script].startswith("/docker-entrypoint-initdb.d/")
    assert mounts[script].endswith(".sh") and os.access(script, os.X_OK)
    text = script.read_text(encoding="utf-8")
    assert "influx v1 dbrp create" in text and "--default" in text
    for variable in re.findall(r"\$\{([A-Z0-9_]+)\}", text):
        assert (
            variable.startswith("DOCKER_INFLUXDB_INIT_")
            or variable in (compose.service("influxdb")["environment"])
        ), variable
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


# --- Grafana --------------------------------------------------------------------------------


def grafana_datasource(compose: Compose) -> Path:
    mounts = {target: host for host, target in bind_mounts(compose.service("grafana"))}
    return mounts["/etc/grafana/provisioning/datasources/taktline-influxdb.yaml"]


def test_grafana_gets_the_influxdb_2_datasource_and_the_dashboards(compose: Compose) -> None:
    grafana = compose.service("grafana")
    mounts = {target: host for host, target in bind_mounts(grafana)}
    assert grafana_datasource(compose) == DEPLOY / "grafana" / "datasources" / "influxdb-2.yaml"
    assert [t for t in mounts if t.startswith("/etc/grafana/provisioning/datasources")] == [
        "/etc/grafana/provisioning/datasources/taktline-influxdb.yaml"
    ], "exactly one datasource file with the taktline uid"
    provider = yaml.safe_load(
        (mounts["/etc/grafana/provisioning/dashboards"] / "taktline.yaml").read_text()
    )
    dashboards = provider["providers"][0]["options"]["path"]
    assert mounts[dashboards] == REPO / "dashboards" / "generated"
    assert sorted(mounts[dashboards].glob("*.json"))
    datasource = grafana_datasource(compose).read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)\}", datasource))
    assert needed and needed <= set(grafana["environment"])
    assert grafana["environment"]["TAKTLINE_INFLUX_URL"] == "http://influxdb:8086"


def test_influxdb3_variant_replaces_influxdb_and_the_datasource(
    compose: Compose, compose_influxdb3: Compose, env: dict[str, str]
) -> None:
    assert set(compose_influxdb3.resolved["services"]) <= set(compose.resolved["services"])
    influxdb = compose_influxdb3.service("influxdb")
    assert influxdb["image"].startswith("influxdb:3")
    assert "--http-bind=0.0.0.0:8086" in influxdb["command"]  # the taktline files stay valid
    token_file = influxdb["configs"][0]["target"]
    assert f"--admin-token-file={token_file}" in influxdb["command"]
    content = compose_influxdb3.resolved["configs"]["influxdb3-admin-token"]["content"]
    assert json.loads(content) == {"token": env["INFLUXDB_ADMIN_TOKEN"], "name": "_admin"}
    assert grafana_datasource(compose_influxdb3).name == "influxdb-3.yaml"
    datasource = grafana_datasource(compose_influxdb3).read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)\}", datasource))
    assert needed <= set(compose.service("grafana")["environment"])


# --- server replicas on PostgreSQL (docker-compose.replicas.yml) ------------------------------


def merged_service(base: Compose, override: Compose, name: str) -> dict[str, Any]:
    """Service `name` as compose merges `override` into `base`: mappings key by key
    (environment, depends_on), volumes by container path, anything else replaced."""
    service = dict(base.services().get(name, {}))
    for key, value in override.service(name).items():
        if key == "volumes":
            mounts = {v.split(":")[1]: v for v in [*service.get(key, []), *value]}
            service[key] = list(mounts.values())
        elif isinstance(value, dict) and isinstance(service.get(key), dict):
            service[key] = service[key] | value
        else:
            service[key] = value
    return service


@pytest.fixture(scope="module")
def replicas(compose: Compose, compose_replicas: Compose) -> dict[str, dict[str, Any]]:
    return {name: merged_service(compose, compose_replicas, name) for name in REPLICAS}


def test_replicas_override_adds_postgres_and_a_second_server(compose_replicas: Compose) -> None:
    assert set(compose_replicas.services()) == {"postgres", *REPLICAS}
    # merged_service's rules are compose's for these keys (lists other than volumes append)
    assert set(compose_replicas.service("server")) == {"depends_on", "environment", "volumes"}


def test_replicas_share_image_hardening_files_and_secrets(
    replicas: dict[str, dict[str, Any]], env: dict[str, str]
) -> None:
    server, second = replicas["server"], replicas["server-2"]
    alike = {"image", "build", "restart", "read_only", "tmpfs", "cap_drop", "security_opt"}
    alike |= {"stop_grace_period", "logging", "command", "environment", "depends_on"}
    for key in alike:
        assert second[key] == server[key], key
    assert set(second) == alike | {"volumes", "ports"}  # the image's health check, as `server`
    assert server["read_only"] is True and server["cap_drop"] == ["ALL"]
    assert server["depends_on"] == {
        "mosquitto": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    config = server["command"][server["command"].index("--config") + 1]
    for service in (server, second):
        assert dict(bind_mounts(service))[CONFIG / "server-replicas.yaml"] == config
        assert CONFIG / "server.yaml" not in dict(bind_mounts(service))
    assert bind_mounts(server) == bind_mounts(second)
    assert named_volumes(second) == []  # nothing is kept in state_dir (see the next test)
    assert server["ports"] == [f"{env['SERVER_PORT']}:8080"]
    assert second["ports"] == [f"{env['SERVER_2_PORT']}:8080"]
    assert env["SERVER_PORT"] != env["SERVER_2_PORT"]


@pytest.mark.parametrize("name", REPLICAS)
def test_replica_config_passes_check_config_with_its_environment(
    name: str,
    replicas: dict[str, dict[str, Any]],
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = replicas[name]
    environment: dict[str, str] = service["environment"]
    assert all(environment.values())
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    file = container_files(service, tmp_path)
    assert file.read_bytes() == (CONFIG / "server-replicas.yaml").read_bytes()
    assert main(["check-config", str(file)]) == 0
    assert "OK" in capsys.readouterr().out
    assert set(environment) == secrets_read("server", file)
    settings = load_server_config(file).settings
    assert settings.state_store is not None
    assert settings.state_store.reveal() == environment["TAKTLINE_STATE_STORE"]
    signing_key = settings.alerts.delivery.ack.signing_key
    assert signing_key is not None and signing_key.reveal() == env["TAKTLINE_ACK_SIGNING_KEY"]
    # with both set, the server keeps nothing in state_dir (server/app.py, ack_tokens.py)
    assert settings.live_bus.client_id is None  # two clients with one id throw each other off


def test_replicas_file_is_the_server_file_with_a_shared_store() -> None:
    single = load_server_config(CONFIG / "server.yaml").settings
    shared = load_server_config(CONFIG / "server-replicas.yaml").settings
    differ = {"state_store", "alerts", "live_bus"}
    assert shared.model_dump(exclude=differ) == single.model_dump(exclude=differ)
    assert shared.live_bus.model_dump(exclude={"client_id"}) == single.live_bus.model_dump(
        exclude={"client_id"}
    )
    assert single.state_store is None and shared.state_store is not None
    assert shared.alerts.model_dump(exclude={"delivery"}) == single.alerts.model_dump(
        exclude={"delivery"}
    )
    assert single.alerts.delivery.ack.signing_key is None
    assert shared.alerts.delivery.ack.signing_key is not None


@pytest.mark.parametrize("password", ["from-env-example", "ab+/cd=="])
def test_store_url_is_the_postgres_service_with_its_password(
    password: str, compose: Compose, env: dict[str, str]
) -> None:
    """Also with a base64 password (openssl rand -base64), which has / and + in it."""
    if password == "from-env-example":
        password = env["POSTGRES_PASSWORD"]
    override = Compose.load(COMPOSE_REPLICAS, env | {"POSTGRES_PASSWORD": password})
    postgres = override.service("postgres")["environment"]
    for name in REPLICAS:
        url = make_url(
            merged_service(compose, override, name)["environment"]["TAKTLINE_STATE_STORE"]
        )
        assert (url.drivername, url.host, url.port) == ("postgresql", "postgres", 5432)
        assert (url.username, url.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
        assert url.password == postgres["POSTGRES_PASSWORD"] == password


def test_postgres_service(compose_replicas: Compose) -> None:
    postgres = compose_replicas.service("postgres")
    environment = postgres["environment"]
    assert postgres["image"] == "postgres:15"
    assert "ports" not in postgres  # the replicas only
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert postgres["user"] == "postgres" and postgres["read_only"] is True
    assert postgres["cap_drop"] == ["ALL"] and "/var/run/postgresql" in postgres["tmpfs"]
    assert postgres["restart"] == "unless-stopped"
    assert postgres["healthcheck"]["test"] == [
        "CMD",
        "pg_isready",
        "-h",
        "127.0.0.1",  # not the socket, which the image's first-start setup serves
        "-U",
        environment["POSTGRES_USER"],
        "-d",
        environment["POSTGRES_DB"],
    ]


@pytest.mark.integration
def test_postgres_healthcheck_command(compose_replicas: Compose, postgres: PostgresService) -> None:
    test = compose_replicas.service("postgres")["healthcheck"]["test"]
    pg_isready = require_binary("pg_isready", "postgresql-client")
    ready = subprocess.run(
        [pg_isready, *test[2:], "-p", str(postgres.port)], capture_output=True, timeout=30
    )
    assert ready.returncode == 0, ready.stdout
    away = subprocess.run(
        [pg_isready, *test[2:], "-p", str(free_port())], capture_output=True, timeout=30
    )
    assert away.returncode != 0


# --- health checks ----------------------------------------------------------------------------


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    with HealthServer() as server:
        yield server


@pytest.mark.parametrize("name", ["edge-1", "edge-2"])
def test_edge_healthcheck_asks_the_edge_port(
    name: str, compose: Compose, health_server: HealthServer
) -> None:
    test = compose.service(name)["healthcheck"]["test"]
    assert test[0] == "CMD"
    config = load_edge_config(CONFIG / f"{name}.yaml").settings
    assert test[-1] == f"http://127.0.0.1:{config.http.port}/healthz"
    check_healthcheck(test[1:], health_server)


def test_server_listens_where_the_image_health_check_asks(compose: Compose) -> None:
    server = load_server_config(CONFIG / "server.yaml").settings
    assert (server.http.host, server.http.port) == ("0.0.0.0", 8080)
    assert compose.service("server")["ports"] == ["8080:8080"]
    assert "healthcheck" not in compose.service("server")  # the image's /healthz on 8080


# --- Mosquitto, for real ------------------------------------------------------------------------


@dataclass
class StackBroker:
    """The stack's Mosquitto running here, with the passwords of .env.example."""

    service: MosquittoService
    auth_dir: Path
    passwords: dict[str, str]


@pytest.fixture
def stack_broker(tmp_path: Path, compose: Compose) -> Iterator[StackBroker]:
    require_binary("mosquitto_passwd", "mosquitto")
    init = compose.service("mosquitto-init")
    mounts = {target: host for host, target in bind_mounts(init)}
    auth = tmp_path / "auth"
    assert named_volumes(init) == ["mosquitto-auth"]
    assert "mosquitto-auth:/mosquitto/auth" in compose.service("mosquitto")["volumes"]
    environment = {
        "PATH": f"{os.environ['PATH']}:/usr/sbin",
        "MOSQUITTO_AUTH_DIR": str(auth),  # the script's defaults are the container's paths
        "MOSQUITTO_ACL_SOURCE": str(mounts["/config/mosquitto.acl"]),
    }
    subprocess.run(
        [init["entrypoint"][0], str(mounts[init["entrypoint"][1]])],
        env={**environment, **init["environment"]},
        check=True,
        timeout=30,
        capture_output=True,
    )
    assert {p.name for p in auth.iterdir()} == {"passwd", "acl", "healthcheck"}
    assert {oct(p.stat().st_mode & 0o777) for p in auth.iterdir()} == {"0o600"}
    broker = compose.service("mosquitto")
    mounts = {target: host for host, target in bind_mounts(broker)}
    assert list(mounts) == ["/mosquitto/config/mosquitto.conf"]
    (tmp_path / "data").mkdir()
    text = mounts["/mosquitto/config/mosquitto.conf"].read_text(encoding="utf-8")
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert sum("/mosquitto/" in line for line in settings) == 3
    assert settings.count("listener 1883") == 1
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"  # as root, mosquitto would drop to the user `mosquitto`
        + text.replace("/mosquitto/", f"{tmp_path}/").replace(
            "\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n"
        ),
        encoding="utf-8",
    )
    service = MosquittoService("127.0.0.1", port, conf, require_binary("mosquitto", "mosquitto"))
    service.start()
    passwords = {
        "taktline-edge": init["environment"]["MQTT_EDGE_PASSWORD"],
        "taktline-server": init["environment"]["MQTT_SERVER_PASSWORD"],
    }
    try:
        yield StackBroker(service, auth, passwords)
    finally:
        service.stop()


class Client:
    """A paho MQTT 5 client run on its own thread, recording CONNACK, PUBACKs and messages."""

    def __init__(self, port: int, user: str | None, password: str | None, client_id: str):
        self.port = port
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.pubacks: dict[int, ReasonCode] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.lock = threading.Lock()
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if user is not None:
            self.paho.username_pw_set(user, password)
        self.paho.on_connect = self._on_connect
        self.paho.on_publish = self._on_publish
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = lambda *args: self.subscribed.set()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.connack = code
        self.connected.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, code: Any, props: Any) -> None:
        with self.lock:
            self.pubacks[mid] = code

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def connect(self, *, clean_start: bool = True, session_expiry_s: int = 0) -> ReasonCode:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry_s
        self.connected.clear()
        self.paho.connect("127.0.0.1", self.port, clean_start=clean_start, properties=properties)
        self.paho.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.paho.subscribe(topic, qos=1)
        assert self.subscribed.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
        info = self.paho.publish(topic, payload, qos=1, retain=retain)
        wait_until(lambda: info.mid in self.pubacks, 10, f"PUBACK of {topic}")
        return self.pubacks[info.mid]

    def publish_many(self, topics: list[str], *, retain: bool) -> None:
        infos = [self.paho.publish(t, b'{"count": 1}', qos=1, retain=retain) for t in topics]
        wait_until(lambda: all(i.mid in self.pubacks for i in infos), 30, "every PUBACK")
        assert not [i for i in infos if self.pubacks[i.mid].is_failure]

    def received(self) -> int:
        with self.lock:
            return len(self.messages)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def clients(stack_broker: StackBroker) -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def login(
    broker: StackBroker, clients: list[Client], user: str | None, client_id: str, **kw: Any
) -> Client:
    password = broker.passwords.get(user or "")
    client = Client(broker.service.port, user, password, client_id)
    clients.append(client)
    assert not client.connect(**kw).is_failure, f"{user} refused"
    return client


@pytest.mark.integration
def test_broker_refuses_anonymous_and_wrong_passwords(
    stack_broker: StackBroker, clients: list[Client]
) -> None:
    port = stack_broker.service.port
    for user, password in [(None, None), ("taktline-edge", "wrong"), ("nobody", "x")]:
        client = Client(port, user, password, f"refused-{user}")
        clients.append(client)
        assert client.connect().is_failure, user
    passwd = (stack_broker.auth_dir / "passwd").read_text(encoding="utf-8")
    for password in stack_broker.passwords.values():
        assert password not in passwd  # hashes only


@pytest.mark.integration
def test_acl_lets_each_user_do_its_part_only(
    stack_broker: StackBroker, clients: list[Client]
) -> None:
    server = login(stack_broker, clients, "taktline-server", "taktline-server")
    server.subscribe("taktline/v1/#")
    edge = login(stack_broker, clients, "taktline-edge", "taktline-edge-1")
    counter = "taktline/v1/neustadt/final/fa1/eol/passed"
    assert not edge.publish(counter, b'{"total": 1}', retain=True).is_failure
    assert not edge.publish("taktline/v1/_edge/neustadt-final/status", b"{}").is_failure
    assert not edge.publish("plant/neustadt/paint1/topcoat/produced", b"{}").is_failure
    wait_until(lambda: server.received() == 2, 10, "the edge's messages at the server")
    assert edge.publish("taktline/v1/_milestones/site-30m", b"{}").is_failure
    assert server.publish(counter, b'{"total": 2}').is_failure
    assert not server.publish("taktline/v1/_milestones/site-30m", b"{}").is_failure
    wait_until(lambda: server.received() == 3, 10, "the server's milestone message")
    assert [m.topic for m in server.messages] == [
        counter,
        "taktline/v1/_edge/neustadt-final/status",
        "taktline/v1/_milestones/site-30m",
    ]


def mqtt_source() -> MqttSource:
    """The stack plant's MQTT source (the paint shop)."""
    return next(s for s in load_plant(CONFIG / "plant.yaml").sources if isinstance(s, MqttSource))


@pytest.mark.integration
def test_queue_of_an_absent_edge_holds_more_than_the_default_1000(
    stack_broker: StackBroker, clients: list[Client]
) -> None:
    """An edge's MQTT source has a persistent session; while the edge is away, its devices'
    messages queue at the broker. Mosquitto's default would keep 1000 (+20 in flight)."""
    source = mqtt_source()
    assert source.broker.client_id
    topic = source.topics[0].topic
    edge = login(
        stack_broker, clients, "taktline-edge", source.broker.client_id, session_expiry_s=600
    )
    edge.subscribe(topic)
    edge.close()
    device = login(stack_broker, clients, "taktline-edge", "paint-device")
    device.publish_many([topic] * 2500, retain=False)
    edge.connect(clean_start=False, session_expiry_s=600)
    wait_until(lambda: edge.received() == 2500, 60, "every queued message")


@pytest.mark.integration
def test_server_gets_every_retained_counter_at_connect(
    stack_broker: StackBroker, clients: list[Client]
) -> None:
    """At a (re)connect the server is sent every retained live-bus message at once."""
    edge = login(stack_broker, clients, "taktline-edge", "taktline-edge-1")
    topics = [f"taktline/v1/neustadt/final/line{n}/eol/passed" for n in range(1500)]
    edge.publish_many(topics, retain=True)
    server = login(stack_broker, clients, "taktline-server", "taktline-server")
    server.subscribe("taktline/v1/+/+/+/+/+")
    wait_until(lambda: server.received() == 1500, 60, "every retained counter")


def test_limits_are_above_mosquitto_defaults() -> None:
    settings = dict(
        line.split(maxsplit=1)
        for line in (CONFIG / "mosquitto.conf").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#") and not line.startswith("log_type")
    )
    source = mqtt_source()
    assert int(settings["max_inflight_messages"]) >= source.receive_maximum
    assert int(settings["max_queued_messages"]) >= 100_000
    assert int(settings["max_queued_bytes"]) > 0
    assert settings["persistence"] == "true" and settings["allow_anonymous"] == "false"


@pytest.mark.integration
def test_broker_healthcheck_command(stack_broker: StackBroker, compose: Compose) -> None:
    test = compose.service("mosquitto")["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    here = (
        test[1]
        .replace("/mosquitto/auth/", f"{stack_broker.auth_dir}/")
        .replace("-p 1883", f"-p {stack_broker.service.port}")
    )
    assert here != test[1]
    require_binary("mosquitto_sub", "mosquitto-clients")
    healthy = subprocess.run(["sh", "-c", here], capture_output=True, timeout=30, check=False)
    assert healthy.returncode == 0, healthy.stderr
    (stack_broker.auth_dir / "healthcheck").write_text("not-the-password\n")
    refused = subprocess.run(["sh", "-c", here], capture_output=True, timeout=30, check=False)
    assert refused.returncode != 0
