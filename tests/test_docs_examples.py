"""Every YAML example in the guides loads with the real config loader.

A ```yaml block in a checked page starts with a marker comment naming what it is:

    # taktline: plant [FILE]     a whole plant file; saved as FILE (default plant.yaml)
    # taktline: edge [FILE]      a whole edge file (default edge.yaml); its plant must load too
    # taktline: server [FILE]    a whole server file (default server.yaml); likewise
    # taktline: sources [FILE]   a `sources:` fragment: FILE (default plant.yaml) with its
                                 sources replaced by these must load; it is saved so
    # taktline: other            YAML that is no taktline file (Grafana, compose): only parsed

Each page gets a folder of its own that starts with a copy of examples/plant.yaml as
`plant.yaml`, so a fragment maps onto the example plant's counters unless a block earlier in the
page saved another plant there (a tutorial builds its plant file step by step this way). Blocks
are checked in page order; every file a block names is relative to that folder. A ```yaml block
without a marker is an error.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from taktline.config import ConfigError, load_edge_config, load_plant, load_server_config
from tests.conftest import EXAMPLE_PLANT, REPO

PAGES = (
    "docs/getting-started.md",
    "docs/opcua-mapping.md",
    "docs/mqtt-mapping.md",
    "docs/security.md",
)
MARKER = re.compile(r"^# taktline: (plant|edge|server|sources|other)(?: (\S+))?\s*$")
DEFAULT_FILE = {"plant": "plant.yaml", "edge": "edge.yaml", "server": "server.yaml"}


@dataclass(frozen=True, slots=True)
class Block:
    """One ```yaml block: where it starts in its page, its marker and its text."""

    line: int
    kind: str
    file: str | None
    text: str


def yaml_blocks(markdown: str) -> list[Block]:
    """The ```yaml blocks of a page; raises ValueError naming a block without a marker."""
    blocks = []
    for match in re.finditer(r"^```yaml\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL):
        line = markdown.count("\n", 0, match.start()) + 1
        text = match[1]
        marker = MARKER.match(text.split("\n", 1)[0])
        if marker is None:
            raise ValueError(f"line {line}: a yaml block starts with '# taktline: KIND [FILE]'")
        blocks.append(Block(line, marker[1], marker[2], text))
    return blocks


def check_block(block: Block, folder: Path) -> None:
    """Load the block as what its marker says; raises ConfigError or yaml.YAMLError."""
    if block.kind == "other":
        yaml.safe_load(block.text)
        return
    if block.kind == "sources":
        base = folder / (block.file or "plant.yaml")
        plant = yaml.safe_load(base.read_text(encoding="utf-8"))
        plant["sources"] = yaml.safe_load(block.text)["sources"]
        base.write_text(yaml.safe_dump(plant, sort_keys=False), encoding="utf-8")
        load_plant(base)
        return
    target = folder / (block.file or DEFAULT_FILE[block.kind])
    target.write_text(block.text, encoding="utf-8")
    {"plant": load_plant, "edge": load_edge_config, "server": load_server_config}[block.kind](
        target
    )


def check_page(markdown: str, folder: Path) -> list[str]:
    """Every problem of every block of a page, as `line N (kind): message`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE_PLANT, folder / "plant.yaml")
    problems = []
    for block in yaml_blocks(markdown):
        try:
            check_block(block, folder)
        except ConfigError as exc:
            problems += [f"line {block.line} ({block.kind}): {issue}" for issue in exc.issues]
        except yaml.YAMLError as exc:
            problems.append(f"line {block.line} ({block.kind}): {exc}")
    return problems


@pytest.mark.parametrize("page", PAGES)
def test_every_yaml_example_loads(page: str, tmp_path: Path) -> None:
    markdown = (REPO / page).read_text(encoding="utf-8")
    blocks = yaml_blocks(markdown)
    assert any(block.kind != "other" for block in blocks), f"{page} has no checked example"
    assert check_page(markdown, tmp_path) == []


def test_a_wrong_key_or_an_unknown_counter_is_reported(tmp_path: Path) -> None:
    page = """
```yaml
# taktline: sources
sources:
  - type: opcua
    id: plc
    endpoint: opc.tcp://10.0.0.1:4840
    nodes: [{node: "ns=3;s=X", counter: neustadt/final/fa1/eol/nothing}]
```

```yaml
# taktline: edge
plant: plant.yaml
edge_id: e1
state_dri: state
```
"""
    problems = check_page(page, tmp_path)
    assert len(problems) == 2, problems
    assert problems[0].startswith("line 2 (sources):") and "nothing" in problems[0]
    assert problems[1].startswith("line 11 (edge):") and "did you mean 'state_dir'" in problems[1]


def test_a_yaml_block_without_a_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="line 3: a yaml block starts with"):
        yaml_blocks("text\n\n```yaml\nplant: plant.yaml\n```\n")
