//! Helpers shared by the integration tests: the binary, temp lakes, configs, DuckDB.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_kappa-lake");

/// A small event schema for tests that need exact control over records.
pub const EVENT_SCHEMA: &str = r#"{"type":"record","name":"Event","namespace":"test","fields":[
  {"name":"id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"name","type":["null","string"],"default":null}
]}"#;

/// The seed of a randomized test: `KAPPA_LAKE_TEST_SEED`, or a random one (printed, so a
/// failure can be replayed).
pub fn seed() -> u64 {
    use rand::Rng;
    let seed = std::env::var("KAPPA_LAKE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("seed {seed} (set KAPPA_LAKE_TEST_SEED to replay)");
    seed
}

/// A test's temporary directory, kept (and its path printed) when the test fails, so the
/// lake and the writers' logs can be read after a failure that does not reproduce at will.
pub struct Workdir(Option<tempfile::TempDir>);

impl Workdir {
    pub fn new() -> Workdir {
        Workdir(Some(tempfile::tempdir().unwrap()))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().map_or(Path::new(""), |d| d.path())
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.path()) {
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "log") {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    archive(&path.display().to_string(), &bytes);
                }
            }
        }
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!(
                "test failed: its directory is kept at {}",
                dir.keep().display()
            );
        }
    }
}

/// With `KAPPA_LAKE_TEST_LOG_ARCHIVE` set (scripts/test.sh sets it), keeps `bytes` (a log, a
/// command's output) there, so that the script can search everything kappa-lake printed.
pub fn archive(what: &str, bytes: &[u8]) {
    let Some(dir) = std::env::var_os("KAPPA_LAKE_TEST_LOG_ARCHIVE") else {
        return;
    };
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let tail = &name[name.len().saturating_sub(60)..];
    let file = format!("{}-{tail}", uuid::Uuid::new_v4().simple());
    if let Err(e) = std::fs::write(Path::new(&dir).join(file), bytes) {
        panic!("cannot archive a test log in {}: {e}", dir.display());
    }
}

/// [`archive`] for a finished command: its stdout and stderr.
pub fn archive_output(what: &str, out: &Output) {
    archive(
        what,
        &[out.stdout.as_slice(), out.stderr.as_slice()].concat(),
    );
}

/// The Python interpreter of the test venv (made by scripts/test.sh). Fails loudly if absent.
pub fn python() -> PathBuf {
    match std::env::var_os("KAPPA_LAKE_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "KAPPA_LAKE_TEST_PYTHON is not set. These tests verify the lake with real DuckDB: \
             run `scripts/test.sh`, which creates the Python venv and sets it."
        ),
    }
}

/// Runs a helper tool's `cmd` (`what` names it if it cannot start) and asserts it succeeded,
/// failing with `context` followed by its stderr.
pub fn tool_ok(cmd: &mut Command, what: &str, context: &str) -> Output {
    let out = cmd.output().expect(what);
    assert!(
        out.status.success(),
        "{context}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `sql` in DuckDB (Python package) and returns the rows as JSON arrays.
pub fn duckdb(sql: &str) -> Vec<Vec<serde_json::Value>> {
    // DuckDB's `delta` extension comes from the `duckdb-ext-delta` wheel (no download).
    let script = "import duckdb, json, os, sys, sysconfig\n\
        con = duckdb.connect()\n\
        con.sql('SET enable_progress_bar = false')\n\
        ext = os.path.join(sysconfig.get_paths()['purelib'], 'duckdb_ext', 'extensions')\n\
        con.sql(f\"SET extension_directory = '{ext}'\")\n\
        con.sql('LOAD delta')\n\
        rows = con.sql(sys.argv[1]).fetchall()\n\
        print(json.dumps([list(r) for r in rows], default=str))";
    let out = tool_ok(
        Command::new(python()).args(["-c", script, sql]),
        "start python",
        &format!("DuckDB query failed: {sql}\n"),
    );
    serde_json::from_slice(&out.stdout).expect("DuckDB output is JSON")
}

/// Runs the binary with `args`, in `dir`, with extra environment.
pub fn kappa(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env("KAPPA_LAKE_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("start kappa-lake");
    archive_output(&args.join(" "), &out);
    out
}

/// Like [`kappa`], asserting success; returns stdout.
pub fn kappa_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = kappa(dir, args, env);
    assert!(
        out.status.success(),
        "kappa-lake {args:?} failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Writes `kappa-lake.toml` for table `events` over a files source, with extra writer lines.
pub fn write_config(dir: &Path, schema: &str, time: &str, writer: &str) -> PathBuf {
    crate::fixture::TableConfig::files()
        .schema(schema)
        .time(time)
        .writer(writer)
        .write_to(dir)
}

/// `status --json` of the config in `dir`.
pub fn status_json(dir: &Path) -> serde_json::Value {
    crate::fixture::Cli::new(dir).status_json()
}

/// The first table's current version (0: none), from `status --json`.
pub fn current(dir: &Path) -> u64 {
    status_json(dir)["tables"][0]["current"]
        .as_u64()
        .unwrap_or(0)
}

/// Definition B of a test config: the same events, partitioned by day instead of by hour.
pub fn switch_to_daily(dir: &Path) {
    let path = dir.join("kappa-lake.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("granularity = \"hour\"", "granularity = \"day\""),
    )
    .unwrap();
}

/// DuckDB's table expression for version `v` of `table` under `lake`: `delta_scan` for a Delta
/// version (reads through the Delta log), a hive-partitioned glob for a Parquet one.
pub fn scan(lake: &Path, table: &str, v: u32, format: &str) -> String {
    let path = sql_path(&lake.join(table).join(format!("v{v}")));
    match format {
        "delta" => format!("delta_scan('{path}')"),
        _ => format!("read_parquet('{path}/**/*.parquet', hive_partitioning = true)"),
    }
}

/// A path as a SQL string literal body.
pub fn sql_path(p: &Path) -> String {
    p.display().to_string().replace('\'', "''")
}

/// Reads version `v` of `table` under `dir/lake` with `scripts/read_lake.py`: one summary per
/// reader (`rows`, `distinct_ids`, `sum`, `min`, `max`, `distinct_offsets`).
pub fn read_lake(
    dir: &Path,
    table: &str,
    v: u32,
    format: &str,
    readers: &[&str],
    id: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_lake.py");
    let path = dir.join("lake").join(table).join(format!("v{v}"));
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .args(["--format", format, "--id", id])
        .arg("--path")
        .arg(&path);
    if !readers.is_empty() {
        cmd.args(["--readers", &readers.join(",")]);
    }
    let out = cmd.output().expect("start python");
    assert!(
        out.status.success(),
        "reading {} with {readers:?} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).expect("read_lake.py prints JSON") {
        serde_json::Value::Object(m) => m,
        other => panic!("read_lake.py printed {other}"),
    }
}

/// The format of version `v` (1-based) of the first table, from `status --json`.
pub fn version_format(dir: &Path, v: u32) -> String {
    let status = status_json(dir);
    status["tables"][0]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|x| x["version"] == v))
        .and_then(|x| x["format"].as_str())
        .unwrap_or_else(|| panic!("no version v{v} in status: {status}"))
        .to_string()
}
