#!/usr/bin/env python3
"""Replay benchmark for the raw archive: a rebuild reading the archive against the same rebuild
reading the broker, for the same records.

Produces --events page views (scripts/bench.py's generator) to a fresh topic on the broker
(--brokers, e.g. the tansu broker scripts/services.sh starts), then `run --stop-at-end` builds
both tables of one config: the raw archive of the topic (`encoding = "raw"`) and `page_views`
(JSON, `archive = "page_views_raw"`). Each measured run copies that lake and rebuilds
`page_views` with a changed definition (daily instead of hourly partitions) until it has caught
up with v1: `rebuild --source topic` (every record from the broker) and `rebuild --source
archive` (every record from the archive, nothing left in the topic), alternated --repeat times.
Reports events/s, wall and CPU seconds (median) and the ratio, and writes `archive.md` and
`archive.json` under --out.

  scripts/bench.sh's build and services, then:
  python3 scripts/bench_archive.py --bin target/release/kappa-lake --brokers 127.0.0.1:9092
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the event generator, the producer and the measured-process helper)

CONFIG = """[[table]]
name = "page_views"
root = "lake"
schema = "{schema}"
time = {{ field = "ts", granularity = "{granularity}" }}
metadata_columns = false

[table.source]
kind = "kafka"
brokers = "{brokers}"
topic = "{topic}"
group_id = "{topic}"
archive = "page_views_raw"

[[table]]
name = "page_views_raw"
root = "lake"
time = {{ source = "kafka", granularity = "day" }}

[table.source]
kind = "kafka"
brokers = "{brokers}"
topic = "{topic}"
group_id = "{topic}-raw"
encoding = "raw"
"""


def write_config(work: Path, args, topic, granularity):
    schema = bench.REPO / "schemas" / "page_views.avsc"
    (work / "kappa-lake.toml").write_text(CONFIG.format(
        schema=schema, granularity=granularity, brokers=args.brokers, topic=topic))


def status(args, work: Path):
    out = subprocess.run(
        [args.bin, "status", "--config", str(work / "kappa-lake.toml"), "--json"],
        cwd=work, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["tables"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(bench.REPO / "target/release/kappa-lake"))
    ap.add_argument("--brokers", required=True, help="Kafka bootstrap servers")
    ap.add_argument("--out", default=str(bench.REPO / "target/bench"))
    ap.add_argument("--events", type=int, default=500_000, help="~250 B page views")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    args.bin = str(Path(args.bin).resolve())
    out = Path(args.out).resolve()
    data = out / "data" / f"page_views-{args.events}"
    bench.generate("page_views", args.events, 4, 0.0, data)

    base = out / "archive-base"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    topic = f"bench-archive-{uuid.uuid4().hex[:8]}"
    bench.produce_files(args.brokers, topic, args.partitions, sorted(data.glob("*.ndjson")))
    write_config(base, args, topic, "hour")
    env = dict(os.environ, KAPPA_LAKE_LOG="warn")
    bench.measure([args.bin, "run", "--config", str(base / "kappa-lake.toml"), "--stop-at-end"],
                  env=env, cwd=base, log=base / "run.log")
    rows = {t["name"]: t["versions"][0]["rows"] for t in status(args, base)}
    if set(rows.values()) != {args.events}:
        sys.exit(f"run did not build both tables whole: {rows}")

    runs = {"topic": [], "archive": []}
    for i in range(args.repeat):
        for source in ("topic", "archive"):
            work = out / f"archive-{source}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(base, work)
            write_config(work, args, topic, "day")
            m = bench.measure(
                [args.bin, "rebuild", "--config", str(work / "kappa-lake.toml"),
                 "--table", "page_views", "--source", source],
                env=env, cwd=work, log=work / f"rebuild-{i}.log",
            )
            built = status(args, work)[0]["versions"][-1]
            if built["rows"] != args.events:
                sys.exit(f"rebuild --source {source}: {built['rows']} rows, not {args.events}")
            runs[source].append(m)
            print(f"{source} #{i}: {m['wall_s']:.1f} s wall, {m['cpu_s']:.1f} CPU s", flush=True)

    lines = [
        f"{args.events:,} page views on {args.partitions} partitions; `rebuild` of a changed "
        f"definition up to v1, median of {args.repeat} alternated runs each (release build).",
        "",
        "| replay from | events/s | wall s | CPU s | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    med = {}
    for source, ms in runs.items():
        wall = statistics.median(m["wall_s"] for m in ms)
        cpu = statistics.median(m["cpu_s"] for m in ms)
        rss = max(m["peak_rss_mib"] for m in ms)
        med[source] = wall
        lines.append(f"| {source} | {args.events / wall:,.0f} | {wall:.1f} | {cpu:.1f} | {rss:.0f} |")
    lines.append("")
    lines.append(f"Replay from the archive: {med['topic'] / med['archive']:.2f}x the events/s of the broker.")
    text = "\n".join(lines)
    print(text)
    (out / "archive.md").write_text(text + "\n")
    (out / "archive.json").write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
