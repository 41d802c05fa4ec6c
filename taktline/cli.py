"""The `taktline` command. Each subcommand imports its part lazily, so `check-config` stays fast."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taktline.config import (
    ConfigError,
    detect_kind,
    load_edge_config,
    load_plant,
    load_server_config,
)
from taktline.summary import summarize

NOISY_LIBRARIES = ("asyncua", "amqtt", "transitions", "httpx")
"""Libraries that log every session and packet at INFO; shown with --verbose only."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not args.verbose:
        for chatty in NOISY_LIBRARIES:
            logging.getLogger(chatty).setLevel(logging.WARNING)
    if sys.__stderr__ is not None:  # `kill -USR1 <pid>`: every thread's stack, to find a hang
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"error: {len(exc.issues)} problem(s) in the configuration", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taktline", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="simulator + edge + server on embedded defaults")
    demo.add_argument("--duration", type=float, default=None, help="seconds (default: until ^C)")
    demo.add_argument("--port", type=int, default=8080, help="server HTTP port (default 8080)")
    demo.add_argument("--state-dir", type=Path, default=None, help="state folder (default: temp)")
    demo.add_argument("--influxdb", default=None, help="also write to InfluxDB 1.x at this URL")
    demo.set_defaults(handler=_demo)

    edge = commands.add_parser("edge", help="run an edge agent")
    edge.add_argument("--config", type=Path, required=True, help="edge YAML file")
    edge.set_defaults(handler=_edge)

    server = commands.add_parser("server", help="run the central server")
    server.add_argument("--config", type=Path, required=True, help="server YAML file")
    server.set_defaults(handler=_server)

    sim = commands.add_parser("sim", help="simulate the plant's OPC UA and MQTT sources")
    sim.add_argument("--plant", type=Path, required=True, help="plant YAML file")
    sim.add_argument("--rate", type=float, default=None, help="units per minute per line")
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: until ^C)")
    sim.add_argument("--seed", type=int, default=None, help="random seed of the start values")
    sim.add_argument(
        "--reset-every", type=float, default=None, help="mean seconds between PLC resets"
    )
    sim.set_defaults(handler=_sim)

    check = commands.add_parser("check-config", help="validate a plant, edge or server file")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_check_config)

    dashboards = commands.add_parser("dashboards", help="Grafana dashboards as code")
    dashboard_commands = dashboards.add_subparsers(required=True, metavar="ACTION")
    build = dashboard_commands.add_parser(
        "build", help="write the plant's Grafana dashboards, one JSON file each"
    )
    build.add_argument(
        "--plant",
        type=Path,
        default=Path("examples/plant.yaml"),
        help="plant YAML file (default examples/plant.yaml)",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=Path("dashboards/generated"),
        help="output folder (default dashboards/generated)",
    )
    build.set_defaults(handler=_dashboards_build)

    grafana = commands.add_parser("grafana", help="Grafana through its HTTP API")
    grafana_commands = grafana.add_subparsers(required=True, metavar="ACTION")
    push = grafana_commands.add_parser(
        "push",
        help="upload the InfluxDB datasource and the dashboards (a second push changes nothing)",
        description="Create or update, in the server file's Grafana (`grafana`: url, token,"
        " folder), the InfluxDB datasource (from `influxdb`), the folder and every dashboard"
        " JSON. Only what differs is written. Exit 0 when all went through, 1 when an item"
        " failed, 2 on a configuration error.",
    )
    push.add_argument("--config", type=Path, required=True, help="server YAML file")
    push.add_argument(
        "--dashboards",
        type=Path,
        default=Path("dashboards/generated"),
        help="folder of dashboard JSON files, all pushed (default dashboards/generated)",
    )
    push.add_argument(
        "--update-secrets",
        action="store_true",
        help="send the datasource's password/token even when nothing else changed (Grafana"
        " never shows secrets, so a rotated one is not noticed otherwise)",
    )
    push.set_defaults(handler=_grafana_push)

    docs = commands.add_parser("docs", help="generated documentation")
    docs_commands = docs.add_subparsers(required=True, metavar="ACTION")
    reference = docs_commands.add_parser(
        "reference", help="write the plant, edge and server file reference (Markdown)"
    )
    reference.add_argument(
        "--out",
        type=Path,
        default=Path("docs/plant-reference.md"),
        help="output file (default docs/plant-reference.md)",
    )
    reference.set_defaults(handler=_docs_reference)

    schema = commands.add_parser("schema", help="print the JSON Schema of a config file kind")
    schema.add_argument("kind", choices=["plant", "edge", "server"])
    schema.set_defaults(handler=_schema)
    return parser


def _run(coroutine: Coroutine[Any, Any, None]) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coroutine)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from taktline.demo import run_demo

    return _run(
        run_demo(
            duration=args.duration,
            port=args.port,
            state_dir=args.state_dir,
            influxdb=args.influxdb,
        )
    )


def _edge(args: argparse.Namespace) -> int:
    from edge.agent import run_edge

    return _run(run_edge(load_edge_config(args.config)))


def _server(args: argparse.Namespace) -> int:
    from server.app import ServerStartError, run_server

    try:
        return _run(run_server(load_server_config(args.config)))
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _sim(args: argparse.Namespace) -> int:
    from taktline.sim.runner import run_simulator

    plant = load_plant(args.plant)
    return _run(
        run_simulator(
            plant,
            rate=args.rate,
            duration=args.duration,
            seed=args.seed,
            reset_every_s=args.reset_every,
        )
    )


def _check_config(args: argparse.Namespace) -> int:
    file: Path = args.file
    kind = detect_kind(file)
    if kind == "plant":
        plant = load_plant(file)
    elif kind == "edge":
        plant = load_edge_config(file).plant
    else:
        plant = load_server_config(file).plant
    print(f"{file}: OK ({kind} file)")
    print(summarize(plant))
    return 0


def _dashboards_build(args: argparse.Namespace) -> int:
    from dashboards.build import write_dashboards

    plant = load_plant(args.plant)
    for file in write_dashboards(plant, args.out):
        print(f"wrote {file}")
    return 0


def _grafana_push(args: argparse.Namespace) -> int:
    from server.grafana.push import PushConfigError, push

    settings = load_server_config(args.config).settings
    try:
        report = asyncio.run(push(settings, args.dashboards, update_secrets=args.update_secrets))
    except PushConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


def _docs_reference(args: argparse.Namespace) -> int:
    from taktline.docs_reference import write_reference

    print(f"wrote {write_reference(args.out)}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from taktline.config import EdgeSettings, ServerSettings
    from taktline.model import Plant

    models: dict[str, type[BaseModel]] = {
        "plant": Plant,
        "edge": EdgeSettings,
        "server": ServerSettings,
    }
    model = models[args.kind]
    print(json.dumps(model.model_json_schema(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
