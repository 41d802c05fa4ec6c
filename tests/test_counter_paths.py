"""Counter paths: parsed paths share their level names (thousands of counters, few names)."""

from __future__ import annotations

import pytest

from taktline.model import CounterPath


def test_parsed_counter_paths_share_their_level_names() -> None:
    one = CounterPath.parse("neustadt/final/fa1/eol/passed")
    other = CounterPath.parse("/neustadt/final/fa2/eol/passed/")
    assert (one.site, one.counter) == ("neustadt", "passed")
    assert one.site is other.site and one.counter is other.counter
    assert str(other) == "neustadt/final/fa2/eol/passed"
    with pytest.raises(ValueError, match="is not a counter path"):
        CounterPath.parse("neustadt/final/fa1/eol")
