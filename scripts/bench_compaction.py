#!/usr/bin/env python3
"""Query benchmark for `kappa-lake compact`: what small files cost a reader, and what
compaction gives back.

Writes the same page views (scripts/bench.py's generator: 48 hourly partitions, a fraction of
late events) three ways, then times one DuckDB aggregate over each with `delta_scan`:

  - small files: `run` with a tiny `max_buffer_bytes`, so every partition gets many commits'
    worth of small files (what a day of `max_age = 60s` commits leaves);
  - the same version after `kappa-lake compact` (and `vacuum`, so the files on disk are the
    ones the log lists);
  - written in one go (a large buffer): the best case.

The query runs --repeat times per table in fresh DuckDB processes; the best and median wall
times are reported, with the table's file count. Prints a markdown table and writes
`compaction.md` and `compaction.json` under --out.

With --throughput, it measures instead what `run`'s automatic compaction costs ingestion:
the same small-file `run` with `[table.maintenance] compact = "off"` and with `"auto"`
(`compact_after = "2s"`: the time-ordered events leave each hour idle soon after it is
written, so compaction runs beside the writer), alternated --repeat times; it reports events
per second and CPU seconds of each, and the files left.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the event generator and the measured-process helper)

QUERY = """
SELECT date, hour, count(*) AS views, count(DISTINCT user_id) AS users,
       avg(duration_ms) AS avg_ms, max(ts) - min(ts) AS span
FROM delta_scan('{path}')
GROUP BY ALL ORDER BY ALL
"""


def files_in_log(args, work: Path):
    out = subprocess.run(
        [args.bin, "status", "--config", str(work / "kappa-lake.toml"), "--json"],
        cwd=work, check=True, capture_output=True, text=True,
    ).stdout
    version = json.loads(out)["tables"][0]["versions"][-1]
    return sum(version["files_per_partition"].values()), version["rows"]


def time_query(args, path: Path):
    """Wall seconds of the aggregate, each run in a fresh DuckDB process; and its result."""
    code = (
        "import duckdb, json, os, sysconfig, time\n"
        "con = duckdb.connect()\n"
        # duckdb-ext-delta installs the extension into the venv (see scripts/read_lake.py).
        "ext = os.path.join(sysconfig.get_paths()['purelib'], 'duckdb_ext', 'extensions')\n"
        "con.sql(f\"SET extension_directory = '{ext}'\")\n"
        "con.sql('LOAD delta')\n"
        f"con.sql('SET threads = {args.threads}')\n"
        "t = time.monotonic()\n"
        f"rows = con.sql({QUERY.format(path=path)!r}).fetchall()\n"
        "print(json.dumps({'s': time.monotonic() - t, 'rows': len(rows), "
        "'views': sum(r[2] for r in rows)}))\n"
    )
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([args.python, "-c", code], check=True, capture_output=True, text=True)
        runs.append(json.loads(out.stdout))
    seconds = [r["s"] for r in runs]
    return {"best_s": min(seconds), "median_s": statistics.median(seconds),
            "groups": runs[0]["rows"], "views": runs[0]["views"]}


def kappa(args, work: Path, *cmd):
    return bench.measure(
        [args.bin, *cmd, "--config", str(work / "kappa-lake.toml"), "--table", "page_views"],
        cwd=work, log=work / f"{cmd[0]}.log",
    )


def throughput(args, data: Path, out: Path):
    runs = {"off": [], "auto": []}
    for _ in range(args.repeat):
        for mode in ("off", "auto"):
            work = out / f"maintenance-{mode}"
            writer = (f'max_buffer_bytes = "{args.small_buffer}"\nmax_age = "1s"\n\n'
                      f'[table.maintenance]\ncompact = "{mode}"\ncompact_after = "2s"\n'
                      'compact_min_files = 2')
            m = bench.run_kappa(args, work, "page_views", data, "delta", writer)
            m["files_left"], rows = files_in_log(args, work)
            if rows != args.events:
                sys.exit(f"{mode}: {rows} rows, not {args.events}")
            runs[mode].append(m)
    lines = [
        f"{args.events:,} page views, `run` with `max_buffer_bytes = \"{args.small_buffer}\"`, "
        f"`max_age = \"1s\"`; median of {args.repeat} alternated runs each.",
        "",
        "| maintenance | events/s | wall s | CPU s | files left |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    med = {}
    for mode, ms in runs.items():
        wall = statistics.median(m["wall_s"] for m in ms)
        cpu = statistics.median(m["cpu_s"] for m in ms)
        files = statistics.median(m["files_left"] for m in ms)
        med[mode] = wall
        lines.append(f"| {mode} | {args.events / wall:,.0f} | {wall:.1f} | {cpu:.1f} | {files:.0f} |")
    lines.append("")
    lines.append(f"Throughput with automatic compaction: {med['off'] / med['auto']:.2f}x of without.")
    text = "\n".join(lines)
    print(text)
    (out / "maintenance.md").write_text(text + "\n")
    (out / "maintenance.json").write_text(json.dumps(runs, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(bench.REPO / "target/release/kappa-lake"))
    ap.add_argument("--python", default=sys.executable, help="a Python with duckdb and its delta extension")
    ap.add_argument("--out", default=str(bench.REPO / "target/bench"))
    ap.add_argument("--events", type=int, default=1_000_000, help="~250 B page views")
    ap.add_argument("--small-buffer", default="1MiB", help="max_buffer_bytes of the small-file run (1MiB is the least allowed)")
    ap.add_argument("--late", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--throughput", action="store_true",
                    help="measure ingestion with automatic compaction on and off instead")
    args = ap.parse_args()
    args.bin = str(Path(args.bin).resolve())
    out = Path(args.out).resolve()
    data = out / "data" / f"page_views-{args.events}"
    bench.generate("page_views", args.events, 16, args.late, data)
    out.mkdir(parents=True, exist_ok=True)
    if args.throughput:
        return throughput(args, data, out)

    results = {}
    small = out / "compaction-small"
    m = bench.run_kappa(args, small, "page_views", data, "delta",
                        f'max_buffer_bytes = "{args.small_buffer}"')
    results["write with small commits"] = {"write_wall_s": m["wall_s"], "write_cpu_s": m["cpu_s"]}
    files, rows = files_in_log(args, small)
    results["small files"] = {"files": files, "rows": rows,
                              **time_query(args, small / "lake/page_views/v1")}

    c = kappa(args, small, "compact")
    v = kappa(args, small, "vacuum", "--retain", "0s", "--allow-short-retention")
    files, rows = files_in_log(args, small)
    results["after compact"] = {"files": files, "rows": rows,
                                "compact_wall_s": c["wall_s"], "compact_cpu_s": c["cpu_s"],
                                "compact_peak_rss_mib": c["peak_rss_mib"], "vacuum_wall_s": v["wall_s"],
                                **time_query(args, small / "lake/page_views/v1")}

    once = out / "compaction-once"
    bench.run_kappa(args, once, "page_views", data, "delta", 'max_buffer_bytes = "1GiB"')
    files, rows = files_in_log(args, once)
    results["written in one go"] = {"files": files, "rows": rows,
                                    **time_query(args, once / "lake/page_views/v1")}

    views = {k: r["views"] for k, r in results.items() if "views" in r}
    if len(set(views.values())) != 1 or set(views.values()) != {args.events}:
        sys.exit(f"the tables disagree on the events: {views}")

    base = results["written in one go"]["best_s"]
    lines = [
        f"{args.events:,} page views, 48 hourly partitions, {args.late:.0%} late; DuckDB "
        f"{args.threads} threads, best / median of {args.repeat} fresh processes.",
        "",
        "| table | files | query best s | query median s | best vs one go |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("small files", "after compact", "written in one go"):
        r = results[name]
        lines.append(f"| {name} | {r['files']:,} | {r['best_s']:.3f} | {r['median_s']:.3f} "
                     f"| {r['best_s'] / base:.2f}x |")
    a = results["after compact"]
    lines.append("")
    lines.append(f"`compact`: {a['compact_wall_s']:.1f} s wall, {a['compact_cpu_s']:.1f} CPU s, "
                 f"peak RSS {a['compact_peak_rss_mib']:.0f} MiB; `vacuum`: {a['vacuum_wall_s']:.1f} s.")
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compaction.md").write_text(text + "\n")
    (out / "compaction.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
