//! Avro in the Confluent wire format, end to end: an independent producer (confluent-kafka's
//! AvroSerializer and SchemaRegistryClient) writes to the real broker through a schema
//! registry speaking the Confluent REST API (`scripts/schema_registry.py`); `run` looks the
//! writer schemas up, resolves older ones against the version's schema, and dead-letters the
//! poison.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::broker::{brokers, exclusive_topic};
use crate::fixture::{Cli, TableConfig, World, events_args, mock_kafka};
use crate::kafka_support::{
    Running, kafka_config, sigterm, spawn_run_with, stored_total, wait_for,
};
use crate::support::{Workdir, duckdb, kappa, kappa_ok, python, scan, tool_ok};

/// The version's schema: `status` and `amount` were added with defaults, `name` became
/// optional, `id` was widened from `int`.
pub const ORDER_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"test","fields":[
  {"name":"id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"name","type":["null","string"],"default":null},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]},"default":"NEW"},
  {"name":"amount","type":"double","default":0.0}
]}"#;

/// What older producers wrote.
pub const OLD_ORDER_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"test","fields":[
  {"name":"id","type":"int"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"name","type":"string"},
  {"name":"legacy","type":"string"}
]}"#;

/// A running `scripts/schema_registry.py`.
pub struct Registry {
    pub url: String,
    _process: Running,
}

impl Registry {
    /// Starts the registry; `user` (`NAME:PASSWORD`) requires basic auth.
    pub fn start(user: Option<&str>, log: &Path) -> Registry {
        Registry::start_with(user, log, &[])
    }

    /// [`Registry::start`] with more arguments of `schema_registry.py`.
    pub fn start_with(user: Option<&str>, log: &Path, args: &[&str]) -> Registry {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/schema_registry.py");
        let mut cmd = Command::new(python());
        cmd.arg(script).args(["--port", "0"]).args(args);
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start schema_registry.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("schema_registry.py said {line:?}"))
            .to_string();
        Registry {
            url,
            _process: Running(child),
        }
    }
}

/// Where the producer put each record.
#[derive(serde::Deserialize)]
pub struct Produced {
    /// `[partition, offset, id]` of the good records.
    pub good: Vec<(i64, i64, i64)>,
    /// `[partition, offset, kind]` of the poison records.
    pub poison: Vec<(i64, i64, String)>,
}

/// Runs `scripts/produce_avro.py` (schemas are written into `dir/schemas`).
pub fn produce_avro(
    dir: &Path,
    topic: &str,
    registry: &Registry,
    user: &str,
    old: u32,
    new: u32,
) -> Produced {
    std::fs::write(dir.join("schemas/old.avsc"), OLD_ORDER_SCHEMA).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/produce_avro.py");
    let out = tool_ok(
        Command::new(python())
            .arg(script)
            .args([
                "--brokers",
                &brokers(),
                "--topic",
                topic,
                "--registry",
                &registry.url,
            ])
            .args(["--user", user])
            .arg("--schema")
            .arg(dir.join("schemas/events.avsc"))
            .arg("--old-schema")
            .arg(dir.join("schemas/old.avsc"))
            .args(["--old", &old.to_string(), "--new", &new.to_string()])
            .args(["--poison", "--poison-every", "500", "--huge-bytes", "4096"]),
        "start produce_avro.py",
        "produce_avro.py: ",
    );
    serde_json::from_slice(&out.stdout).expect("produce_avro.py prints JSON")
}

/// An `avro-confluent` config for table `events` over `topic`; the registry password comes
/// from the environment (see `registry_env`).
pub fn avro_config(dir: &Path, topic: &str, registry: &Registry) {
    TableConfig::kafka(&brokers(), topic)
        .schema(ORDER_SCHEMA)
        .writer("max_age = \"300ms\"")
        .source_keys(&format!(
            "encoding = \"avro-confluent\"\nmax_record_bytes = \"2KiB\"\n\n\
             [table.source.schema_registry]\nurl = \"{}\"\nusername = \"tester\"",
            registry.url
        ))
        .write_to(dir);
}

/// The real broker held with a topic of its own, a registry with basic auth (`user`), and a
/// world reading the topic as Confluent-framed Avro.
struct AvroTopic {
    // Dropped in this order: the registry stops, the work dir goes, the broker is released.
    registry: Registry,
    w: World,
    topic: String,
    user: String,
    _broker: std::sync::MutexGuard<'static, ()>,
}

fn avro_topic(prefix: &str) -> AvroTopic {
    let (_broker, topic) = exclusive_topic(prefix);
    let w = World::new();
    let user = format!("tester:{PASSWORD}");
    let registry = Registry::start(Some(&user), &w.path().join("registry.log"));
    avro_config(w.path(), &topic, &registry);
    AvroTopic {
        registry,
        w,
        topic,
        user,
        _broker,
    }
}

const PASSWORD: &str = "registry-pw-7d1e2a";

fn registry_env() -> [(&'static str, &'static str); 1] {
    [(
        "KAPPA_LAKE_TABLE__EVENTS__SOURCE__SCHEMA_REGISTRY__PASSWORD",
        PASSWORD,
    )]
}

/// The dead letters of version `v`: `(partition, offset) → (stage, reason)`.
pub fn dead_letters(dir: &Path, topic: &str, v: u32) -> BTreeMap<(i64, i64), (String, String)> {
    let mut seen = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join(format!("lake/events/_dead_letters/v{v}"))) else {
        return seen;
    };
    for entry in entries {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        for l in BufReader::new(file).lines() {
            let letter: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            let partition: i64 = letter["source"]
                .as_str()
                .and_then(|s| s.strip_prefix(&format!("{topic}/")))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("source of {letter}"));
            let key = (partition, letter["offset"].as_i64().unwrap());
            let value = (
                letter["stage"].as_str().unwrap().to_string(),
                letter["reason"].as_str().unwrap().to_string(),
            );
            assert!(
                seen.insert(key, value).is_none(),
                "dead-lettered twice: {letter}"
            );
        }
    }
    seen
}

#[test]
fn avro_confluent_topic_from_an_independent_producer_old_schemas_and_poison() {
    let t = avro_topic("avro");
    let (d, registry, topic, user) = (t.w.path(), &t.registry, &t.topic, &t.user);
    let produced = produce_avro(d, topic, registry, user, 1500, 1500);
    assert_eq!(produced.good.len(), 3000);
    assert_eq!(produced.poison.len(), 30);
    let total = (produced.good.len() + produced.poison.len()) as u64;

    let text = materialize(d, total);
    assert!(
        !text.contains(PASSWORD),
        "the registry password is in the log"
    );

    // Every good record once, old ones with the new fields' defaults.
    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT id), \
           count(*) FILTER (WHERE id < 1500 AND status = 'NEW' AND amount = 0 AND name = 'n' || id), \
           count(*) FILTER (WHERE id >= 1500 AND status = ['NEW','PAID','SHIPPED'][id % 3 + 1] \
                              AND amount = id / 4 AND name = 'n' || id), \
           count(*) FILTER (WHERE epoch_ms(ts) = {} + (id * 1000003) % 86400000) \
         FROM {}",
        crate::kafka_support::DAY_START_MS,
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(rows[0], [3000, 3000, 1500, 1500, 3000], "rows as produced");

    // Every poison record dead-lettered once, at the right stage, with the reason.
    let letters = dead_letters(d, topic, 1);
    assert_eq!(letters.len(), produced.poison.len(), "{letters:?}");
    for (partition, offset, kind) in &produced.poison {
        let (stage, reason) = letters
            .get(&(*partition, *offset))
            .unwrap_or_else(|| panic!("{kind} at {partition}/{offset} is not a dead letter"));
        let (want_stage, want_reason) = match kind.as_str() {
            "truncated" => ("decode", "truncated Avro record"),
            "unknown_id" => ("decode", "schema id 999999 is not in the schema registry"),
            "wrong_magic" => ("decode", "wrong magic byte 0x7b"),
            "huge" => ("read", "exceeds max_record_bytes"),
            "empty" => ("read", "empty record"),
            other => panic!("unknown poison kind {other}"),
        };
        assert_eq!(stage, want_stage, "{kind}: {reason}");
        assert!(reason.contains(want_reason), "{kind}: {reason}");
    }
    // Writer schemas were fetched once each, not per record.
    let lookups = std::fs::read_to_string(d.join("registry.log"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("GET /schemas/ids/"))
        .count();
    assert!(lookups <= 4, "{lookups} schema lookups");

    // The fixes: the schema the unknown id stands for is registered (imported with that id),
    // and max_record_bytes is raised. Replay lands those letters, once, at their coordinates.
    register(
        registry,
        user,
        &format!("{topic}-value"),
        &ORDER_SCHEMA.replacen(
            r#""namespace":"test","#,
            r#""namespace":"test","doc":"imported","#,
            1,
        ),
        Some(999_999),
    );
    let mut env = registry_env().to_vec();
    env.push(("KAPPA_LAKE_TABLE__EVENTS__SOURCE__MAX_RECORD_BYTES", "8KiB"));
    let replay = |env: &[(&str, &str)]| -> serde_json::Value {
        let args = events_args("dead-letters replay", &["--json"]);
        serde_json::from_str(&kappa_ok(d, &args, env)).unwrap()
    };
    let report = replay(&env);
    assert_eq!(report["letters"], 30, "{report}");
    assert_eq!(report["replayed"], 12, "{report}");
    let failing = &report["still_failing"];
    assert_eq!(
        failing
            .as_object()
            .map(|o| o.values().map(|v| v.as_u64().unwrap()).sum::<u64>()),
        Some(18),
        "{report}"
    );
    assert!(
        failing
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("decode: wrong magic byte")),
        "{report}"
    );
    let coordinates = |kinds: &[&str]| -> String {
        produced
            .poison
            .iter()
            .filter(|(_, _, k)| kinds.contains(&k.as_str()))
            .map(|(p, o, _)| format!("({p},{o})"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let count_replayed = || {
        duckdb(&format!(
            "SELECT count(*), count(*) FILTER (WHERE (_kafka_partition, _kafka_offset) IN ({})),                count(*) FILTER (WHERE length(name) > 4096) FROM {}",
            coordinates(&["huge", "unknown_id"]),
            scan(&d.join("lake"), "events", 1, "delta")
        ))
    };
    assert_eq!(
        count_replayed()[0],
        [3012, 12, 6],
        "replayed rows at their coordinates"
    );
    // A second replay has nothing left to land; the source's offsets are untouched.
    let again = replay(&env);
    assert_eq!(
        (
            again["letters"].as_u64(),
            again["already_replayed"].as_u64()
        ),
        (Some(0), Some(30)),
        "{again}"
    );
    assert_eq!(count_replayed()[0], [3012, 12, 6], "exactly once");
    let status = crate::support::status_json(d);
    let offsets = status["tables"][0]["versions"][0]["offsets"]
        .as_object()
        .unwrap()
        .clone();
    assert!(
        offsets.keys().all(|k| k.starts_with(&format!("{topic}/"))),
        "{offsets:?}"
    );
    assert_eq!(stored_total(d, 0), total);

    drop(t);
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Runs `run` (at debug level) until the version stores `total` records; returns its log.
fn materialize(d: &Path, total: u64) -> String {
    let log = "run.log";
    let mut env = registry_env().to_vec();
    env.push(("KAPPA_LAKE_LOG", "debug"));
    let mut run = spawn_run_with(d, &[], log, &env);
    let done = wait_for(Duration::from_secs(120), || stored_total(d, 0) >= total);
    sigterm(&run);
    let _ = run.wait();
    let text = std::fs::read_to_string(d.join(log)).unwrap();
    assert!(
        done,
        "stored {} of {total}:\n{}",
        stored_total(d, 0),
        tail(&text)
    );
    text
}

/// Registers `schema` under `subject` (as a producer's serializer would), with id `id` if
/// given (as in the registry's IMPORT mode).
fn register(registry: &Registry, user: &str, subject: &str, schema: &str, id: Option<u32>) {
    let script = "import base64, json, sys, urllib.request\n\
        url, user, schema, sid = sys.argv[1:5]\n\
        body = {'schema': schema} if sid == '' else {'schema': schema, 'id': int(sid)}\n\
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST')\n\
        req.add_header('Content-Type', 'application/vnd.schemaregistry.v1+json')\n\
        req.add_header('Authorization', 'Basic ' + base64.b64encode(user.encode()).decode())\n\
        print(urllib.request.urlopen(req).read().decode())";
    let out = Command::new(python())
        .args(["-c", script])
        .arg(format!("{}/subjects/{subject}/versions", registry.url))
        .args([user, schema, &id.map_or(String::new(), |i| i.to_string())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "register: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `schema check --config F --table T` compares the version with the registry subject's latest
/// schema and names the offending field; `plan` refuses to evolve an Avro version in place with
/// a schema that could not read older events.
#[test]
fn schema_check_and_plan_judge_the_registry_subject_by_avro_rules() {
    let t = avro_topic("avrocheck");
    let (d, registry, topic, user) = (t.w.path(), &t.registry, &t.topic, &t.user);
    let produced = produce_avro(d, topic, registry, user, 0, 100);
    materialize(d, (produced.good.len() + produced.poison.len()) as u64);
    let subject = format!("{topic}-value");
    let env = registry_env();
    let check = |level: &str| {
        let args = events_args("schema check", &["--level", level]);
        let out = kappa(d, &args, &env);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };

    // The subject's latest is the version's own schema.
    let (code, text) = check("full");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("subject `{subject}` version")),
        "{text}"
    );
    assert!(text.contains("FULL"), "{text}");

    // An optional field without a default: the new schema cannot read older events.
    let no_default = ORDER_SCHEMA.replace(
        r#"{"name":"amount","type":"double","default":0.0}"#,
        r#"{"name":"amount","type":"double","default":0.0},{"name":"coupon","type":["null","string"]}"#,
    );
    register(registry, user, &subject, &no_default, None);
    let (code, text) = check("backward");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FORWARD"), "{text}");
    assert!(text.contains("not BACKWARD: field `coupon`"), "{text}");
    std::fs::write(d.join("schemas/events.avsc"), &no_default).unwrap();
    let plan = Cli::new(d).envs(&env).cmd_ok("plan", &[]);
    assert!(plan.contains("rebuild into v2"), "{plan}");
    assert!(plan.contains("not BACKWARD compatible"), "{plan}");
    assert!(plan.contains("`coupon`"), "{plan}");

    // With a default it is FULL, and the Delta version evolves in place.
    let with_default = no_default.replace(
        r#"{"name":"coupon","type":["null","string"]}"#,
        r#"{"name":"coupon","type":["null","string"],"default":null}"#,
    );
    register(registry, user, &subject, &with_default, None);
    let (code, text) = check("full");
    assert_eq!(code, Some(0), "{text}");
    std::fs::write(d.join("schemas/events.avsc"), &with_default).unwrap();
    let plan = Cli::new(d).envs(&env).cmd_ok("plan", &[]);
    assert!(plan.contains("evolve in place"), "{plan}");
}

/// `encoding = "avro"`: bare datums in the version's schema (mock cluster). A truncated one is
/// a dead letter that keeps the record's key and timestamp.
#[test]
fn raw_avro_records_materialize_and_a_dead_letter_keeps_key_and_timestamp() {
    use apache_avro::types::Value;
    use kappa_lake::source::mock::{OutRecord, produce};

    let (topic, partitions, n) = ("raw-avro", 3, 3000i64);
    let schema = apache_avro::Schema::parse_str(ORDER_SCHEMA).unwrap();
    let day = crate::kafka_support::DAY_START_MS;
    let datum = |id: i64| {
        let value = Value::Record(vec![
            ("id".into(), Value::Long(id)),
            ("ts".into(), Value::TimestampMillis(day + id * 1000)),
            (
                "name".into(),
                Value::Union(1, Box::new(Value::String(format!("n{id}")))),
            ),
            (
                "status".into(),
                Value::Enum(
                    (id % 3) as u32,
                    ["NEW", "PAID", "SHIPPED"][(id % 3) as usize].into(),
                ),
            ),
            ("amount".into(), Value::Double(id as f64 / 4.0)),
        ]);
        apache_avro::to_avro_datum(&schema, value).unwrap()
    };
    let poison = |id: i64| id % 100 == 7;
    let records = (0..n).map(|id| {
        let mut payload = datum(id);
        if poison(id) {
            payload.truncate(payload.len() - 4);
        }
        OutRecord {
            partition: Some((id % partitions) as i32),
            key: Some(format!("k{id}").into_bytes()),
            payload,
            timestamp_ms: Some(day + id),
        }
    });
    let (_kafka, brokers) = mock_kafka(&[(topic, partitions as i32)]);
    assert_eq!(produce(&brokers, topic, records).unwrap(), n as u64);

    let w = World::with(
        &TableConfig::kafka(&brokers, topic)
            .schema(ORDER_SCHEMA)
            .source_keys("encoding = \"avro\"")
            .writer("max_age = \"200ms\""),
    );
    let d = w.path();
    Cli::new(d).run_ok(&["--stop-at-end"]);

    let bad = (0..n).filter(|id| poison(*id)).count() as i64;
    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT id), \
           count(*) FILTER (WHERE status = ['NEW','PAID','SHIPPED'][id % 3 + 1] AND amount = id / 4 \
                              AND name = 'n' || id AND epoch_ms(ts) = {day} + id * 1000) \
         FROM {}",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(rows[0], [n - bad, n - bad, n - bad], "rows as produced");
    let out = Cli::new(d).table_ok("dead-letters show", &["--limit", "1000"]);
    let letters: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len() as i64, bad);
    for l in &letters {
        let partition: i64 = l["source"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .unwrap()
            .1
            .parse()
            .unwrap();
        let id = l["offset"].as_i64().unwrap() * partitions + partition;
        assert!(poison(id), "{l}");
        assert_eq!(l["stage"], "decode", "{l}");
        assert!(l["reason"].as_str().unwrap().contains("truncated"), "{l}");
        assert_eq!(l["key"], format!("k{id}"), "{l}");
        assert_eq!(l["timestamp_ms"], day + id, "{l}");
    }
}

/// The registry over HTTPS with a private CA: `ca_file` makes it trusted; without it `run`
/// stops at the first lookup, naming the registry and the certificate problem, and commits
/// nothing.
#[test]
fn a_registry_over_tls_is_trusted_through_ca_file() {
    use kappa_lake::source::mock::{OutRecord, produce};

    let dir = Workdir::new();
    let d = dir.path();
    // A private CA, and the registry's certificate signed by it.
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kappa-lake-test-ca -keyout ca-key.pem -out registry-ca.pem",
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout registry-key.pem -out registry.csr",
        "x509 -req -in registry.csr -CA registry-ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile san.ext -out registry-cert.pem",
    ] {
        tool_ok(
            Command::new("openssl").current_dir(d).args(args.split(' ')),
            "openssl is needed to make the test certificates",
            &format!("openssl {args}: "),
        );
    }
    let (topic, n) = ("tls-avro", 500i64);
    std::fs::create_dir_all(d.join("schemas")).unwrap();
    std::fs::write(d.join("schemas/registered.avsc"), ORDER_SCHEMA).unwrap();
    let registry = Registry::start_with(
        None,
        &d.join("registry.log"),
        &[
            "--tls-cert",
            &d.join("registry-cert.pem").to_string_lossy(),
            "--tls-key",
            &d.join("registry-key.pem").to_string_lossy(),
            "--schema",
            &format!(
                "{topic}-value:42:{}",
                d.join("schemas/registered.avsc").display()
            ),
        ],
    );
    assert!(registry.url.starts_with("https://"), "{}", registry.url);

    let schema = apache_avro::Schema::parse_str(ORDER_SCHEMA).unwrap();
    let records = (0..n).map(|id| {
        let value = apache_avro::types::Value::Record(vec![
            ("id".into(), apache_avro::types::Value::Long(id)),
            (
                "ts".into(),
                apache_avro::types::Value::TimestampMillis(crate::kafka_support::DAY_START_MS + id),
            ),
            (
                "name".into(),
                apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
            ),
            (
                "status".into(),
                apache_avro::types::Value::Enum(0, "NEW".into()),
            ),
            ("amount".into(), apache_avro::types::Value::Double(0.0)),
        ]);
        let mut payload = vec![0, 0, 0, 0, 42];
        payload.extend(apache_avro::to_avro_datum(&schema, value).unwrap());
        OutRecord {
            partition: Some(0),
            key: None,
            payload,
            timestamp_ms: None,
        }
    });
    let (_kafka, brokers) = mock_kafka(&[(topic, 1)]);
    produce(&brokers, topic, records).unwrap();
    kafka_config(d, &brokers, topic, "max_age = \"200ms\"");
    std::fs::write(d.join("schemas/events.avsc"), ORDER_SCHEMA).unwrap();
    let path = d.join("kappa-lake.toml");
    let base = std::fs::read_to_string(&path).unwrap();
    let config = |ca: &str| {
        base.replacen(
            "[table.source.kafka]",
            &format!(
                "encoding = \"avro-confluent\"\n\n[table.source.schema_registry]\nurl = \"{}\"\n{ca}\n\n[table.source.kafka]",
                registry.url
            ),
            1,
        )
    };
    let run = ["run", "--config", "kappa-lake.toml", "--stop-at-end"];

    std::fs::write(&path, config("")).unwrap();
    let out = kappa(d, &run, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("schema registry `{}", registry.url)),
        "{stderr}"
    );
    assert!(stderr.contains("set schema_registry.ca_file"), "{stderr}");
    assert_eq!(stored_total(d, 0), 0, "nothing committed");

    std::fs::write(&path, config("ca_file = \"registry-ca.pem\"")).unwrap();
    kappa_ok(d, &run, &[]);
    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT id) FROM {}",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(rows[0], [n, n]);
}
