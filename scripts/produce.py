#!/usr/bin/env python3
"""Independent producer for the end-to-end tests (confluent-kafka, not the code under test).

Produces N JSON order events, one per id in K..K+N-1:
    {"id": <id>, "ts": <epoch millis>, "name": "item-<id % 97>"}
with ts = DAY_START_MS + (id * 1_000_003) % 86_400_000, DAY_START_MS = 2026-11-26T00:00:00Z,
so every event falls on 2026-11-26 (UTC) and its ts depends on the id alone. The key is str(id).
With --partitions P the partition is id % P (round robin); otherwise the client partitions by key.
--rate paces the sends (messages per second). Prints "produced <count>"; exits non-zero if any
delivery failed or was not confirmed in time.
"""

import argparse
import json
import sys
import time

from confluent_kafka import KafkaException, Producer

DAY_START_MS = 1_795_651_200_000  # 2026-11-26T00:00:00Z
DAY_MS = 86_400_000


def event(i):
    return {"id": i, "ts": DAY_START_MS + (i * 1_000_003) % DAY_MS, "name": f"item-{i % 97}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--start-id", type=int, default=0)
    ap.add_argument("--rate", type=float, help="messages per second (default: as fast as possible)")
    ap.add_argument("--partitions", type=int, help="send id to partition id %% P")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the final flush")
    args = ap.parse_args()

    producer = Producer({
        "bootstrap.servers": args.brokers,
        "acks": "all",
        # tansu on s3 storage pays an S3 write per produce request: small requests at a paced
        # rate back up for seconds with linger 5 ms; 50 ms keeps paced delivery at ~50 ms.
        "linger.ms": 50,
        "message.timeout.ms": int(args.timeout * 1000),
    })
    stats = {"ok": 0, "failed": 0, "first_error": None}

    def on_delivery(err, _msg):
        if err is None:
            stats["ok"] += 1
        else:
            stats["failed"] += 1
            stats["first_error"] = stats["first_error"] or err

    start = time.monotonic()
    for n, i in enumerate(range(args.start_id, args.start_id + args.count)):
        if args.rate:
            delay = start + n / args.rate - time.monotonic()
            if delay > 0:
                producer.poll(delay)
        kwargs = {"partition": i % args.partitions} if args.partitions else {}
        value = json.dumps(event(i), separators=(",", ":")).encode()
        while True:
            try:
                producer.produce(args.topic, value, key=str(i).encode(), on_delivery=on_delivery, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(args.timeout)

    print(f"produced {stats['ok']}", flush=True)
    if stats["failed"] or remaining or stats["ok"] != args.count:
        print(f"produce.py: {stats['failed']} failed, {remaining} unconfirmed of {args.count}; "
              f"first error: {stats['first_error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as e:
        print(f"produce.py: {e}", file=sys.stderr)
        sys.exit(1)
