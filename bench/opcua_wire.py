"""Microbenchmark of reading OPC UA Publish responses: asyncua's decoder against `wire.py`.

`python -m bench.opcua_wire [--items N] [--rounds K]`: one PublishResponse of N data changes
(UInt32 counters, Good, both timestamps, the server timestamps all different as asyncua's server
sends them), encoded by asyncua; each decoder reads it K times per repeat, the best of five
repeats counts. `asyncua` is `struct_from_binary` plus turning its notifications into `Change`
tuples (what the collector did with them); `wire` is `decode_publish_response`. Prints one JSON
object: CPU microseconds per notification (time.process_time) and the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from collectors.opcua.wire import changes_of, decode_publish_response


def response(items: int) -> bytes:
    """A PublishResponse of `items` data changes, as asyncua's server encodes it."""
    now = ua.DateTime.now(dt.UTC)
    built = ua.PublishResponse()
    built.Parameters.SubscriptionId = 1
    built.Parameters.AvailableSequenceNumbers = [7]
    built.Parameters.NotificationMessage.SequenceNumber = 7
    built.Parameters.NotificationMessage.PublishTime = now
    built.Parameters.NotificationMessage.NotificationData = [
        ua.DataChangeNotification(
            MonitoredItems=[
                ua.MonitoredItemNotification(
                    ClientHandle=i,
                    Value=ua.DataValue(
                        ua.Variant(1000 + i, ua.VariantType.UInt32),
                        SourceTimestamp=now,
                        ServerTimestamp=now + dt.timedelta(microseconds=i),
                    ),
                )
                for i in range(items)
            ]
        )
    ]
    built.Parameters.Results = [ua.StatusCode()]
    return bytes(struct_to_binary(built))


def per_notification_us(read: Callable[[], object], items: int, rounds: int) -> float:
    """Best of five repeats: CPU µs per notification."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            read()
        best = min(best, time.process_time() - start)
    return best / rounds / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    data = response(options.items)

    def by_asyncua() -> object:
        decoded = struct_from_binary(ua.PublishResponse, Buffer(data))
        return [changes_of(n) for n in decoded.Parameters.NotificationMessage.NotificationData]

    asyncua_us = per_notification_us(by_asyncua, options.items, options.rounds)
    wire_us = per_notification_us(
        lambda: decode_publish_response(data), options.items, options.rounds
    )
    print(
        json.dumps(
            {
                "items": options.items,
                "response_bytes": len(data),
                "asyncua_us_per_notification": round(asyncua_us, 2),
                "wire_us_per_notification": round(wire_us, 2),
                "asyncua_vs_wire": round(asyncua_us / wire_us, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
