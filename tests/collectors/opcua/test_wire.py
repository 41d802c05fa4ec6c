"""The Publish response reader against asyncua's own decoder on the same bytes, then on a real
asyncua server's responses."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from collectors.opcua.wire import (
    Change,
    DataChanges,
    change_of,
    changes_of,
    decode_publish_response,
    install,
    timestamp,
)
from tests.collectors.opcua.test_values import OTHERS, WIDTHS, typed_server

V = ua.VariantType
NOW = dt.datetime(2026, 11, 26, 9, 41, 7, 123456, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(milliseconds=3)


def item(handle: int, value: ua.DataValue) -> ua.MonitoredItemNotification:
    return ua.MonitoredItemNotification(ClientHandle=handle, Value=value)


def stamped(raw: Any, kind: ua.VariantType, status: int = 0) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(raw, kind),
        StatusCode=ua.StatusCode(status),
        SourceTimestamp=NOW,
        ServerTimestamp=LATER,
    )


def response(*notifications: Any, results: int = 1, available: int = 2) -> bytes:
    """A PublishResponse as a server sends it (asyncua's encoder)."""
    built = ua.PublishResponse()
    built.ResponseHeader.Timestamp = NOW
    built.ResponseHeader.RequestHandle = 42
    parameters = built.Parameters
    parameters.SubscriptionId = 7
    parameters.AvailableSequenceNumbers = list(range(11, 11 + available))
    parameters.MoreNotifications = False
    parameters.NotificationMessage.SequenceNumber = 12
    parameters.NotificationMessage.PublishTime = NOW
    parameters.NotificationMessage.NotificationData = list(notifications)
    parameters.Results = [ua.StatusCode(0)] * results
    return bytes(struct_to_binary(built))


def both(data: bytes) -> tuple[ua.PublishResponse, ua.PublishResponse]:
    """(asyncua's decoding, ours) of the same bytes."""
    reference = struct_from_binary(ua.PublishResponse, Buffer(data))
    return reference, decode_publish_response(data)


def changes(decoded: ua.PublishResponse) -> list[list[Change]]:
    """The changes of each notification, whoever read it."""
    found: list[list[Change]] = []
    for data in decoded.Parameters.NotificationMessage.NotificationData:
        if isinstance(data, DataChanges):
            found.append(data.changes)
        elif isinstance(data, ua.DataChangeNotification):
            found.append(changes_of(data))
    return found


EVERY_KIND = [
    item(1, stamped(True, V.Boolean)),
    item(2, stamped(-128, V.SByte)),
    item(3, stamped(255, V.Byte)),
    item(4, stamped(-32_768, V.Int16)),
    item(5, stamped(65_535, V.UInt16)),
    item(6, stamped(-(2**31), V.Int32)),
    item(7, stamped(2**32 - 1, V.UInt32)),
    item(8, stamped(-(2**63), V.Int64)),
    item(9, stamped(2**64 - 1, V.UInt64)),
    item(10, stamped(2.5, V.Float)),
    item(11, stamped(99.7, V.Double)),
    item(12, stamped([5, 6, 7], V.UInt32)),
    item(13, stamped([True, False], V.Boolean)),
    item(14, stamped([], V.Int16)),
    item(15, stamped(61_830, V.UInt32, ua.StatusCodes.UncertainLastUsableValue)),
    item(16, ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown))),
    item(17, ua.DataValue(ua.Variant(3, V.Int32))),  # no timestamps, Good
    item(18, ua.DataValue(ua.Variant(4, V.Int32), SourceTimestamp=dt.datetime(1601, 1, 1))),
    item(19, stamped(2**53 + 1, V.Int64, ua.StatusCodes.Good | 0x0480)),
    item(20, ua.DataValue(ua.Variant())),  # Null
]


def test_every_number_type_status_and_timestamp_reads_as_asyncua_reads_it() -> None:
    data = response(ua.DataChangeNotification(MonitoredItems=EVERY_KIND))
    reference, ours = both(data)

    [fast] = ours.Parameters.NotificationMessage.NotificationData
    assert isinstance(fast, DataChanges)  # read here, not handed to asyncua
    assert changes(ours) == changes(reference)
    assert changes(ours)[0][0] == Change(1, V.Boolean.value, True, 0, NOW, LATER)
    for field in ("SubscriptionId", "AvailableSequenceNumbers", "MoreNotifications", "Results"):
        assert getattr(ours.Parameters, field) == getattr(reference.Parameters, field)
    message, expected = (
        ours.Parameters.NotificationMessage,
        reference.Parameters.NotificationMessage,
    )
    assert (message.SequenceNumber, message.PublishTime) == (
        expected.SequenceNumber,
        expected.PublishTime,
    )
    assert ours.ResponseHeader.RequestHandle == 42


def test_two_notifications_no_acknowledgement_results_and_no_sequence_numbers() -> None:
    first = ua.DataChangeNotification(MonitoredItems=EVERY_KIND[:5])
    second = ua.DataChangeNotification(MonitoredItems=EVERY_KIND[5:])
    reference, ours = both(response(first, second, results=0, available=0))
    assert [type(d) for d in ours.Parameters.NotificationMessage.NotificationData] == [
        DataChanges,
        DataChanges,
    ]
    assert changes(ours) == changes(reference)
    assert ours.Parameters.Results == [] and ours.Parameters.AvailableSequenceNumbers == []


@pytest.mark.parametrize(
    "unusual",
    [
        [item(1, stamped("twelve", V.String))],
        [item(1, stamped(b"\x01\x02", V.ByteString))],
        [item(1, ua.DataValue(ua.Variant([[1, 2], [3, 4]], V.Int32, Dimensions=[2, 2])))],
        [item(1, ua.DataValue(ua.Variant(5, V.UInt32), SourcePicoseconds=7))],
    ],
    ids=["string", "bytestring", "matrix", "picoseconds"],
)
def test_what_this_reader_does_not_know_is_read_by_asyncua_with_the_same_result(
    unusual: list[ua.MonitoredItemNotification],
) -> None:
    notification = ua.DataChangeNotification(MonitoredItems=[*EVERY_KIND[:3], *unusual])
    reference, ours = both(response(notification))
    [data] = ours.Parameters.NotificationMessage.NotificationData
    assert isinstance(data, ua.DataChangeNotification)  # asyncua's reading, whole
    assert changes(ours) == changes(reference)


def test_a_status_change_or_event_goes_to_asyncua() -> None:
    lost = ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))
    data = response(ua.DataChangeNotification(MonitoredItems=EVERY_KIND[:2]), lost)
    _, ours = both(data)
    kinds = [type(d) for d in ours.Parameters.NotificationMessage.NotificationData]
    assert kinds == [ua.DataChangeNotification, ua.StatusChangeNotification]


def test_a_truncated_response_raises_as_asyncua_does() -> None:
    data = response(ua.DataChangeNotification(MonitoredItems=EVERY_KIND))
    with pytest.raises(Exception) as asyncua_error:
        struct_from_binary(ua.PublishResponse, Buffer(data[:-30]))
    with pytest.raises(type(asyncua_error.value)):
        decode_publish_response(data[:-30])


def test_datetimes_zero_and_the_end_of_time() -> None:
    ticks = (NOW - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 10
    assert timestamp(ticks) == NOW
    assert timestamp(0) is None and timestamp(-5) is None
    assert timestamp(2**63 - 1) == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert change_of(1, ua.DataValue(ua.Variant(1, V.Int64))).source_ts is None


async def test_a_real_servers_data_changes_are_read_here() -> None:
    """A session with `install`: an asyncua server's responses take the reader's path, for
    every integer width, a Boolean, a Double and an array."""
    names = [*WIDTHS, "Part", "Rate", "Stations"]
    expected = {i: (WIDTHS | OTHERS)[name][1] for i, name in enumerate(names)}
    received: list[Any] = []
    arrived = asyncio.Event()

    def on_publish(result: ua.PublishResult) -> None:
        received.extend(result.NotificationMessage.NotificationData)
        if {c.handle for d in received if isinstance(d, DataChanges) for c in d.changes} == set(
            expected
        ):
            arrived.set()

    async with typed_server() as (endpoint, variables), Client(endpoint, timeout=4) as client:
        session = client.uaclient.session
        install(session)
        subscription = await session.create_subscription(
            ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=50.0,
                RequestedLifetimeCount=300,
                RequestedMaxKeepAliveCount=20,
                PublishingEnabled=True,
            ),
            on_publish,
        )
        await session.create_monitored_items(
            ua.CreateMonitoredItemsParameters(
                SubscriptionId=subscription.SubscriptionId,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ItemsToCreate=[
                    ua.MonitoredItemCreateRequest(
                        ItemToMonitor=ua.ReadValueId(
                            NodeId=variables[name].nodeid, AttributeId=ua.AttributeIds.Value
                        ),
                        MonitoringMode=ua.MonitoringMode.Reporting,
                        RequestedParameters=ua.MonitoringParameters(
                            ClientHandle=i, SamplingInterval=0.0, QueueSize=10
                        ),
                    )
                    for i, name in enumerate(names)
                ],
            )
        )
        async with asyncio.timeout(10):
            await arrived.wait()

    assert received and all(isinstance(d, DataChanges) for d in received)
    latest = {c.handle: c for d in received for c in d.changes}
    assert {h: c.value for h, c in latest.items()} == expected
    assert all(c.status == 0 and c.server_ts is not None for c in latest.values())
