#!/usr/bin/env python3
"""Benchmark of upsert tables: Debezium change events into the latest state, against the
append path on the same rows.

Generates --changes Debezium change events (JSON, PostgreSQL connector's envelope, no
schema/payload wrapper) over --keys keys of a `customers` table: first one snapshot read
(`op = r`) per key, then a random mix of updates (each adds 1 to `counter`), deletes (with
their tombstones), re-creates of deleted keys and creates of new keys, in --files NDJSON files.
Then, in one invocation and alternated --repeat times:

  - upsert: `run` of `mode = "upsert"`, `key = ["id"]`, `envelope = "debezium"` into Delta,
    with the default writer settings and with small commits (--small-buffer), which rewrite
    the files holding changed keys more often; each partitioned by day and by --key-buckets
    key buckets (`partition_by`), whose commits read only the buckets of their keys;
  - append: `run` of the same rows (each event's `after` image, or the key of a delete, as a
    plain row) appended into Delta: what the same records cost without the envelope and the
    merge.

Each run is a child process reaped with wait4() (bench.measure), so CPU seconds and peak RSS
are its own. The upsert table is checked against the generator's model with DuckDB's
`delta_scan` (rows, distinct ids, sum of ids and of counters). Prints a markdown table and
writes `cdc.md` and `cdc.json` under --out.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the measured-process helper)

TS_MS = 1_795_651_200_000  # 2026-11-26T00:00:00Z
SCHEMA = {
    "type": "record", "name": "customers", "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "email", "type": ["null", "string"], "default": None},
        {"name": "counter", "type": "long"},
        {"name": "balance_cents", "type": "long"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def generate(changes, keys, files, seed, out: Path):
    """The change events (and the plain rows of the append run) in `files` files each; the
    model's final state as {rows, sum_id, sum_counter}."""
    marker = out / "done.json"
    if marker.exists():
        return json.loads(marker.read_text())
    shutil.rmtree(out, ignore_errors=True)
    (out / "debezium").mkdir(parents=True)
    (out / "rows").mkdir(parents=True)
    rng = random.Random(seed)
    state = {}  # id -> [name, counter, balance]
    deleted = []
    next_id = keys + 1
    at = TS_MS
    per_file = -(-changes // files)
    dbz = rows = None
    n = 0

    def source(op):
        return {"version": "2.7.0.Final", "connector": "postgresql", "name": "shop",
                "ts_ms": at, "snapshot": "true" if op == "r" else "false", "db": "shop",
                "schema": "public", "table": "customers", "txId": 1000 + n, "lsn": 24000000 + n}

    def image(i):
        name, counter, balance = state[i]
        return {"id": i, "name": name, "email": f"{name}@example.com" if i % 3 else None,
                "counter": counter, "balance_cents": balance, "ts": at}

    def emit(op, before, after):
        nonlocal n
        event = {"before": before, "after": after, "source": source(op), "op": op,
                 "ts_ms": at, "transaction": None}
        dbz.write(json.dumps(event, separators=(",", ":")) + "\n")
        rows.write(json.dumps(after if after is not None else before, separators=(",", ":")) + "\n")
        n += 1

    ids = list(range(1, keys + 1))
    for step in range(changes):
        if step % per_file == 0:
            for f in (dbz, rows):
                if f:
                    f.close()
            part = step // per_file
            dbz = open(out / "debezium" / f"changes-{part:03}.ndjson", "w")
            rows = open(out / "rows" / f"rows-{part:03}.ndjson", "w")
        at += 1
        if step < keys:
            i = step + 1
            state[i] = [f"customer-{i}", 0, rng.randrange(1_000_000)]
            emit("r", None, image(i))
            continue
        pick = rng.random()
        if pick < 0.80 and ids:
            i = ids[rng.randrange(len(ids))]
            s = state[i]
            s[1] += 1
            s[2] += rng.randrange(-5000, 5000)
            emit("u", None, image(i))
        elif pick < 0.90 and ids:
            k = rng.randrange(len(ids))
            i = ids[k]
            ids[k] = ids[-1]
            ids.pop()
            key = {"id": i, "name": "", "email": None, "counter": 0, "balance_cents": 0, "ts": 0}
            del state[i]
            deleted.append(i)
            emit("d", key, None)
            dbz.write("null\n")  # the tombstone (a file source reads a JSON null)
        else:
            if deleted and rng.random() < 0.5:
                i = deleted.pop(rng.randrange(len(deleted)))
            else:
                i = next_id
                next_id += 1
            state[i] = [f"customer-{i}", 0, rng.randrange(1_000_000)]
            ids.append(i)
            emit("c", None, image(i))
    dbz.close()
    rows.close()
    (out / "customers.avsc").write_text(json.dumps(SCHEMA, indent=1))
    model = {"rows": len(state), "sum_id": sum(state), "sum_counter": sum(s[1] for s in state.values())}
    marker.write_text(json.dumps(model))
    return model


def config(work: Path, data: Path, upsert: bool, writer: str, partition: str):
    table = 'mode = "upsert"\nkey = ["id"]\n' if upsert else ""
    source = 'envelope = "debezium"\n' if upsert else ""
    if "batch_size" in writer:  # source settings ride along with the writer's
        batch, writer = writer.split("\n", 1)
        source += batch + "\n"
    input_dir = data / ("debezium" if upsert else "rows")
    cfg = work / "kappa-lake.toml"
    cfg.write_text(f"""[[table]]
name = "customers"
root = "lake"
schema = "{data / 'customers.avsc'}"
{partition}
metadata_columns = false
{table}
[table.source]
kind = "files"
path = "{input_dir}"
{source}
[table.writer]
{writer}
""")
    return cfg


def run(args, work: Path, data: Path, upsert: bool, writer: str, partition: str):
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = config(work, data, upsert, writer, partition)
    env = dict(os.environ, KAPPA_LAKE_LOG="warn")
    m = bench.measure([args.bin, "run", "--config", str(cfg)], env=env, cwd=work, log=work / "run.log")
    status = json.loads(subprocess.run(
        [args.bin, "status", "--config", str(cfg), "--json"],
        cwd=work, check=True, capture_output=True, text=True).stdout)
    version = status["tables"][0]["versions"][-1]
    m["commits"] = version.get("commits")
    m["files_left"] = sum(version["files_per_partition"].values())
    m["output_bytes"], _ = bench.output_stats(work / "lake" / "customers" / "v1")
    return m


def check(args, work: Path, model, upsert: bool):
    path = work / "lake" / "customers" / "v1"
    code = (
        "import duckdb, json, os, sysconfig\n"
        "con = duckdb.connect()\n"
        "ext = os.path.join(sysconfig.get_paths()['purelib'], 'duckdb_ext', 'extensions')\n"
        "con.sql(f\"SET extension_directory = '{ext}'\")\n"
        "con.sql('LOAD delta')\n"
        f"r = con.sql(\"SELECT count(*), count(DISTINCT id), sum(id), sum(counter) FROM delta_scan('{path}')\").fetchone()\n"
        "print(json.dumps([int(x or 0) for x in r]))\n"
    )
    out = subprocess.run([args.python, "-c", code], check=True, capture_output=True, text=True)
    rows, distinct, sum_id, sum_counter = json.loads(out.stdout)
    if upsert:
        want = [model["rows"], model["rows"], model["sum_id"], model["sum_counter"]]
        if [rows, distinct, sum_id, sum_counter] != want:
            sys.exit(f"{work}: the upsert table is {[rows, distinct, sum_id, sum_counter]}, "
                     f"the model {want}")
    elif rows != args.changes:
        sys.exit(f"{work}: the append table has {rows} rows, not {args.changes}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(bench.REPO / "target/release/kappa-lake"))
    ap.add_argument("--python", default=sys.executable, help="a Python with duckdb and its delta extension")
    ap.add_argument("--out", default=str(bench.REPO / "target/bench"))
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--small-buffer", default="4MiB",
                    help="max_buffer_bytes of the small-commit upsert run")
    ap.add_argument("--commit-changes", type=int, default=0,
                    help="instead of --small-buffer: small commits of about this many changes")
    ap.add_argument("--key-buckets", type=int, default=16,
                    help="partition_by = { key_buckets = N } of the key-bucketed upsert runs")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=26)
    args = ap.parse_args()
    args.bin = str(Path(args.bin).resolve())
    out = Path(args.out).resolve()
    data = out / "data" / f"cdc-{args.changes}-{args.keys}"
    model = generate(args.changes, args.keys, args.files, args.seed, data)
    in_bytes = bench.input_bytes(data / "debezium")
    daily = 'time = { field = "ts", granularity = "day" }'
    buckets = f"partition_by = {{ key_buckets = {args.key_buckets} }}"
    small = f'max_buffer_bytes = "{args.small_buffer}"'
    if args.commit_changes:
        # A commit per source batch (a files source commits when `max_age` has passed).
        small = f'batch_size = {args.commit_changes}\nmax_age = "1ms"'
        args.small_buffer = f"{args.commit_changes} changes"
    # name: (work directory, upsert?, writer settings, partitioning)
    runs = {
        "append (the rows)": ("append", False, "", daily),
        "upsert": ("upsert", True, "", daily),
        f"upsert, commits of {args.small_buffer}": ("upsert-small", True, small, daily),
        f"upsert, {args.key_buckets} key buckets": ("upsert-buckets", True, "", buckets),
        f"upsert, {args.key_buckets} key buckets, commits of {args.small_buffer}":
            ("upsert-buckets-small", True, small, buckets),
    }
    results = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, (slug, upsert, writer, partition) in runs.items():
            work = out / f"cdc-{slug}"
            m = run(args, work, data, upsert, writer, partition)
            check(args, work, model, upsert)
            results[name].append(m)
    lines = [
        f"{args.changes:,} Debezium change events over {args.keys:,} keys "
        f"({in_bytes / 1e6:.0f} MB of JSON; final state {model['rows']:,} rows), files source "
        f"into Delta; median of {args.repeat} alternated runs each.",
        "",
        "| run | changes/s | wall s | CPU s | CPU µs per change | vs append (CPU) | commits | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = statistics.median(m["cpu_s"] for m in results["append (the rows)"])
    for name, ms in results.items():
        wall = statistics.median(m["wall_s"] for m in ms)
        cpu = statistics.median(m["cpu_s"] for m in ms)
        rss = max(m["peak_rss_mib"] for m in ms)
        commits = statistics.median(m["commits"] or 0 for m in ms)
        lines.append(f"| {name} | {args.changes / wall:,.0f} | {wall:.1f} | {cpu:.1f} "
                     f"| {cpu / args.changes * 1e6:.2f} | {cpu / base:.2f}x | {commits:.0f} | {rss:.0f} |")
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cdc.md").write_text(text + "\n")
    (out / "cdc.json").write_text(json.dumps({"model": model, "runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
