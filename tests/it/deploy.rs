//! `deploy/`: the Kubernetes manifests are valid against the API's schemas, and the config they
//! mount is one kappa-lake accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::Cli;
use crate::support::{Workdir, python};

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `kubernetes-validate --strict` (from the test venv) over `files`.
fn validate(files: &[PathBuf]) -> std::process::Output {
    let bin = python().with_file_name("kubernetes-validate");
    Command::new(&bin)
        .arg("--strict")
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()))
}

#[test]
fn the_manifests_validate_and_their_config_is_accepted() {
    let files = manifests();
    assert!(
        files.len() >= 3,
        "config, Deployment and Indexed Job: {files:?}"
    );
    let out = validate(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator is strict: a field the API does not have fails it.
    let dir = Workdir::new();
    let job = std::fs::read_to_string(
        files
            .iter()
            .find(|f| f.ends_with("rebuild-indexed-job.yaml"))
            .expect("the Job"),
    )
    .expect("read the Job");
    assert!(
        job.contains("completionMode: Indexed") && job.contains("--shard"),
        "{job}"
    );
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        job.replace("parallelism: 3", "parallelism: 3\n  paralelism: 3"),
    )
    .unwrap();
    assert!(
        !validate(&[broken]).status.success(),
        "a misspelt field is rejected"
    );

    // The ConfigMap's files, written out (paths under /config pointed at them), pass
    // `kappa-lake validate`: the archive table, the table naming it, the schema.
    let script = "import sys, yaml, pathlib\n\
        doc = yaml.safe_load(open(sys.argv[1]))\n\
        out = pathlib.Path(sys.argv[2])\n\
        for name, text in doc['data'].items():\n\
        \x20   (out / name).write_text(text.replace('/config/', str(out) + '/'))";
    let config = files
        .iter()
        .find(|f| f.ends_with("config.yaml"))
        .expect("config.yaml");
    let out = Command::new(python())
        .args(["-c", script])
        .arg(config)
        .arg(dir.path())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Cli::new(dir.path()).cmd("validate", &[]);
    assert!(out.status.success(), "{}", crate::fixture::stderr(&out));
    // The image runs as a non-root user, built in a separate stage.
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile"))
            .expect("deploy/Dockerfile");
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2
    );
    assert!(dockerfile.contains("\nUSER 10001"));
}
