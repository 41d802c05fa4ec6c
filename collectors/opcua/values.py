"""OPC UA data changes (`wire.Change`) to Readings: quality, the count (or the edge), both UTC
timestamps.

A Reading's `value` is set only where it could be a count: GOOD values, and Uncertain values
of counter registers (the edge counts only GOOD). A BAD reading never carries a value.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Literal

from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from collectors.opcua.nodes import MappedNode
from collectors.opcua.wire import Change
from taktline.model.sources import OpcUaSource
from taktline.records import Quality, Reading

log = logging.getLogger(__name__)

Stamp = Literal["source", "server"]
"""Which OPC UA timestamp stamps the point (the source's `timestamp`); both travel."""

_CODE = 0xFFFF0000
"""The code bits of a StatusCode (the rest are info bits: limits, overflow)."""

_OVERFLOW = 0x0480
"""InfoType DataValue with the Overflow bit: the server's item queue dropped values."""

_SEVERITY = 0xC0000000
"""The severity bits: Good, Uncertain, Bad (and the reserved fourth: taken as Bad)."""
_GOOD, _UNCERTAIN = 0x00000000, 0x40000000

_V = ua.VariantType
INTEGER_TYPES = frozenset(
    kind.value
    for kind in (_V.SByte, _V.Byte, _V.Int16, _V.UInt16, _V.Int32, _V.UInt32, _V.Int64, _V.UInt64)
)
FLOAT_TYPES = frozenset({_V.Float.value, _V.Double.value})


def good_codes(names: Iterable[str]) -> frozenset[int]:
    """The codes of status names taken as good; raises ValueError naming an unknown one."""
    codes: set[int] = set()
    for name in names:
        code = getattr(StatusCodes, name, None) if not name.startswith("_") else None
        if not isinstance(code, int):
            raise ValueError(f"extra_good_codes: {name!r} is not an OPC UA status code name")
        codes.add(code & _CODE)
    return frozenset(codes)


def quality_of(status: int, good: frozenset[int] = frozenset()) -> Quality:
    """Good or a code in `good` -> GOOD, Uncertain -> UNCERTAIN, Bad (and reserved) -> BAD."""
    if status & _SEVERITY == _GOOD or status & _CODE in good:
        return Quality.GOOD
    if status & _SEVERITY == _UNCERTAIN:
        return Quality.UNCERTAIN
    return Quality.BAD


def _scalar(kind: int, raw: object, index: int | None) -> int | float | bool | str:
    """The value's number (the `index` element of an array), or why it has none."""
    if kind == _V.Null.value or raw is None:
        return "holds no value"
    if isinstance(raw, list | bytes | bytearray) and kind != _V.ByteString.value:
        if index is None:
            return f"holds an array of {_kind(kind)}: give `index`"
        if index >= len(raw):
            return f"index {index} is out of range: the array has {len(raw)} elements"
        raw = raw[index]
        if isinstance(raw, list):
            return f"holds a multi-dimensional array of {_kind(kind)}"
    elif index is not None:
        return f"holds a {_kind(kind)}, not an array: remove `index`"
    if kind == _V.Boolean.value and isinstance(raw, bool):
        return raw
    if kind in INTEGER_TYPES and isinstance(raw, int):
        return raw
    if kind in FLOAT_TYPES and isinstance(raw, float):
        return raw if math.isfinite(raw) else f"holds a non-finite number: {raw}"
    return f"holds a {_kind(kind)}, not a number"


def _kind(kind: int) -> str:
    try:
        return _V(kind).name
    except ValueError:
        return f"type {kind}"


class NodeValue:
    """Turns one node's data values into Readings; keeps the node's state across sessions.

    - Integers of every width (SByte..UInt64) are the count, exactly.
    - Float/Double are rounded to the nearest integer (halves to even); the first one is logged
      with its original value. NaN and infinities are rejected.
    - Booleans need `count_edges`: each rising (or falling) edge is one Reading of value 1;
      the first value seen only sets the state, other changes give no Reading. The state is
      kept across sessions, so an edge during a reconnect is counted once the new value comes.
    - `index` picks an array element.
    A Good value that cannot be a count is rejected: a BAD reading without value, `error` says
    why. A node's trouble (rejection or a non-Good status) is logged when it starts or changes
    and once when it ends.
    """

    __slots__ = (
        "_address",
        "_bit",
        "_plain",
        "_rounding_logged",
        "_trouble",
        "error",
        "good",
        "node",
        "source_id",
        "stamp",
    )

    def __init__(
        self,
        source_id: str,
        node: MappedNode,
        good: frozenset[int] = frozenset(),
        stamp: Stamp = "source",
    ) -> None:
        self.source_id = source_id
        self.node = node
        self.good = good
        self.stamp: Stamp = stamp
        self.error: str | None = None
        """Why the latest value was rejected; None when it was not."""
        self._bit: bool | None = None
        self._trouble: str | None = None
        self._rounding_logged = False
        self._address = node.address
        self._plain = node.index is None and node.count_edges is None

    def convert(self, change: Change, received_at: dt.datetime) -> Reading | None:
        """The Reading for one data change; None for a Boolean change that is no edge."""
        if (
            self._plain
            and change.status == 0
            and change.kind in INTEGER_TYPES
            and type(change.value) is int
            and self._trouble is None
        ):  # the common case, as the general path below decides it: a plain Good integer
            self.error = None
            return Reading(
                self.source_id,
                self._address,
                change.value,
                change.source_ts,
                change.server_ts,
                received_at,
                Quality.GOOD,
                None,
                self.stamp,
            )
        return self._convert(change, received_at)

    def _convert(self, change: Change, received_at: dt.datetime) -> Reading | None:
        status = change.status
        quality = quality_of(status, self.good)
        self._check_overflow(status)
        self.error = None
        if quality is Quality.BAD:
            self._note(f"status {_name(status)}")
            return self._reading(change, None, quality, received_at)
        scalar = _scalar(change.kind, change.value, self.node.index)
        number: int | float | None = None
        bit: bool | None = None
        problem: str | None = None
        if isinstance(scalar, str):
            problem = scalar
        elif isinstance(scalar, bool):
            bit = scalar
            if self.node.count_edges is None:
                problem = "holds a Boolean: set `count_edges` to count its edges"
        elif self.node.count_edges is not None:
            problem = f"holds a {_kind(change.kind)}: count_edges needs a Boolean"
        else:
            number = scalar
        if quality is Quality.UNCERTAIN:  # a register keeps its value; the edge ignores it
            self._note(f"status {_name(status)}")
            count = self._integer(number) if number is not None else None
            return self._reading(change, count, quality, received_at)
        if problem is not None:
            self.error = problem
            self._note(problem)
            return self._reading(change, None, Quality.BAD, received_at)
        self._note(None)
        if bit is not None:
            return self._reading(change, 1, quality, received_at) if self._edge(bit) else None
        assert number is not None
        return self._reading(change, self._integer(number), quality, received_at)

    def _reading(
        self, change: Change, count: int | None, quality: Quality, received_at: dt.datetime
    ) -> Reading:
        return Reading(
            source_id=self.source_id,
            address=self.node.address,
            value=None if quality is Quality.BAD else count,
            source_ts=change.source_ts,
            server_ts=change.server_ts,
            received_at=received_at,
            quality=quality,
            stamp=self.stamp,
        )

    def _edge(self, bit: bool) -> bool:
        previous, self._bit = self._bit, bit
        if previous is None or previous == bit:
            return False
        return bit is (self.node.count_edges == "rising")

    def _integer(self, number: int | float) -> int:
        if isinstance(number, int):
            return number
        count = round(number)
        if not self._rounding_logged:
            self._rounding_logged = True
            log.warning(
                "source %s: node %s holds floating-point values (%r); counts are rounded (%d)",
                self.source_id,
                self.node.address,
                number,
                count,
            )
        return count

    def _check_overflow(self, status: int) -> None:
        if status & _OVERFLOW == _OVERFLOW:
            log.warning(
                "source %s: node %s: the server's queue overflowed, changes were lost%s",
                self.source_id,
                self.node.address,
                " (edges not counted)" if self.node.count_edges else "",
            )

    def _note(self, trouble: str | None) -> None:
        """Log a node's trouble when it starts or changes, and once when it ends."""
        if trouble == self._trouble:
            return
        if trouble is not None:
            log.warning("source %s: node %s %s", self.source_id, self.node.address, trouble)
        else:
            log.info("source %s: node %s is good again", self.source_id, self.node.address)
        self._trouble = trouble


def _name(status: int) -> str:
    return ua.StatusCode(ua.UInt32(status)).name


def node_values(source: OpcUaSource, nodes: Sequence[MappedNode]) -> dict[int, NodeValue]:
    """A converter per node, by client handle, with the source's `extra_good_codes` and
    `timestamp` choice; raises ValueError naming an unknown code. Make them once per collector:
    they keep each node's edge state across sessions."""
    good = good_codes(source.extra_good_codes)
    return {node.handle: NodeValue(source.id, node, good, source.timestamp) for node in nodes}


def missing_reading(source_id: str, address: str, received_at: dt.datetime) -> Reading:
    """What a node that cannot be monitored (unknown, access denied) reports: BAD, no value."""
    return Reading(
        source_id=source_id,
        address=address,
        value=None,
        source_ts=None,
        server_ts=None,
        received_at=received_at,
        quality=Quality.BAD,
    )
