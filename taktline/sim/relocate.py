"""Move a plant's sources onto free local ports, so the simulator can serve it anywhere."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from taktline.localbroker import free_port
from taktline.model.plant import Plant
from taktline.model.sources import MqttSource, OpcUaSource


def relocate(plant: Plant, *, mqtt_port: int, host: str = "127.0.0.1") -> Plant:
    """A copy of the plant whose OPC UA endpoints each get their own free port on `host` (an IPv4
    address; the path stays) and whose MQTT sources point at the broker `host:mqtt_port`."""
    taken: set[int] = set()
    sources: list[OpcUaSource | MqttSource] = []
    for source in plant.sources:
        if isinstance(source, OpcUaSource):
            port = _fresh_port(host, taken)
            endpoint = urlunsplit(urlsplit(source.endpoint)._replace(netloc=f"{host}:{port}"))
            sources.append(source.model_copy(update={"endpoint": endpoint}))
        else:
            broker = source.broker.model_copy(update={"host": host, "port": mqtt_port})
            sources.append(source.model_copy(update={"broker": broker}))
    return plant.model_copy(update={"sources": sources})


def _fresh_port(host: str, taken: set[int]) -> int:
    """A free port not handed out before in this relocation."""
    while (port := free_port(host)) in taken:
        pass
    taken.add(port)
    return port
