"""Config loading: plant, edge and server files, with located errors."""

from taktline.config.errors import ConfigError, ConfigIssue
from taktline.config.loader import (
    EdgeConfig,
    ServerConfig,
    detect_kind,
    load_edge_config,
    load_plant,
    load_server_config,
)
from taktline.config.settings import EdgeSettings, InfluxV1, InfluxV2, ServerSettings

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "EdgeConfig",
    "EdgeSettings",
    "InfluxV1",
    "InfluxV2",
    "ServerConfig",
    "ServerSettings",
    "detect_kind",
    "load_edge_config",
    "load_plant",
    "load_server_config",
]
