"""OPC UA data values to Readings: quality, the count (or the edge), both UTC timestamps.

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
from taktline.model.sources import OpcUaSource
from taktline.records import Quality, Reading

log = logging.getLogger(__name__)

Stamp = Literal["source", "server"]
"""Which OPC UA timestamp stamps the point (the source's `timestamp`); both travel."""

_NO_TIME = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
"""OPC UA DateTime 0: 'no timestamp'."""

_CODE = 0xFFFF0000
"""The code bits of a StatusCode (the rest are info bits: limits, overflow)."""

_OVERFLOW = 0x0480
"""InfoType DataValue with the Overflow bit: the server's item queue dropped values."""

INTEGER_TYPES = frozenset(
    {
        ua.VariantType.SByte,
        ua.VariantType.Byte,
        ua.VariantType.Int16,
        ua.VariantType.UInt16,
        ua.VariantType.Int32,
        ua.VariantType.UInt32,
        ua.VariantType.Int64,
        ua.VariantType.UInt64,
    }
)
FLOAT_TYPES = frozenset({ua.VariantType.Float, ua.VariantType.Double})


def good_codes(names: Iterable[str]) -> frozenset[int]:
    """The codes of status names taken as good; raises ValueError naming an unknown one."""
    codes: set[int] = set()
    for name in names:
        code = getattr(StatusCodes, name, None) if not name.startswith("_") else None
        if not isinstance(code, int):
            raise ValueError(f"extra_good_codes: {name!r} is not an OPC UA status code name")
        codes.add(code & _CODE)
    return frozenset(codes)


def quality_of(status: ua.StatusCode | None, good: frozenset[int] = frozenset()) -> Quality:
    """Good or a code in `good` -> GOOD, Uncertain -> UNCERTAIN, Bad (and reserved) -> BAD."""
    if status is None or status.is_good() or status.value & _CODE in good:
        return Quality.GOOD
    if status.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def utc(ts: dt.datetime | None) -> dt.datetime | None:
    """A timezone-aware UTC timestamp; None for a missing or zero OPC UA DateTime."""
    if ts is None:
        return None
    if ts.tzinfo is not dt.UTC:  # asyncua's are UTC already
        ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    return None if ts <= _NO_TIME else ts


def _scalar(variant: ua.Variant | None, index: int | None) -> int | float | bool | str:
    """The variant's number (the `index` element of an array), or why it has none."""
    if variant is None or variant.VariantType is ua.VariantType.Null:
        return "holds no value"
    kind, raw = variant.VariantType, variant.Value
    if isinstance(raw, list | bytes | bytearray) and kind is not ua.VariantType.ByteString:
        if index is None:
            return f"holds an array of {kind.name}: give `index`"
        if index >= len(raw):
            return f"index {index} is out of range: the array has {len(raw)} elements"
        raw = raw[index]
        if isinstance(raw, list):
            return f"holds a multi-dimensional array of {kind.name}"
    elif index is not None:
        return f"holds a {kind.name}, not an array: remove `index`"
    if kind is ua.VariantType.Boolean and isinstance(raw, bool):
        return raw
    if kind in INTEGER_TYPES and isinstance(raw, int):
        return raw
    if kind in FLOAT_TYPES and isinstance(raw, float):
        return raw if math.isfinite(raw) else f"holds a non-finite number: {raw}"
    return f"holds a {kind.name}, not a number"


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

    def convert(self, value: ua.DataValue, received_at: dt.datetime) -> Reading | None:
        """The Reading for one data change; None for a Boolean change that is no edge."""
        status = value.StatusCode
        variant = value.Value
        if (
            self._plain
            and (status is None or status.value == 0)
            and variant is not None
            and type(variant.Value) is int
            and variant.VariantType in INTEGER_TYPES
            and self._trouble is None
        ):  # the common case, as the general path below decides it: a plain Good integer
            self.error = None
            return Reading(
                self.source_id,
                self._address,
                variant.Value,
                utc(value.SourceTimestamp),
                utc(value.ServerTimestamp),
                received_at,
                Quality.GOOD,
                None,
                self.stamp,
            )
        return self._convert(value, received_at)

    def _convert(self, value: ua.DataValue, received_at: dt.datetime) -> Reading | None:
        status = value.StatusCode
        quality = quality_of(status, self.good)
        self._check_overflow(status)
        self.error = None
        if quality is Quality.BAD:
            self._note(f"status {_name(status)}")
            return self._reading(value, None, quality, received_at)
        scalar = _scalar(value.Value, self.node.index)
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
            kind = value.Value.VariantType.name if value.Value is not None else "no value"
            problem = f"holds a {kind}: count_edges needs a Boolean"
        else:
            number = scalar
        if quality is Quality.UNCERTAIN:  # a register keeps its value; the edge ignores it
            self._note(f"status {_name(status)}")
            count = self._integer(number) if number is not None else None
            return self._reading(value, count, quality, received_at)
        if problem is not None:
            self.error = problem
            self._note(problem)
            return self._reading(value, None, Quality.BAD, received_at)
        self._note(None)
        if bit is not None:
            return self._reading(value, 1, quality, received_at) if self._edge(bit) else None
        assert number is not None
        return self._reading(value, self._integer(number), quality, received_at)

    def _reading(
        self, value: ua.DataValue, count: int | None, quality: Quality, received_at: dt.datetime
    ) -> Reading:
        return Reading(
            source_id=self.source_id,
            address=self.node.address,
            value=None if quality is Quality.BAD else count,
            source_ts=utc(value.SourceTimestamp),
            server_ts=utc(value.ServerTimestamp),
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

    def _check_overflow(self, status: ua.StatusCode | None) -> None:
        if status is not None and status.value & _OVERFLOW == _OVERFLOW:
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


def _name(status: ua.StatusCode | None) -> str:
    return status.name if status is not None else "Good"


def node_values(source: OpcUaSource, nodes: Sequence[MappedNode]) -> dict[int, NodeValue]:
    """A converter per node, by client handle, with the source's `extra_good_codes` and
    `timestamp` choice; raises ValueError naming an unknown code. Make them once per collector:
    they keep each node's edge state across sessions."""
    good = good_codes(source.extra_good_codes)
    return {node.handle: NodeValue(source.id, node, good, source.timestamp) for node in nodes}


def to_reading(
    source_id: str,
    address: str,
    value: ua.DataValue,
    received_at: dt.datetime,
    stamp: Stamp = "source",
) -> tuple[Reading, bool]:
    """Stateless: one value of a plain scalar node, and whether a Good value was rejected.

    Kept for callers that have no NodeValue; rounds floats without logging.
    """
    quality = quality_of(value.StatusCode)
    scalar = _scalar(value.Value, None)
    count = None if isinstance(scalar, str | bool) else round(scalar)
    rejected = quality is Quality.GOOD and count is None
    reading = Reading(
        source_id=source_id,
        address=address,
        value=None if quality is Quality.BAD or rejected else count,
        source_ts=utc(value.SourceTimestamp),
        server_ts=utc(value.ServerTimestamp),
        received_at=received_at,
        quality=Quality.BAD if rejected else quality,
        stamp=stamp,
    )
    return reading, rejected


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
