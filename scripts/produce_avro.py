#!/usr/bin/env python3
"""Independent Avro producer for the end-to-end tests: confluent-kafka's AvroSerializer with its
SchemaRegistryClient (Confluent wire format: magic byte 0, schema id, Avro datum), not the code
under test.

Produces, to one topic:
- ids 0..OLD-1 with the older schema --old-schema (registered by the serializer);
- ids OLD..OLD+NEW-1 with the current schema --schema;
- with --poison, one record of each poison kind after every --poison-every good records:
  truncated (a valid record cut short), unknown_id (header with schema id 999999), wrong_magic
  (a JSON text, which starts with '{'), huge (a valid record larger than --huge-bytes), empty.
Events: {"id", "ts" (epoch ms on 2026-11-26, from the id), "name": "n<id>", ...} with fields the
schema has: "legacy" (old schema only), "status", "amount" (current schema).

Prints one JSON object: {"good": [[partition, offset, id], ...], "poison": [[partition,
offset, kind], ...]}. Exits non-zero if any delivery failed.
"""

import argparse
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

DAY_START_MS = 1_795_651_200_000  # 2026-11-26T00:00:00Z
DAY_MS = 86_400_000
STATUSES = ["NEW", "PAID", "SHIPPED"]


def event(i, old, huge=0):
    e = {"id": i, "ts": DAY_START_MS + (i * 1_000_003) % DAY_MS, "name": f"n{i}" + "x" * huge}
    if old:
        e["legacy"] = f"legacy-{i}"
    else:
        e["status"] = STATUSES[i % 3]
        e["amount"] = i / 4
    return e


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--registry", required=True, help="registry URL")
    ap.add_argument("--user", help="NAME:PASSWORD for the registry's basic auth")
    ap.add_argument("--schema", required=True, help="current .avsc")
    ap.add_argument("--old-schema", required=True, help="older compatible .avsc")
    ap.add_argument("--old", type=int, default=0, help="events written with the older schema")
    ap.add_argument("--new", type=int, default=0, help="events written with the current schema")
    ap.add_argument("--poison", action="store_true")
    ap.add_argument("--poison-every", type=int, default=500)
    ap.add_argument("--huge-bytes", type=int, default=4096)
    args = ap.parse_args()

    conf = {"url": args.registry}
    if args.user:
        conf["basic.auth.user.info"] = args.user
    registry = SchemaRegistryClient(conf)
    with open(args.schema) as f:
        current = AvroSerializer(registry, f.read())
    with open(args.old_schema) as f:
        older = AvroSerializer(registry, f.read())
    ctx = SerializationContext(args.topic, MessageField.VALUE)

    producer = Producer({"bootstrap.servers": args.brokers, "acks": "all", "linger.ms": 20,
                         "message.max.bytes": 10_000_000})
    out = {"good": [], "poison": []}
    failed = []

    def send(value, tag):
        def on_delivery(err, msg):
            if err is not None:
                failed.append(str(err))
            elif tag[0] == "good":
                out["good"].append([msg.partition(), msg.offset(), tag[1]])
            else:
                out["poison"].append([msg.partition(), msg.offset(), tag[1]])
        producer.produce(args.topic, value=value, on_delivery=on_delivery)
        producer.poll(0)

    sample = current(event(0, False), ctx)
    for n, i in enumerate(range(args.old + args.new)):
        old = i < args.old
        send((older if old else current)(event(i, old), ctx), ("good", i))
        if args.poison and n % args.poison_every == args.poison_every - 1:
            send(sample[: len(sample) - 3], ("poison", "truncated"))
            send(b"\x00" + (999_999).to_bytes(4, "big") + sample[5:], ("poison", "unknown_id"))
            send(json.dumps(event(i, False)).encode()[:-1], ("poison", "wrong_magic"))
            send(current(event(i, False, huge=args.huge_bytes), ctx), ("poison", "huge"))
            send(b"", ("poison", "empty"))
    producer.flush(60)
    if failed or len(producer) > 0:
        print(f"delivery failed: {failed[:3]}, {len(producer)} undelivered", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
