"""Publish responses read in one pass: the data changes of a subscription as `Change` tuples.

asyncua decodes each response with its generic decoder, an object per field: at 10,000
notifications a second that was the largest part of the edge's CPU (py-spy, `python -m bench
opcua_intake`). A Publish response of data changes has one shape, read here with `struct`:

    PublishResponse: TypeId, ResponseHeader, SubscriptionId, AvailableSequenceNumbers,
        MoreNotifications, NotificationMessage (SequenceNumber, PublishTime,
        NotificationData: DataChangeNotification...), Results, DiagnosticInfos
    MonitoredItemNotification: ClientHandle, DataValue (mask; Variant, StatusCode,
        SourceTimestamp, ServerTimestamp)

Anything else, in any part of a response (an event or status-change notification, a non-empty
diagnostic or string table, picoseconds, a value that is not Null, a Boolean or a number, or an
array with dimensions), sends the whole response to asyncua's decoder, so both give the same result
(tests compare them on the same bytes). `install(session)` makes a session's publish loop use it.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.common.utils import Buffer
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import struct_from_binary
from asyncua.ua.uaerrors import UaStructParsingError

_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
_LAST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
_LAST_TICKS = (_LAST - _EPOCH) // dt.timedelta(microseconds=1) * 10

_PUBLISH_RESPONSE = ObjectIds.PublishResponse_Encoding_DefaultBinary
_DATA_CHANGE = ObjectIds.DataChangeNotification_Encoding_DefaultBinary

_HEAD = struct.Struct("<BBHqII")
"""TypeId (four-byte NodeId), ResponseHeader's Timestamp, RequestHandle, ServiceResult."""
_HEADER_TAIL = b"\x00\xff\xff\xff\xff\x00\x00\x00"
"""No ServiceDiagnostics, no StringTable, no AdditionalHeader."""
_HEADER_TAIL_EMPTY_TABLE = b"\x00\x00\x00\x00\x00\x00\x00\x00"
"""The same with an empty StringTable instead of none (asyncua's server sends this)."""
_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_INT64 = struct.Struct("<q")
_MESSAGE = struct.Struct("<Iqi")
"""SequenceNumber, PublishTime, NotificationData's length."""
_EXTENSION = struct.Struct("<BBHBi")
"""An ExtensionObject: four-byte TypeId, encoding (1: binary body), body length."""
_ITEM = struct.Struct("<IB")
"""ClientHandle, DataValue's encoding mask."""

_SCALARS: dict[int, struct.Struct] = {
    kind: struct.Struct("<" + code)
    for kind, code in {1: "?", 2: "b", 3: "B", 4: "h", 5: "H", 6: "i", 7: "I", 8: "q"}.items()
} | {9: struct.Struct("<Q"), 10: struct.Struct("<f"), 11: struct.Struct("<d")}
"""VariantType (Boolean..Double) -> its encoding."""

_VALUE, _STATUS, _SOURCE_TS, _SERVER_TS, _PICOSECONDS = 0x01, 0x02, 0x04, 0x08, 0x30


class Change(NamedTuple):
    """One data change of a monitored item, as the collector reads it."""

    handle: int
    """The item's client handle."""
    kind: int
    """The value's VariantType (0: no value)."""
    value: Any
    """A Boolean or number, a list for an array; from asyncua's decoder, whatever it made."""
    status: int
    """The StatusCode's value (0: Good)."""
    source_ts: dt.datetime | None
    server_ts: dt.datetime | None
    """UTC; None when missing or 0."""


class DataChanges(NamedTuple):
    """A DataChangeNotification read here: its changes in order."""

    changes: list[Change]


class _Unusual(Exception):
    """Something this reader leaves to asyncua's decoder."""


def timestamp(ticks: int) -> dt.datetime | None:
    """An OPC UA DateTime (100 ns since 1601, UTC) as asyncua reads it; None for 0 or less."""
    return _datetime(ticks) if ticks > 0 else None


def _datetime(ticks: int) -> dt.datetime:
    """A positive DateTime (the largest datetime for the spec's 'end of time')."""
    if ticks >= _LAST_TICKS:
        return _LAST
    return _EPOCH + dt.timedelta(microseconds=ticks // 10)


def changes_of(notification: ua.DataChangeNotification) -> list[Change]:
    """The changes of a notification asyncua decoded (a republished message, an unusual one)."""
    return [change_of(item.ClientHandle, item.Value) for item in notification.MonitoredItems]


def change_of(handle: int, value: ua.DataValue) -> Change:
    """One DataValue asyncua decoded (also a polled one) as a Change."""
    variant, status = value.Value, value.StatusCode
    kind = 0 if variant is None else variant.VariantType.value
    return Change(
        handle,
        kind,
        None if variant is None else variant.Value,
        0 if status is None else status.value,
        utc(value.SourceTimestamp),
        utc(value.ServerTimestamp),
    )


def utc(ts: dt.datetime | None) -> dt.datetime | None:
    """A timezone-aware UTC timestamp; None for a missing or zero OPC UA DateTime."""
    if ts is None:
        return None
    if ts.tzinfo is not dt.UTC:
        ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    return None if ts <= _EPOCH else ts


def decode_publish_response(data: bytes) -> ua.PublishResponse:
    """A PublishResponse (TypeId first) whose DataChangeNotifications are `DataChanges`;
    asyncua's decoder for a response this reader leaves to it."""
    try:
        return _read(data)
    except (_Unusual, struct.error, IndexError, KeyError):
        response = struct_from_binary(ua.PublishResponse, Buffer(data))
        assert isinstance(response, ua.PublishResponse)
        return response


def _read(data: bytes) -> ua.PublishResponse:
    encoding, namespace, type_id, _, request_handle, service_result = _HEAD.unpack_from(data, 0)
    if (encoding, namespace, type_id) != (1, 0, _PUBLISH_RESPONSE):
        raise _Unusual
    tail = data[20:28]
    if tail != _HEADER_TAIL and tail != _HEADER_TAIL_EMPTY_TABLE:
        raise _Unusual
    position = 28
    subscription_id, available = struct.unpack_from("<Ii", data, position)
    position += 8
    numbers = list(struct.unpack_from(f"<{available}I", data, position)) if available > 0 else []
    position += 4 * max(available, 0)
    more = data[position] != 0
    position += 1
    sequence, publish_ticks, notifications = _MESSAGE.unpack_from(data, position)
    position += _MESSAGE.size
    found: list[Any] = []
    for _ in range(max(notifications, 0)):
        encoding, namespace, type_id, body, length = _EXTENSION.unpack_from(data, position)
        if (encoding, namespace, type_id, body) != (1, 0, _DATA_CHANGE, 1):
            raise _Unusual
        position += _EXTENSION.size
        end = position + length
        found.append(DataChanges(_read_changes(data, position, end)))
        position = end
    (results,) = _INT32.unpack_from(data, position)
    position += 4
    codes = struct.unpack_from(f"<{results}I", data, position) if results > 0 else ()
    position += 4 * len(codes)
    (diagnostics,) = _INT32.unpack_from(data, position)
    if diagnostics > 0 or position + 4 != len(data):
        raise _Unusual
    response = ua.PublishResponse()
    response.ResponseHeader.RequestHandle = request_handle
    response.ResponseHeader.ServiceResult = ua.StatusCode(ua.UInt32(service_result))
    result = response.Parameters
    result.SubscriptionId = subscription_id
    result.AvailableSequenceNumbers = numbers
    result.MoreNotifications = more
    message = result.NotificationMessage
    message.SequenceNumber = sequence
    message.PublishTime = timestamp(publish_ticks) or _EPOCH
    message.NotificationData = found
    result.Results = [ua.StatusCode(ua.UInt32(code)) for code in codes]
    return response


def _read_changes(data: bytes, position: int, end: int) -> list[Change]:
    """A DataChangeNotification's body: its MonitoredItems, then no DiagnosticInfos."""
    (count,) = _INT32.unpack_from(data, position)
    position += 4
    changes: list[Change] = []
    append = changes.append
    times: dict[int, dt.datetime] = {}
    item_at, int64_at, uint32_at = _ITEM.unpack_from, _INT64.unpack_from, _UINT32.unpack_from
    scalars = _SCALARS
    for _ in range(count):
        handle, mask = item_at(data, position)
        position += 5
        if mask & _PICOSECONDS:
            raise _Unusual
        kind = status = 0
        value: Any = None
        source_ts = server_ts = None
        if mask & _VALUE:
            kind = data[position]
            position += 1
            if kind == 0:
                pass  # Null: no value (as with a Bad status)
            elif kind < 0x40:
                scalar = scalars[kind]  # KeyError: not a Boolean or number
                (value,) = scalar.unpack_from(data, position)
                position += scalar.size
            elif kind < 0x80 or kind & 0x40:
                raise _Unusual  # dimensions
            else:
                kind &= 0x3F
                scalar = scalars[kind]
                (length,) = _INT32.unpack_from(data, position)
                position += 4
                length = max(length, 0)
                value = list(struct.unpack_from(f"<{length}{scalar.format[1:]}", data, position))
                position += length * scalar.size
        if mask & _STATUS:
            (status,) = uint32_at(data, position)
            position += 4
        if mask & _SOURCE_TS:
            source_ts = _known(times, int64_at(data, position)[0])
            position += 8
        if mask & _SERVER_TS:
            server_ts = _known(times, int64_at(data, position)[0])
            position += 8
        append(Change(handle, kind, value, status, source_ts, server_ts))
    (diagnostics,) = _INT32.unpack_from(data, position)
    if diagnostics > 0 or position + 4 != end:
        raise _Unusual
    return changes


def _known(times: dict[int, dt.datetime], ticks: int) -> dt.datetime | None:
    """The datetime of `ticks`, made once per response (a server stamps many values alike)."""
    found = times.get(ticks)
    if found is None and ticks > 0:
        found = times[ticks] = _datetime(ticks)
    return found


def install(session: UaSession) -> None:
    """Make the session's publish loop read its responses here (asyncua's `UaSession.publish`
    with this decoder in place of the generic one)."""
    send: Callable[..., Any] = session._send_request

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        data = await send(request, timeout=0)
        try:
            return decode_publish_response(bytes(data))
        except Exception as exc:  # as asyncua: the publish loop skips the response
            raise UaStructParsingError from exc

    session.publish = publish  # type: ignore[method-assign]
