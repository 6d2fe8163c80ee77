#!/usr/bin/env python3
"""PostgreSQL row changes -> Debezium-format change events on Kafka, for kappa-lake's CDC tests.

An independent re-implementation, for tests, of the event envelope that Debezium's PostgreSQL
connector documents (https://debezium.io/documentation/reference/stable/connectors/postgresql.html,
"Data change events"). It is not Debezium and shares no code with it. Changes are read by polling a
logical replication slot that uses the wal2json output plugin (format-version 2) with
pg_logical_slot_get_changes: at-most-once (a batch leaves the slot before it is produced).

The connector imitated is Debezium 2.7 configured with topic.prefix=P (topics P.<schema>.<table>),
decimal.handling.mode=string, time.precision.mode=adaptive (the default),
provide.transaction.metadata=true (the "transaction" block; no BEGIN/END events on P.transaction
though), tombstones.on.delete=true (the default), and the JsonConverter for keys and values with
schemas.enable=false, or true with --wrapper ({"schema": ..., "payload": ...}).

Column types (any other fails): smallint/integer/bigint and real/double precision -> numbers;
numeric -> string; text/varchar -> string; boolean; timestamptz -> io.debezium.time.ZonedTimestamp
(ISO-8601 in UTC ending in Z, as many fraction digits as the column's precision, 6 by default);
timestamp -> io.debezium.time.MicroTimestamp (microseconds since the epoch; precision <= 3:
io.debezium.time.Timestamp, milliseconds); date -> io.debezium.time.Date (days since the epoch).

As Debezium does: an update's "before" is null unless the table has REPLICA IDENTITY FULL, and
its "after" has "__debezium_unavailable_value" for an unchanged TOASTed (large) text value; a
primary-key update becomes a delete of the old key (+ tombstone, header __debezium.newkey) and a
create of the new key (header __debezium.oldkey); a delete's "before" holds the replica identity's
columns and, for the others, null, or for a NOT NULL column its literal default or the type's
fallback (0, "", false, the epoch), as Debezium's value converters do. A snapshot's events have
source.snapshot "first", "true", ..., "last" (Debezium 2.x's marks for a one-table snapshot) and
a null "transaction".

  pg_debezium.py slot --dsn DSN --slot NAME
  pg_debezium.py snapshot --dsn DSN --brokers H:P --topic T --table SCHEMA.TABLE [--topic-prefix P]
                          [--wrapper]
  pg_debezium.py stream --dsn DSN --slot NAME --brokers H:P --topic-prefix P [--until-idle SECONDS]
                        [--wrapper]
snapshot and stream print one JSON line: {"events": n, "tombstones": n, "by_op": {"c": n, ...}}.
"""

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections import Counter

import psycopg
from confluent_kafka import Producer
from psycopg import sql

VERSION = "2.7.0.Final"
UNAVAILABLE = "__debezium_unavailable_value"  # unavailable.value.placeholder: unchanged TOAST
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
WAL2JSON = ["format-version", "2", "include-xids", "1", "include-lsn", "1",
            "include-timestamp", "1", "include-pk", "1", "include-transaction", "1"]
INTS, FLOATS = ("smallint", "integer", "bigint"), ("real", "double precision")
TEXTS = ("text", "character varying")
# PostgreSQL type -> (Kafka Connect type, logical type name, fallback for a NOT NULL column)
TYPES = {
    "smallint": ("int16", None, 0), "integer": ("int32", None, 0), "bigint": ("int64", None, 0),
    "real": ("float32", None, 0.0), "double precision": ("float64", None, 0.0),
    "numeric": ("string", None, "0"), "text": ("string", None, ""),
    "character varying": ("string", None, ""), "boolean": ("boolean", None, False),
    "timestamp with time zone": ("string", "io.debezium.time.ZonedTimestamp", "1970-01-01T00:00:00Z"),
    "timestamp without time zone": ("int64", "io.debezium.time.MicroTimestamp", 0),
    "date": ("int32", "io.debezium.time.Date", 0),
}
CATALOG = """
SELECT a.attname, format_type(a.atttypid, NULL), a.atttypmod, a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), array_position(i.indkey::int2[], a.attnum), c.relreplident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relname = %s ORDER BY a.attnum"""


def field(field_name, typ, optional=False, **extra):  # a Kafka Connect schema field
    return {"type": typ, "optional": optional, **extra, "field": field_name}


SOURCE_SCHEMA = {"type": "struct", "fields": [
    field("version", "string"), field("connector", "string"), field("name", "string"),
    field("ts_ms", "int64"),
    field("snapshot", "string", True, name="io.debezium.data.Enum", version=1, default="false",
          parameters={"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,"
                                 "false,incremental"}),
    field("db", "string"), field("sequence", "string", True), field("ts_us", "int64", True),
    field("ts_ns", "int64", True), field("schema", "string"), field("table", "string"),
    field("txId", "int64", True), field("lsn", "int64", True), field("xmin", "int64", True),
], "optional": False, "name": "io.debezium.connector.postgresql.Source", "version": 1,
    "field": "source"}
TRANSACTION_SCHEMA = {"type": "struct", "fields": [
    field("id", "string"), field("total_order", "int64"), field("data_collection_order", "int64"),
], "optional": True, "name": "event.block", "version": 1, "field": "transaction"}


def dumps(obj):  # compact, like Kafka Connect's JsonConverter
    return None if obj is None else json.dumps(obj, separators=(",", ":")).encode()


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def micros(ts):
    return (ts - EPOCH) // dt.timedelta(microseconds=1)


class Column:
    def __init__(self, name, pgtype, typmod, notnull, default_expr):
        if pgtype not in TYPES:
            raise ValueError(f"column {name}: type {pgtype!r} is not supported")
        self.name, self.pgtype, self.optional = name, pgtype, not notnull
        self.precision = typmod if typmod >= 0 else 6  # of timestamps
        self.connect_type, self.logical, fallback = TYPES[pgtype]
        if pgtype == "timestamp without time zone" and self.precision <= 3:
            self.logical = "io.debezium.time.Timestamp"
        self.default = self.literal(default_expr)
        self.fallback = fallback if self.default is None else self.default

    def literal(self, expr):  # a constant DEFAULT ('x'::text, 0, true) -> its value, else None
        text = re.sub(r"::[a-z ]+(\([0-9,]+\))?$", "", expr or "").strip("()")
        if len(text) >= 2 and text[0] == text[-1] == "'":
            text = text[1:-1].replace("''", "'")
        elif not re.fullmatch(r"-?[0-9.]+|true|false", text):
            return None
        try:
            return self.convert(text)
        except ValueError:
            return None

    def convert(self, v):  # wal2json's JSON value or PostgreSQL's text output -> Debezium's value
        t = self.pgtype
        if v is None:
            return None
        if t in INTS:
            return int(v)
        if t in FLOATS or t == "numeric":
            if str(v).lower() in ("nan", "infinity", "-infinity"):
                raise ValueError(f"column {self.name}: {v} is not supported")
            return float(v) if t in FLOATS else str(v)
        if t == "boolean":
            return v if isinstance(v, bool) else v in ("t", "true")
        if t in TEXTS:
            return v
        try:
            if t == "date":
                return (dt.date.fromisoformat(v) - EPOCH.date()).days
            ts = dt.datetime.fromisoformat(v)  # DateStyle ISO, TimeZone UTC
        except ValueError:
            raise ValueError(f"column {self.name}: value {v!r} is not supported") from None
        if t == "timestamp with time zone":
            frac = f".{ts.microsecond:06d}"[:self.precision + 1] if self.precision > 0 else ""
            return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
        us = micros(ts.replace(tzinfo=UTC))
        return us // 1000 if self.logical == "io.debezium.time.Timestamp" else us

    def schema(self):
        extra = {"name": self.logical, "version": 1} if self.logical else {}
        if self.default is not None:
            extra["default"] = self.default
        return field(self.name, self.connect_type, self.optional, **extra)


class Table:
    def __init__(self, conn, schema, name):
        rows = conn.execute(CATALOG, (schema, name)).fetchall()
        if not rows:
            raise ValueError(f"no table {schema}.{name}")
        self.schema, self.name = schema, name
        self.columns = [Column(*r[:5]) for r in rows]
        # r[5]: position in the primary key (int2vector subscripts start at 0), or None
        self.key = [c for _, c in sorted((r[5], c) for r, c in zip(rows, self.columns)
                                         if r[5] is not None)]
        self.full_identity = rows[0][6] == "f"

    def row(self, values, toasted=False):  # {column: raw value}; absent ones as Debezium fills
        return {c.name: c.convert(values[c.name]) if c.name in values else
                UNAVAILABLE if toasted and c.connect_type == "string" else
                None if c.optional else c.fallback for c in self.columns}

    def key_of(self, row):
        return {c.name: row[c.name] for c in self.key} if self.key else None

    def key_schema(self, prefix):
        return {"type": "struct", "fields": [c.schema() for c in self.key], "optional": False,
                "name": f"{prefix}.{self.schema}.{self.name}.Key"}

    def value_schema(self, prefix):
        row = {"type": "struct", "fields": [c.schema() for c in self.columns], "optional": True,
               "name": f"{prefix}.{self.schema}.{self.name}.Value"}
        return {"type": "struct", "fields": [
            {**row, "field": "before"}, {**row, "field": "after"}, SOURCE_SCHEMA,
            TRANSACTION_SCHEMA,
            field("op", "string"), field("ts_ms", "int64", True), field("ts_us", "int64", True),
            field("ts_ns", "int64", True),
        ], "optional": False, "name": f"{prefix}.{self.schema}.{self.name}.Envelope", "version": 2}


class Emitter:
    def __init__(self, brokers, prefix, wrapper, db):
        # murmur2 on the key bytes: the partition Kafka's Java producer (Kafka Connect) picks.
        self.producer = Producer({"bootstrap.servers": brokers, "partitioner": "murmur2_random",
                                  "linger.ms": 5})
        self.prefix, self.wrapper, self.db = prefix, wrapper, db
        self.by_op, self.tombstones, self.errors = Counter(), 0, []

    def source(self, table, ts_us, snapshot, tx_id, lsn, sequence):
        return {"version": VERSION, "connector": "postgresql", "name": self.prefix,
                "ts_ms": ts_us // 1000, "snapshot": snapshot, "db": self.db,
                "sequence": json.dumps(sequence, separators=(",", ":")), "ts_us": ts_us,
                "ts_ns": ts_us * 1000, "schema": table.schema, "table": table.name, "txId": tx_id,
                "lsn": lsn, "xmin": None}

    def key(self, table, key):
        if self.wrapper and key is not None:
            return {"schema": table.key_schema(self.prefix), "payload": key}
        return key

    def send(self, topic, key, value, headers=None):
        while True:
            try:
                self.producer.produce(topic, key=dumps(key), value=dumps(value), headers=headers,
                                      on_delivery=self.delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.5)
        self.producer.poll(0)

    def delivered(self, err, _msg):
        if err is not None:
            self.errors.append(str(err))

    def event(self, topic, table, op, before, after, source, txn=None, headers=None):
        now_us = time.time_ns() // 1000
        value = {"before": before, "after": after, "source": source, "transaction": txn, "op": op,
                 "ts_ms": now_us // 1000, "ts_us": now_us, "ts_ns": now_us * 1000}
        if self.wrapper:
            value = {"schema": table.value_schema(self.prefix), "payload": value}
        self.send(topic, self.key(table, table.key_of(after or before)), value, headers)
        self.by_op[op] += 1

    def tombstone(self, topic, table, key):
        self.send(topic, self.key(table, key), None)
        self.tombstones += 1

    def flush(self):
        if self.producer.flush(60) > 0 or self.errors:
            raise RuntimeError(f"produce failed: {self.errors[:3] or 'flush timed out'}")

    def finish(self):
        self.flush()
        return {"events": sum(self.by_op.values()), "tombstones": self.tombstones,
                "by_op": dict(self.by_op)}


def connect(dsn, autocommit):
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")  # timestamptz and wal2json output in UTC, ISO
    conn.execute("SET DateStyle = 'ISO, YMD'")
    conn.autocommit = autocommit
    return conn


def cmd_slot(args):
    with connect(args.dsn, True) as conn:
        found = conn.execute("SELECT plugin FROM pg_replication_slots WHERE slot_name = %s",
                             (args.slot,)).fetchone()
        if found and found[0] != "wal2json":
            raise ValueError(f"slot {args.slot} exists with plugin {found[0]}")
        if not found:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (args.slot,))
        print(json.dumps({"slot": args.slot, "created": not found}))


def cmd_snapshot(args):
    schema, name = args.table.split(".", 1)
    prefix = args.topic_prefix or args.topic.removesuffix(f".{schema}.{name}")
    with connect(args.dsn, False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one consistent read
        table = Table(conn, schema, name)
        db, tx_id, lsn = conn.execute(
            "SELECT current_database(), txid_current(), pg_current_wal_lsn()::text").fetchone()
        emitter = Emitter(args.brokers, prefix, args.wrapper, db)
        ts_us, lsn = micros(dt.datetime.now(UTC)), lsn_int(lsn)
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name))
                               for c in table.columns),
            sql.Identifier(schema, name),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in table.key or table.columns[:1]))
        with conn.cursor(name="snapshot") as cur:
            rows = iter(cur.execute(query))
            row, n = next(rows, None), 0
            while row is not None:
                following, n = next(rows, None), n + 1
                mark = "last" if following is None else "first" if n == 1 else "true"
                after = table.row(dict(zip((c.name for c in table.columns), row)))
                source = emitter.source(table, ts_us, mark, tx_id, lsn, [None, str(lsn)])
                emitter.event(args.topic, table, "r", None, after, source)
                row = following
    print(json.dumps(emitter.finish()))


def cmd_stream(args):
    with connect(args.dsn, True) as conn:
        db = conn.execute("SELECT current_database()").fetchone()[0]
        emitter = Emitter(args.brokers, args.topic_prefix, args.wrapper, db)
        tables, txn, last_commit, idle_since = {}, None, None, time.monotonic()
        while True:
            changes = conn.execute("SELECT data FROM pg_logical_slot_get_changes("
                                   "%s, NULL, 10000, VARIADIC %s::text[])",
                                   (args.slot, WAL2JSON)).fetchall()
            for (data,) in changes:
                change = json.loads(data, parse_float=str)  # numeric digits kept exactly
                action = change["action"]
                if action == "B":
                    txn = {"id": f"{change['xid']}:{lsn_int(change['lsn'])}", "total": 0,
                           "per_table": Counter(), "xid": change["xid"],
                           "ts_us": micros(dt.datetime.fromisoformat(change["timestamp"]))}
                elif action == "C":
                    last_commit, txn = str(lsn_int(change["lsn"])), None
                elif action in ("I", "U", "D"):
                    key = (change["schema"], change["table"])
                    if key not in tables:
                        tables[key] = Table(conn, *key)
                    row_change(emitter, tables[key], change, txn, last_commit)
            if changes:
                emitter.flush()
                idle_since = time.monotonic()
            elif args.until_idle is not None and time.monotonic() - idle_since >= args.until_idle:
                break
            else:
                time.sleep(0.2)
    print(json.dumps(emitter.finish()))


def row_change(emitter, table, change, txn, last_commit):
    topic = f"{emitter.prefix}.{table.schema}.{table.name}"
    lsn = lsn_int(change["lsn"])
    source = emitter.source(table, txn["ts_us"], "false", txn["xid"], lsn, [last_commit, str(lsn)])

    def emit(op, before, after, headers=None):
        txn["total"] += 1
        txn["per_table"][topic] += 1
        block = {"id": txn["id"], "total_order": txn["total"],
                 "data_collection_order": txn["per_table"][topic]}
        emitter.event(topic, table, op, before, after, source, block, headers)

    new = {c["name"]: c["value"] for c in change.get("columns", [])}
    old = {c["name"]: c["value"] for c in change.get("identity", [])}
    if change["action"] == "I":
        emit("c", None, table.row(new))
    elif change["action"] == "D":
        before = table.row(old)
        emit("d", before, None)
        emitter.tombstone(topic, table, table.key_of(before))
    else:
        # wal2json leaves out unchanged TOASTed values (large text): Debezium's placeholder
        after, before = table.row(new, toasted=True), table.row(old) if old else None
        old_key, new_key = table.key_of(before) if before else None, table.key_of(after)
        if before is not None and old_key != new_key:  # primary key update: delete + create
            emit("d", before, None, [("__debezium.newkey", dumps(new_key))])
            emitter.tombstone(topic, table, old_key)
            emit("c", None, after, [("__debezium.oldkey", dumps(old_key))])
        else:
            emit("u", before if table.full_identity else None, after)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    slot = sub.add_parser("slot", help="create the wal2json logical replication slot (idempotent)")
    snap = sub.add_parser("snapshot", help="one op=r event per existing row of --table to --topic")
    stream = sub.add_parser("stream", help="slot changes -> events on PREFIX.<schema>.<table>")
    for p in (slot, snap, stream):
        p.add_argument("--dsn", required=True, help="libpq connection string")
    for p in (slot, stream):
        p.add_argument("--slot", required=True)
    for p in (snap, stream):
        p.add_argument("--brokers", required=True, help="Kafka bootstrap servers, HOST:PORT")
        p.add_argument("--wrapper", action="store_true",
                       help='{"schema", "payload"} keys and values (JsonConverter schemas.enable)')
    snap.add_argument("--topic", required=True)
    snap.add_argument("--table", required=True, help="SCHEMA.TABLE")
    snap.add_argument("--topic-prefix", help="source.name (default: --topic less .SCHEMA.TABLE)")
    stream.add_argument("--topic-prefix", required=True)
    stream.add_argument("--until-idle", type=float, metavar="SECONDS",
                        help="exit after SECONDS without changes (default: run forever)")
    args = parser.parse_args()
    try:
        {"slot": cmd_slot, "snapshot": cmd_snapshot, "stream": cmd_stream}[args.command](args)
    except (ValueError, RuntimeError, psycopg.Error) as e:
        sys.exit(f"pg_debezium: {e}")


if __name__ == "__main__":
    main()
