"""YAML reading: the data PyYAML's safe loader gives, duplicate keys and lines located."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taktline.config import ConfigError
from taktline.config.yaml_source import read_yaml

PLAIN = """\
name: plant
count: 1_000
hex: 0x1F
ratio: 2.5
big: 1e3
not_a_number: .nan
yes_no: [yes, No, off, 'yes']
nothing: ~
empty:
day: 2026-11-26
stamp: 2026-11-26T09:41:00Z
six: 06:00
sexagesimal: 1:30
text: |
  two
  lines
folded: >
  one
  line
nested:
  - {a: 1, b: [x, y]}
  - - deep
    - 2
  - {}
  - []
"1": quoted key
2: int key
"""

UNUSUAL = [
    pytest.param("shift: &s {start: '06:00'}\nother: *s\n", id="anchor-and-alias"),
    pytest.param("base: &b {a: 1}\nmore:\n  <<: *b\n  c: 2\n", id="merge-key"),
    pytest.param("a: !!str 1\nb: !!float 2\nc: !!binary aGk=\n", id="explicit-tags"),
    pytest.param("a: !!set {x, y}\nb: !!omap [{k: 1}]\n", id="collection-tags"),
    pytest.param("=: value key\n", id="value-key"),
]


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "file.yaml"
    file.write_text(text, encoding="utf-8")
    return file


def test_the_data_is_what_pyyaml_loads(tmp_path: Path) -> None:
    document = read_yaml(write(tmp_path, PLAIN))
    expected = yaml.load(PLAIN, Loader=yaml.SafeLoader)
    assert repr(document.data) == repr(expected)  # repr: NaN is not equal to itself
    assert list(document.data) == list(expected)


@pytest.mark.parametrize("text", UNUSUAL)
def test_anchors_tags_and_merge_keys_load_as_pyyaml_loads_them(tmp_path: Path, text: str) -> None:
    assert read_yaml(write(tmp_path, text)).data == yaml.safe_load(text)


def test_the_lines_of_keys_and_items_are_found(tmp_path: Path) -> None:
    document = read_yaml(write(tmp_path, PLAIN))
    assert document.line_of(("text",)) == 14
    assert document.line_of(("nested", 1, 1)) == 23
    assert document.line_of(("nested", 0, "b", 1)) == 21
    assert document.line_of(("nested", 3, "missing", 3)) == 25  # the deepest part there is
    assert document.issue(("nested", 2), "x").line == 24


@pytest.mark.parametrize("prefix", ["", "anchor: &a 1\n"], ids=["events", "nodes"])
def test_duplicate_keys_are_located_at_every_depth(tmp_path: Path, prefix: str) -> None:
    text = prefix + "a: 1\nb:\n  - {c: 1, c: 2}\n  - d: 1\n    d: 2\na: 3\n"
    with pytest.raises(ConfigError) as caught:
        read_yaml(write(tmp_path, text))
    first = len(prefix.splitlines())
    assert [(i.line, i.key_path, i.message) for i in caught.value.issues] == [
        (first + 3, "b[0].c", "duplicate key"),
        (first + 5, "b[1].d", "duplicate key"),
        (first + 6, "a", "duplicate key"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("a: 1\n---\nb: 2\n", 2, "but found another document"),
        ("a: [1,\n", 2, "did not find expected node content"),
        ("a: *missing\n", 1, "found undefined alias"),
        ("a: 1\n? [x, y]\n: pair\n", 2, "found unhashable key"),
        ("a: 1\nb: =\n", 2, "could not determine a constructor for the tag"),
    ],
)
def test_broken_yaml_is_located(tmp_path: Path, text: str, line: int, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_yaml(write(tmp_path, text))
    (issue,) = caught.value.issues
    assert issue.line == line
    assert issue.message.startswith("broken YAML: ")
    assert problem in issue.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_a_file_without_a_mapping_is_an_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="the file must hold a mapping of keys"):
        read_yaml(write(tmp_path, text))
