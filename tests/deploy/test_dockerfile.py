"""deploy/Dockerfile and .dockerignore, read the way the builder reads them.

No Docker engine runs here and hadolint is not installed, so the Dockerfile is parsed: two
stages (a wheel is built in the first and installed in the second), a non-root user, no
secrets, the entry point and command the CLI accepts, and a health check that is run for real
against an HTTP server. The .dockerignore patterns are matched the way Docker matches them, to
show what reaches the builder.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taktline.cli import _parser
from taktline.config import load_edge_config, load_server_config
from taktline.localbroker import free_port

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
STATE_DIR = "/var/lib/taktline"
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|PRIVATE|CREDENTIAL|API_?KEY", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of its line."""

    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (fails the test for shell form)."""
        start = self.arguments.index("[")
        value = json.loads(self.arguments[start:])
        assert isinstance(value, list), self
        return [str(item) for item in value]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each stage, each starting with its FROM."""
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


# --- a real HTTP server for the health checks ------------------------------------------------


class HealthServer:
    """A local HTTP server whose /healthz answers `status` (set by the test)."""

    def __init__(self) -> None:
        self.status = 200
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = owner.status if self.path == "/healthz" else 404
                body = json.dumps({"healthy": code == 200}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    with HealthServer() as server:
        yield server


def run_healthcheck(command: list[str], port: int) -> int:
    """Run an exec-form `python -c ... http://127.0.0.1:PORT/healthz` health check with this
    interpreter, aimed at `port` instead of the container's; returns its exit status."""
    assert command[0] == "python", command
    url = command[-1]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/healthz", url), url
    aimed = re.sub(r":\d+/", f":{port}/", url)
    done = subprocess.run(
        [sys.executable, *command[1:-1], aimed], capture_output=True, timeout=30, check=False
    )
    return done.returncode


def check_healthcheck(command: list[str], server: HealthServer) -> None:
    """Healthy on 200; unhealthy on 503 and when nothing listens."""
    server.status = 200
    assert run_healthcheck(command, server.port) == 0
    server.status = 503
    assert run_healthcheck(command, server.port) != 0
    assert run_healthcheck(command, free_port()) != 0


# --- the stages -------------------------------------------------------------------------------


def test_two_stages_on_python_3_11_slim(instructions: list[Instruction]) -> None:
    found = stages(instructions)
    assert len(found) == 2
    assert found[0][0].arguments.endswith(" AS build")
    args = {
        i.arguments.split("=", 1)[0]: i.arguments.split("=", 1)[1]
        for i in instructions[: instructions.index(found[0][0])]
        if i.keyword == "ARG"
    }
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    for stage in found:
        assert stage[0].arguments.split()[0] == "${PYTHON_IMAGE}"


def test_the_first_stage_builds_a_wheel_the_second_installs_it(
    instructions: list[Instruction], final_stage: list[Instruction]
) -> None:
    build = stages(instructions)[0]
    assert any(
        i.keyword == "RUN" and "pip wheel --wheel-dir /wheels ." in i.arguments for i in build
    )
    install = [i for i in final_stage if i.keyword == "RUN" and "--mount=" in i.arguments]
    assert len(install) == 1
    run = install[0].arguments
    assert "from=build" in run and "source=/wheels" in run
    assert "--no-index" in run and "--find-links=/wheels taktline" in run
    assert not [i for i in final_stage if i.keyword in ("COPY", "ADD")], "no sources in the image"


def test_sources_copied_are_what_the_wheel_is_built_from(instructions: list[Instruction]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = set(project["tool"]["setuptools"]["packages"]["find"]["include"])
    copied = {
        source.rstrip("/")
        for i in stages(instructions)[0]
        if i.keyword == "COPY"
        for source in i.arguments.split()[:-1]
    }
    assert copied == {"pyproject.toml", project["project"]["readme"]} | {
        p.rstrip("*") for p in packages
    }
    for source in copied:
        assert (REPO / source).exists(), source


def test_runs_as_an_unprivileged_user(final_stage: list[Instruction]) -> None:
    users = [i.arguments for i in final_stage if i.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    assert users[-1] not in ("root", "0", "0:0")
    creation = " ".join(i.arguments for i in final_stage if i.keyword == "RUN")
    assert f'useradd --system --uid "${{TAKTLINE_UID}}" --gid {users[-1]}' in creation
    uid_arg = only(final_stage, "ARG").arguments
    assert int(uid_arg.split("=")[1]) >= 1000


def test_no_secrets_in_the_image(instructions: list[Instruction]) -> None:
    for instruction in instructions:
        if instruction.keyword in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)=", instruction.arguments)
            assert not [n for n in names if SECRET_WORDS.search(n)], instruction
        if instruction.keyword in ("COPY", "ADD"):
            assert ".env" not in instruction.arguments, instruction
    assert ignored(".env") and ignored("deploy/.env")


def test_entrypoint_and_command_are_the_cli(final_stage: list[Instruction]) -> None:
    entrypoint = only(final_stage, "ENTRYPOINT").exec_form()
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert entrypoint == ["taktline"]
    assert "taktline" in project["project"]["scripts"]
    command = only(final_stage, "CMD").exec_form()
    assert command == ["server", "--config", "/etc/taktline/server.yaml"]
    args = _parser().parse_args(command)
    assert args.config == Path("/etc/taktline/server.yaml")


def test_state_volume_is_where_the_configs_keep_state(final_stage: list[Instruction]) -> None:
    assert only(final_stage, "VOLUME").exec_form() == [STATE_DIR]
    assert only(final_stage, "WORKDIR").arguments == STATE_DIR
    config = REPO / "deploy" / "config"
    for edge in ("edge-1.yaml", "edge-2.yaml"):
        assert str(load_edge_config(config / edge).settings.state_dir) == STATE_DIR
    assert str(load_server_config(config / "server.yaml").settings.state_dir) == STATE_DIR


def test_stops_with_sigint(final_stage: list[Instruction]) -> None:
    assert only(final_stage, "STOPSIGNAL").arguments == "SIGINT"


def test_healthcheck_asks_healthz_with_python(
    final_stage: list[Instruction], health_server: HealthServer
) -> None:
    healthcheck = only(final_stage, "HEALTHCHECK")
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", healthcheck.arguments))
    assert set(options) == {"interval", "timeout", "start-period", "retries"}
    assert " CMD [" in healthcheck.arguments
    command = healthcheck.exec_form()
    assert command[-1] == "http://127.0.0.1:8080/healthz"  # the server's port (EXPOSE, CMD)
    assert "8080" in only(final_stage, "EXPOSE").arguments.split()
    check_healthcheck(command, health_server)


# --- .dockerignore ----------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it (Go filepath.Match plus `**`)."""
    pattern = pattern.strip("/")
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] in "*?":
            out.append("[^/]*" if pattern[index] == "*" else "[^/]")
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out.append(pattern[index : end + 1])
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out))


def _rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern(line.removeprefix("!"))))
    return rules


def ignored(path: str) -> bool:
    """True when Docker leaves `path` (relative to the context) out of the build context: the
    last pattern that matches it or one of its parent folders decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    decision = False
    for negated, pattern in _rules():
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            decision = not negated
    return decision


def test_dockerignore_lets_in_only_what_the_wheel_needs(instructions: list[Instruction]) -> None:
    for name in ("pyproject.toml", "README.md", "taktline/cli.py", "server/static/line.js"):
        assert not ignored(name), name
    for package in ("taktline", "collectors", "edge", "server", "dashboards"):
        sources = [p for p in (REPO / package).rglob("*") if p.is_file()]
        kept = [p for p in sources if not ignored(str(p.relative_to(REPO)))]
        assert [p for p in kept if "__pycache__" in p.parts] == []
        assert {p.suffix for p in kept} >= {".py"}, package
    for name in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "test-artifacts/screen.png",
        "bench/results/latest.json",
        ".mypy_cache/3.11/x.json",
        ".hypothesis/examples/x",
        "deploy/.env",
        "deploy/docker-compose.yml",
        "state/outbox.sqlite",
        "edge/__pycache__/agent.cpython-311.pyc",
        "taktline/outbox.sqlite-wal",
        "dashboards/generated/plant-overview.json",
        "docs/configuration.md",
    ):
        assert ignored(name), name


def test_dockerignore_matcher_reads_patterns_like_docker() -> None:
    assert _pattern("**/__pycache__").fullmatch("a/b/__pycache__")
    assert _pattern("**/__pycache__").fullmatch("__pycache__")
    assert _pattern("*").fullmatch(".venv")
    assert not _pattern("*").fullmatch("a/b")
    assert _pattern("**/*.py[cod]").fullmatch("x/y.pyc")
