"""Each input's sample.yaml is a valid `sources:` fragment its collector accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from collectors.registry import create_collector
from taktline.model.sources import Source

COLLECTORS = Path(__file__).resolve().parents[2] / "collectors"


@pytest.mark.parametrize("protocol", ["opcua", "mqtt"])
def test_sample_config_validates_and_builds_a_collector(protocol: str) -> None:
    fragment = yaml.safe_load((COLLECTORS / protocol / "sample.yaml").read_text(encoding="utf-8"))
    sources = TypeAdapter(list[Source]).validate_python(fragment["sources"])
    assert [source.type for source in sources] == [protocol]
    collector = create_collector(sources[0])
    assert collector.source_id == sources[0].id


@pytest.mark.parametrize("protocol", ["opcua", "mqtt"])
def test_readme_documents_every_option_of_the_sample(protocol: str) -> None:
    readme = (COLLECTORS / protocol / "README.md").read_text(encoding="utf-8")
    fragment = yaml.safe_load((COLLECTORS / protocol / "sample.yaml").read_text(encoding="utf-8"))
    keys: set[str] = set()
    for key, value in fragment["sources"][0].items():
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            keys.add(f"{key}.NAME.*")  # a named map, e.g. groups
        elif isinstance(value, dict) and not {"env", "file"} & set(value):  # a secret is a leaf
            keys |= {f"{key}.{sub}" for sub in value}
        elif isinstance(value, list) and isinstance(value[0], dict):
            keys |= {f"{key}[].{sub}" for item in value for sub in item}
        else:
            keys.add(key)
    assert {key for key in keys if f"`{key}`" not in readme} == set()
