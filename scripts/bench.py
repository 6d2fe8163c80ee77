#!/usr/bin/env python3
"""End-to-end benchmark: kappa-lake against DuckDB and Polars on the same events, cores and output.

Generates NDJSON events from the shipped schemas (page views of ~250 B and orders of ~2 KB,
spread over 48 hourly partitions, a fraction of them late), then measures in one invocation:

  - rebuild path: files source (NDJSON) -> hourly zstd Parquet, and -> Delta;
  - baseline: DuckDB `COPY (SELECT ... FROM read_ndjson(...)) TO ... (FORMAT parquet,
    PARTITION_BY (date, hour), COMPRESSION zstd)` with the same threads;
  - second peer: Polars `scan_ndjson(...).sink_parquet(PartitionBy(..., key=[date, hour]),
    compression="zstd")` with POLARS_MAX_THREADS at the same threads;
  - Kafka path (with --brokers): the events produced to a topic first, then the
    consume-to-committed phase of `kappa-lake run --stop-at-end` into Delta, against the
    files path on the same events (--kafka-repeat alternating pairs, medians compared);
  - memory: the Parquet rebuild at 1x, 4x and 16x a base size, to show peak RSS stays flat.

Every measured run is a child process reaped with wait4(), so CPU seconds and peak RSS are
that process's own. Writes `results.md` and `results.json` under --out and prints the table.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_US = 1_795_651_200_000_000  # 2026-11-26T00:00:00Z
HOURS = 48


# ---------------------------------------------------------------------------------------
# Event generation

def page_view(rng, i, late):
    hour = (i * HOURS) // late[1]
    if late[0] and rng.random() < late[0]:
        hour = max(0, hour - rng.randint(1, 6))
    ts = START_US + hour * 3_600_000_000 + rng.randrange(3_600_000_000)
    user = "null" if i % 4 == 0 else str(rng.randrange(10_000_000))
    ref = "null" if i % 3 else f'"https://search.example.org/q?{rng.randrange(100000)}"'
    kind = ("desktop", "mobile", "tablet")[i % 3]
    os_ = ("Linux", "Windows 11", "macOS 15", "iOS 18", "Android 15")[i % 5]
    return (
        f'{{"view_id":"{uuid.UUID(int=rng.getrandbits(128), version=4)}","user_id":{user},'
        f'"ts":{ts},"url":"https://shop.example.com/p/{rng.randrange(100000)}?ref=bench",'
        f'"referrer":{ref},"duration_ms":{rng.randrange(60000)},'
        f'"device":{{"kind":"{kind}","os":"{os_}"}}}}\n'
    )


def order(rng, i, late):
    hour = (i * HOURS) // late[1]
    if late[0] and rng.random() < late[0]:
        hour = max(0, hour - rng.randint(1, 6))
    ts = START_US // 1000 + hour * 3_600_000 + rng.randrange(3_600_000)
    items = ",".join(
        f'{{"sku":"SKU-{rng.randrange(100000):06d}","quantity":{rng.randint(1, 9)},'
        f'"unit_price":{rng.randrange(100, 50000) / 100}}}'
        for _ in range(32)
    )
    status = ("created", "paid", "shipped", "cancelled")[i % 4]
    shipping = (
        "null"
        if i % 5 == 0
        else f'{{"country":"DE","city":"City {rng.randrange(1000)}","zip":"{rng.randrange(99999):05d}"}}'
    )
    coupon = '"WELCOME10"' if i % 7 == 0 else "null"
    return (
        f'{{"order_id":{i},"customer_id":"C{rng.randrange(1000000):07d}","ts":{ts},'
        f'"status":"{status}","amount":"{rng.randrange(1, 20000)}.{rng.randrange(100):02d}",'
        f'"currency":"EUR","items":[{items}],"shipping":{shipping},"coupon":{coupon},'
        f'"tags":{{"channel":"web","campaign":"bench-{i % 13}"}}}}\n'
    )


DATASETS = {
    # name: (schema file, generator, DuckDB column types, timestamp expression)
    "page_views": (
        "page_views.avsc",
        page_view,
        "{view_id: 'VARCHAR', user_id: 'BIGINT', ts: 'BIGINT', url: 'VARCHAR', "
        "referrer: 'VARCHAR', duration_ms: 'INTEGER', "
        "device: 'STRUCT(kind VARCHAR, os VARCHAR)'}",
        "make_timestamp(ts)",
    ),
    "orders": (
        "orders.avsc",
        order,
        "{order_id: 'BIGINT', customer_id: 'VARCHAR', ts: 'BIGINT', status: 'VARCHAR', "
        "amount: 'DECIMAL(12,2)', currency: 'VARCHAR', "
        "items: 'STRUCT(sku VARCHAR, quantity INTEGER, unit_price DOUBLE)[]', "
        "shipping: 'STRUCT(country VARCHAR, city VARCHAR, zip VARCHAR)', coupon: 'VARCHAR', "
        "tags: 'MAP(VARCHAR, VARCHAR)'}",
        "epoch_ms(ts)",
    ),
}


def generate(kind, events, files, late, out: Path):
    """`events` events of `kind` in `files` NDJSON files under `out` (cached by parameters)."""
    stamp = out / ".done"
    want = f"{kind} {events} {files} {late}"
    if stamp.exists() and stamp.read_text() == want:
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    gen = DATASETS[kind][1]
    rng = random.Random(42)
    per_file = -(-events // files)
    for f in range(files):
        lo, hi = f * per_file, min(events, (f + 1) * per_file)
        with open(out / f"{kind}-{f:03d}.ndjson", "w", buffering=1 << 20) as fh:
            fh.writelines(gen(rng, i, (late, events)) for i in range(lo, hi))
    stamp.write_text(want)


def input_bytes(d: Path):
    return sum(p.stat().st_size for p in d.glob("*.ndjson"))


# ---------------------------------------------------------------------------------------
# Measured runs

def process_cpu_s(pid):
    """CPU seconds (user + system, all threads) the running process `pid` has used so far;
    None once it has exited (it is not reaped here: wait4 does that)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    if fields[0] == "Z":
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(cmd, env=None, cwd=None, log=None, mark=None):
    """Runs `cmd`; returns wall seconds, CPU seconds and peak RSS (MiB) of that process.

    With `mark` (a text its log prints once), also the CPU seconds it had used when the mark
    appeared (`cpu_s_at_mark`, sampled every 20 ms)."""
    out = open(log, "w") if log else subprocess.DEVNULL
    # The previous run's output is written back first, not on this run's cores: without it
    # the second of two back-to-back runs was 20-30 % slower, whichever tool it was.
    os.sync()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    at_mark = None
    while mark and at_mark is None:
        cpu = process_cpu_s(proc.pid)
        if cpu is None:
            break
        if mark in Path(log).read_text(errors="replace"):
            at_mark = cpu
        time.sleep(0.02)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if log:
        out.close()
    if proc.returncode != 0:
        tail = Path(log).read_text()[-4000:] if log else ""
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{tail}")
    measured = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }
    if at_mark is not None:
        measured["cpu_s_at_mark"] = at_mark
    return measured


def output_stats(d: Path):
    files = [p for p in d.rglob("*.parquet")]
    return sum(p.stat().st_size for p in files), len(files)


def kappa_config(work: Path, kind, source_toml, fmt, writer=""):
    schema = REPO / "schemas" / DATASETS[kind][0]
    cfg = work / "kappa-lake.toml"
    cfg.write_text(
        f"""[[table]]
name = "{kind}"
root = "lake"
format = "{fmt}"
schema = "{schema}"
time = {{ field = "ts", granularity = "hour" }}
metadata_columns = false

[table.source]
{source_toml}

[table.writer]
{writer}
"""
    )
    return cfg


def run_kappa(args, work: Path, kind, data: Path, fmt, writer=""):
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = kappa_config(work, kind, f'kind = "files"\npath = "{data}"', fmt, writer)
    env = dict(os.environ, KAPPA_LAKE_LOG="warn")
    m = measure([args.bin, "run", "--config", str(cfg)], env=env, cwd=work, log=work / "run.log")
    m["output_bytes"], m["files"] = output_stats(work / "lake" / kind / "v1")
    return m


def run_duckdb(args, work: Path, kind, data: Path):
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _, _, columns, ts = DATASETS[kind]
    sql = f"""
SET threads = {args.threads};
SET preserve_insertion_order = false;
COPY (
  SELECT *, CAST({ts} AS DATE) AS date, hour({ts}) AS hour
  FROM read_ndjson('{data}/*.ndjson', columns = {columns}, format = 'newline_delimited')
) TO '{work}/out' (FORMAT parquet, PARTITION_BY (date, hour), COMPRESSION zstd);
"""
    code = f"import duckdb; duckdb.connect().execute({sql!r})"
    m = measure([args.python, "-c", code], log=work / "duckdb.log")
    m["output_bytes"], m["files"] = output_stats(work / "out")
    return m


# Polars: the same columns as DuckDB's, the timestamp each partition is cut by, and a column
# made to match DuckDB's type.
POLARS = {
    "page_views": (
        """{"view_id": pl.String, "user_id": pl.Int64, "ts": pl.Int64, "url": pl.String,
            "referrer": pl.String, "duration_ms": pl.Int32,
            "device": pl.Struct({"kind": pl.String, "os": pl.String})}""",
        'pl.from_epoch("ts", time_unit="us")',
        'pl.col("duration_ms")',
    ),
    "orders": (
        """{"order_id": pl.Int64, "customer_id": pl.String, "ts": pl.Int64, "status": pl.String,
            "amount": pl.String, "currency": pl.String,
            "items": pl.List(pl.Struct({"sku": pl.String, "quantity": pl.Int32,
                                        "unit_price": pl.Float64})),
            "shipping": pl.Struct({"country": pl.String, "city": pl.String, "zip": pl.String}),
            "coupon": pl.String,
            "tags": pl.Struct({"channel": pl.String, "campaign": pl.String})}""",
        'pl.from_epoch("ts", time_unit="ms")',
        # DuckDB reads the JSON string as DECIMAL(12,2); the generator's tags have two keys.
        'pl.col("amount").cast(pl.Decimal(12, 2))',
    ),
}


def run_polars(args, work: Path, kind, data: Path):
    """Polars `scan_ndjson` → zstd Parquet partitioned by date and hour (a second peer)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    schema, ts, cast = POLARS[kind]
    code = f"""
import polars as pl
t = {ts}
(pl.scan_ndjson({str(data / '*.ndjson')!r}, schema={schema})
   .with_columns({cast}, t.dt.date().alias("date"), t.dt.hour().alias("hour"))
   .sink_parquet(pl.PartitionBy({str(work / 'out')!r}, key=["date", "hour"], include_key=False),
                 compression="zstd", mkdir=True))
"""
    env = dict(os.environ, POLARS_MAX_THREADS=str(args.threads))
    m = measure([args.python, "-c", code], env=env, log=work / "polars.log")
    m["output_bytes"], m["files"] = output_stats(work / "out")
    return m


def produce_files(brokers, topic, partitions, files):
    """Produces every line of `files` to a new `topic`, round robin over its partitions."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(timeout=60)
    producer = Producer({
        "bootstrap.servers": brokers,
        "linger.ms": 50,
        "batch.size": 1 << 20,
        "queue.buffering.max.kbytes": 1 << 20,
        "enable.idempotence": True,
    })
    failed = []

    def report(err, _msg):
        if err:
            failed.append(err)

    n = 0
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                while True:
                    try:
                        producer.produce(topic, line.rstrip(b"\n"), partition=n % partitions,
                                         on_delivery=report)
                        break
                    except BufferError:
                        producer.poll(0.1)
                n += 1
                if n % 10_000 == 0:
                    producer.poll(0)
    left = producer.flush(300)
    if failed or left:
        sys.exit(f"producing to {topic} failed: {left} undelivered, errors {failed[:3]}")
    print(f"produced {n:,} events to {topic}", flush=True)


def produce_topic(args, kind, data: Path):
    """Produces the events to a fresh topic of 6 partitions; its name and the seconds taken."""
    topic = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    produce_files(args.brokers, topic, 6, sorted(data.glob("*.ndjson")))
    return topic, time.monotonic() - t0


def run_kafka(args, work: Path, kind, topic, group):
    """Times `run --stop-at-end` from `topic` (consumer group `group`) into Delta."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = (
        f'kind = "kafka"\nbrokers = "{args.brokers}"\ntopic = "{topic}"\n'
        f'group_id = "{group}"\n'
    )
    if args.kafka_setting:
        source += "\n[table.source.kafka]\n" + "".join(
            f'"{k}" = "{v}"\n' for k, v in (s.split("=", 1) for s in args.kafka_setting))
    cfg = kappa_config(work, kind, source, "delta", kafka_writer(args))
    env = dict(os.environ, KAPPA_LAKE_LOG="info", NO_COLOR="1")
    m = measure([args.bin, "run", "--config", str(cfg), "--stop-at-end"], env=env, cwd=work,
                log=work / "run.log", mark="partitions assigned")
    m["output_bytes"], m["files"] = output_stats(work / "lake" / kind / "v1")
    # Joining the consumer group is the broker's business (tansu takes ~20 s); the
    # consume-to-committed phase runs from the assignment to the end of the run.
    stamps = {}
    for line in (work / "run.log").read_text().splitlines():
        for event in ("partitions assigned", "run finished"):
            if event in line and event not in stamps:
                stamps[event] = datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
    if len(stamps) == 2:
        m["group_join_s"] = m["wall_s"] - (stamps["run finished"] - stamps["partitions assigned"]).total_seconds()
        m["wall_s"] -= m["group_join_s"]
    # Likewise the CPU: what the process used from the assignment on (waiting for the group
    # costs little, but start-up and metadata polls are a visible share of a short run).
    if "cpu_s_at_mark" in m:
        m["cpu_s_before_assignment"] = m.pop("cpu_s_at_mark")
        m["cpu_s"] -= m["cpu_s_before_assignment"]
    return m


def kafka_writer(args):
    """The writer settings of the Kafka run and of its files peer (the same for both)."""
    return f'max_buffer_bytes = "{args.kafka_buffer}"' if args.kafka_buffer else ""


def median_run(runs, key="cpu_s"):
    """The run with the median `key` (of an odd count; the lower middle otherwise)."""
    return sorted(runs, key=lambda m: m[key])[(len(runs) - 1) // 2]


def median_wall(runs, events):
    """The run with the median wall time, with the largest peak RSS of all and every run's
    events/s."""
    m = dict(median_run(runs, "wall_s"))
    m["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    m["events_per_s_runs"] = [events / r["wall_s"] for r in runs]
    return m


# ---------------------------------------------------------------------------------------

def row(name, kind, events, in_bytes, m, baseline=None):
    r = {
        "run": name,
        "events_kind": kind,
        "events": events,
        "input_mb": in_bytes / 1e6,
        **m,
        "events_per_s": events / m["wall_s"],
        "input_mb_per_s": in_bytes / 1e6 / m["wall_s"],
        "cpu_s_per_million": m["cpu_s"] / (events / 1e6),
        "cores_busy": m["cpu_s"] / m["wall_s"],
    }
    if baseline:
        r["vs_duckdb"] = r["events_per_s"] / baseline["events_per_s"]
    return r


def markdown(rows):
    head = ("| run | events | input MB | wall s | events/s | MB/s in | CPU-s / M events "
            "| cores busy | peak RSS MiB | output MB | files | × DuckDB | × Polars |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        ratio = f"{r['vs_duckdb']:.2f}" if "vs_duckdb" in r else "–"
        ratio += f" | {r['vs_polars']:.2f}" if "vs_polars" in r else " | –"
        lines.append(
            f"| {r['run']} | {r['events']:,} | {r['input_mb']:.0f} | {r['wall_s']:.1f} "
            f"| {r['events_per_s']:,.0f} | {r['input_mb_per_s']:.1f} | {r['cpu_s_per_million']:.2f} "
            f"| {r['cores_busy']:.2f} | {r['peak_rss_mib']:.0f} | {r['output_bytes'] / 1e6:.0f} | {r['files']} | {ratio} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "target/release/kappa-lake"))
    ap.add_argument("--python", default=sys.executable, help="a Python with duckdb and polars")
    ap.add_argument("--out", default=str(REPO / "target/bench"))
    ap.add_argument("--small-events", type=int, default=3_000_000, help="~250 B page views")
    ap.add_argument("--large-events", type=int, default=300_000, help="~2 KB orders")
    ap.add_argument("--late", type=float, default=0.05, help="fraction of late events")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    # Runs of 2-4 s on a shared machine: one round's ratio moves by ±25 % (benches/README.md).
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of the DuckDB, Polars and kappa-lake runs; medians reported")
    ap.add_argument("--brokers", help="Kafka bootstrap servers: also bench the Kafka path")
    # A million: the ratio is per million events, and at 300,000 the consume phase lasts
    # ~1.7 s, so its fixed costs (the first fetches, the Delta commit, the end-of-partition
    # check) count for as much as a third of the difference from the files path.
    ap.add_argument("--kafka-events", type=int, default=1_000_000)
    ap.add_argument("--kafka-setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka setting for the Kafka run's consumer "
                         "([table.source.kafka]); repeatable")
    # Until 2026-12-04 both paths also committed when the open files passed max_buffer_bytes
    # by what was still encoding, so at the default 256 MiB one run of a pair committed once
    # (48 files) and another twice (69-76 files); this defaulted to 1GiB then. Now the file
    # writer alone bounds its open files, and both write 48 files at the default.
    ap.add_argument("--kafka-buffer", default="",
                    help="max_buffer_bytes of the Kafka run and its files peer ('' for the "
                         "default)")
    # The Kafka figure is a ratio of two short runs on a shared machine: each side is run
    # this many times (the topic is produced once, each consume a new group) and the runs
    # with the median CPU are compared; every run's figure is in results.json.
    ap.add_argument("--kafka-repeat", type=int, default=3)
    args = ap.parse_args()
    if bad := [s for s in args.kafka_setting if "=" not in s]:
        ap.error(f"--kafka-setting takes KEY=VALUE, not {bad[0]!r}")
    args.bin = str(Path(args.bin).resolve())
    out = Path(args.out).resolve()
    data = out / "data"
    rows = []
    timings = {}

    for kind, events in (("page_views", args.small_events), ("orders", args.large_events)):
        t = time.monotonic()
        d = data / f"{kind}-{events}"
        generate(kind, events, 16, args.late, d)
        timings[f"generate {kind}"] = time.monotonic() - t
        size = input_bytes(d)
        print(f"{kind}: {events:,} events, {size / 1e6:.0f} MB ({size / events:.0f} B/event)", flush=True)
        # Rounds of the four runs in turn, so a slow spell of the machine falls on all of
        # them; each row is its tool's median run by wall time (peak RSS: the largest).
        runs = {"duckdb": [], "polars": [], "parquet": [], "delta": []}
        for _ in range(max(1, args.repeat)):
            runs["duckdb"].append(run_duckdb(args, out / "runs" / f"duckdb-{kind}", kind, d))
            runs["polars"].append(run_polars(args, out / "runs" / f"polars-{kind}", kind, d))
            for fmt in ("parquet", "delta"):
                runs[fmt].append(run_kappa(args, out / "runs" / f"kappa-{fmt}-{kind}", kind,
                                           d, fmt))
        median = {tool: median_wall(ms, events) for tool, ms in runs.items()}
        duck = row(f"DuckDB COPY → Parquet ({kind})", kind, events, size, median["duckdb"])
        duck["vs_duckdb"] = 1.0
        rows.append(duck)
        polars = row(f"Polars scan_ndjson → Parquet ({kind})", kind, events, size,
                     median["polars"], duck)
        rows.append(polars)
        for fmt in ("parquet", "delta"):
            r = row(f"kappa-lake files → {fmt} ({kind})", kind, events, size, median[fmt], duck)
            r["vs_polars"] = r["events_per_s"] / polars["events_per_s"]
            rows.append(r)
        print(markdown(rows[-4:]), flush=True)

    if args.brokers:
        kind = "page_views"
        d = data / f"{kind}-kafka-{args.kafka_events}"
        generate(kind, args.kafka_events, 4, args.late, d)
        size = input_bytes(d)
        topic, timings["produce to the broker"] = produce_topic(args, kind, d)
        # Alternating, so a slow spell of the machine falls on both sides.
        kafka_runs, files_runs = [], []
        for i in range(max(1, args.kafka_repeat)):
            kafka_runs.append(run_kafka(args, out / "runs" / f"kafka-{i}", kind, topic,
                                        f"{topic}-{i}"))
            # The files path on the same events, for the CPU per event of the Kafka path.
            files_runs.append(run_kappa(args, out / "runs" / f"kafka-peer-{i}", kind, d,
                                        "delta", kafka_writer(args)))
        timings["join the consumer group (excluded, each run)"] = statistics.mean(
            m.pop("group_join_s", 0.0) for m in kafka_runs)
        kafka = row(f"kappa-lake Kafka → delta ({kind}), consume to committed", kind,
                    args.kafka_events, size, median_run(kafka_runs))
        files = row(f"kappa-lake files → delta ({kind}), the Kafka run's events", kind,
                    args.kafka_events, size, median_run(files_runs))
        kafka["cpu_vs_files"] = kafka["cpu_s_per_million"] / files["cpu_s_per_million"]
        kafka["cpu_s_per_million_runs"] = [m["cpu_s"] / (args.kafka_events / 1e6)
                                           for m in kafka_runs]
        files["cpu_s_per_million_runs"] = [m["cpu_s"] / (args.kafka_events / 1e6)
                                           for m in files_runs]
        rows.extend([kafka, files])
        print(markdown(rows[-2:]), flush=True)
        print(f"Kafka CPU per event: {kafka['cpu_vs_files']:.2f}x the files path's", flush=True)

    # Memory: page views at 1/16, 1/4 and all of the main set, each spread over the same 48
    # hours with the same late fraction (so the same partitions are open at every size), with a
    # smaller buffer budget.
    memory = []
    for k in (1, 4, 16):
        events = args.small_events * k // 16
        d = data / f"page_views-{events}"
        generate("page_views", events, k, args.late, d)
        m = run_kappa(args, out / "runs" / f"scale-{k}x", "page_views", d, "parquet",
                      'max_buffer_bytes = "64MiB"')
        memory.append(row(f"memory: files → parquet, {k}× the data, max_buffer_bytes 64MiB",
                          "page_views", events, input_bytes(d), m))
    rows.extend(memory)

    table = markdown(rows)
    rss = [r["peak_rss_mib"] for r in memory]
    summary = (
        f"Peak RSS at 1×/4×/16×: {rss[0]:.0f} / {rss[1]:.0f} / {rss[2]:.0f} MiB "
        f"(16× is {rss[2] / rss[0]:.2f}× the 1× figure)."
    )
    for kind in ("page_views", "orders"):
        duck = next(r for r in rows if r["run"] == f"DuckDB COPY → Parquet ({kind})")
        rounds = "; ".join(
            f"{fmt} " + " / ".join(f"{k / d:.2f}" for k, d in
                                   zip(r["events_per_s_runs"], duck["events_per_s_runs"]))
            for fmt in ("parquet", "delta")
            for r in rows if r["run"] == f"kappa-lake files → {fmt} ({kind})")
        summary += (f"\n{kind}: medians of {len(duck['events_per_s_runs'])} rounds; "
                    f"× DuckDB round by round: {rounds}.")
    kafka = [r for r in rows if "cpu_vs_files" in r]
    if kafka:
        k = kafka[0]
        f = next(r for r in rows if r["run"].endswith("the Kafka run's events"))

        def each(r):
            return " / ".join(f"{c:.2f}" for c in r["cpu_s_per_million_runs"])
        summary += (f"\nKafka → delta CPU per event: {k['cpu_vs_files']:.2f}× the files "
                    f"path's on the same events (medians of {len(k['cpu_s_per_million_runs'])} "
                    f"alternating runs each, CPU-s per million: Kafka {each(k)}, files {each(f)};"
                    f" max_buffer_bytes {args.kafka_buffer or 'default'} for both).")
    machine = f"{os.cpu_count()} CPUs, threads={args.threads}, late fraction {args.late}"
    if args.kafka_setting:
        machine += ", Kafka consumer " + ", ".join(args.kafka_setting)
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "rows": rows, "timings_s": timings}, indent=2))
    steps = "\n".join(f"- {k}: {v:.1f} s" for k, v in timings.items())
    (out / "results.md").write_text(
        f"# kappa-lake benchmark\n\n{machine}\n\n{table}\n\n{summary}\n\nOther steps:\n{steps}\n")
    print(f"\n{table}\n\n{summary}\nresults: {out / 'results.md'}, {out / 'results.json'}")


if __name__ == "__main__":
    main()
