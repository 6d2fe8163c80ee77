#!/usr/bin/env python3
"""Reads one version of a kappa-lake table with independent readers and prints what each saw.

    read_lake.py --format delta|parquet --path LAKE/TABLE/vN [--id id] [--readers duckdb,deltars,...]
                 [--storage-options '{"aws_endpoint": ...}']   (a URL path: s3://…, az://…)

For every reader, one JSON object: rows, distinct ids, sum/min/max of the id column and, when
the table has Kafka metadata columns, distinct (_kafka_partition, _kafka_offset) pairs. The
tests compare readers with each other and with what was produced. Readers:
  delta:   duckdb (delta extension, `delta_scan`), deltars (Python `deltalake`), polars
           (`read_delta`), pyarrow (dataset from delta-rs)
  parquet: duckdb (`read_parquet`, hive partitioning), pyspark (local[2]), pyarrow (dataset)
"""

import argparse
import json
import os
import sys
import sysconfig


def summarize_duckdb(con, rel, id_col):
    cols = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    pairs = (
        "count(DISTINCT (_kafka_partition, _kafka_offset))"
        if "_kafka_offset" in cols
        else "NULL"
    )
    row = con.sql(
        f"SELECT count(*), count(DISTINCT {id_col}), sum({id_col}), min({id_col}), "
        f"max({id_col}), {pairs} FROM {rel}"
    ).fetchone()
    return dict(zip(["rows", "distinct_ids", "sum", "min", "max", "distinct_offsets"], row))


def connect():
    """A DuckDB connection that never draws its progress bar (stdout must stay pure JSON)."""
    import duckdb

    con = duckdb.connect()
    con.sql("SET enable_progress_bar = false")
    return con


def summarize_arrow(table, id_col):
    """Summary of a pyarrow Table, computed with DuckDB over Arrow (no file access)."""
    con = connect()
    con.register("t", table)
    return summarize_duckdb(con, "t", id_col)


def duckdb_delta(path, id_col):
    con = connect()
    ext = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions")
    con.sql(f"SET extension_directory = '{ext}'")
    con.sql("LOAD delta")
    return summarize_duckdb(con, f"delta_scan('{path}')", id_col)


def duckdb_parquet(path, id_col):
    con = connect()
    rel = f"read_parquet('{path}/**/*.parquet', hive_partitioning = true)"
    return summarize_duckdb(con, rel, id_col)


# Object-store options for URL paths (s3://, az://): set by --storage-options.
STORAGE_OPTIONS = None


def deltars(path, id_col):
    from deltalake import DeltaTable

    dt = DeltaTable(path, storage_options=STORAGE_OPTIONS)
    out = summarize_arrow(dt.to_pyarrow_table(), id_col)
    out["delta_version"] = dt.version()
    if "://" not in path:
        out["checkpoints"] = sorted(
            f for f in os.listdir(os.path.join(path, "_delta_log")) if "checkpoint" in f
        )
    return out


def polars_delta(path, id_col):
    import polars as pl

    return summarize_arrow(pl.read_delta(path).to_arrow(), id_col)


def pyarrow_delta(path, id_col):
    from deltalake import DeltaTable

    return summarize_arrow(DeltaTable(path).to_pyarrow_dataset().to_table(), id_col)


def pyarrow_parquet(path, id_col):
    import pyarrow.dataset as ds

    # pyarrow skips files and directories starting with `_` or `.` (our logs and leases).
    return summarize_arrow(ds.dataset(path, format="parquet", partitioning="hive").to_table(), id_col)


def pyspark_parquet(path, id_col):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("kappa-lake-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    try:
        df = spark.read.parquet(path)
        df.createOrReplaceTempView("t")
        pairs = (
            "count(DISTINCT _kafka_partition, _kafka_offset)"
            if "_kafka_offset" in df.columns
            else "NULL"
        )
        row = spark.sql(
            f"SELECT count(*), count(DISTINCT {id_col}), sum({id_col}), min({id_col}), "
            f"max({id_col}), {pairs} FROM t"
        ).collect()[0]
        return dict(zip(["rows", "distinct_ids", "sum", "min", "max", "distinct_offsets"], list(row)))
    finally:
        spark.stop()


READERS = {
    "delta": {
        "duckdb": duckdb_delta,
        "deltars": deltars,
        "polars": polars_delta,
        "pyarrow": pyarrow_delta,
    },
    "parquet": {
        "duckdb": duckdb_parquet,
        "pyarrow": pyarrow_parquet,
        "pyspark": pyspark_parquet,
    },
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", choices=["delta", "parquet"], required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--id", default="id")
    ap.add_argument("--readers", help="comma-separated subset (default: all of the format)")
    ap.add_argument("--storage-options", help="JSON object of object-store options (deltars)")
    args = ap.parse_args()
    global STORAGE_OPTIONS
    if args.storage_options:
        STORAGE_OPTIONS = json.loads(args.storage_options)
    available = READERS[args.format]
    names = args.readers.split(",") if args.readers else list(available)
    out = {}
    for name in names:
        if name not in available:
            sys.exit(f"unknown reader {name!r} for {args.format}; have {sorted(available)}")
        out[name] = available[name](args.path, args.id)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
