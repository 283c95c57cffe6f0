//! What the command-line tests share: the repository root, its fixtures,
//! and the real `tocsin` binary run to completion from the root, without
//! the caller's `TOCSIN_CONFIG`.

// Each test binary that includes this uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (fixtures and `config/` are found from it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs `tocsin` with `args` from the repository root and waits for it.
pub fn tocsin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .current_dir(root())
        .env_remove("TOCSIN_CONFIG")
        .output()
        .expect("run tocsin")
}

/// What one `tocsin replay` run wrote.
pub struct Replayed {
    /// The `--alerts` file, as written (one JSON object a line).
    pub alerts: String,
    /// The `--report`, in its JSON form.
    pub report: serde_json::Value,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs `tocsin replay --until UNTIL` over `input` with a JSON report and the
/// `extra` arguments, asserts that it exits 0, and returns what it wrote.
pub fn replay_json(input: &Path, until: &str, extra: &[&str]) -> Replayed {
    replay_json_exiting(0, input, until, extra)
}

/// As [`replay_json`], asserting that it exits `code` (1: an input could
/// not be read).
pub fn replay_json_exiting(code: i32, input: &Path, until: &str, extra: &[&str]) -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let report = dir.path().join("report.json");
    let mut args = vec![
        "replay",
        "--until",
        until,
        "--alerts",
        alerts.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    args.push(input.to_str().unwrap());
    let out = tocsin(&args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The outputs name patients: never world-readable, whatever the umask.
    for file in [&alerts, &report] {
        assert_private(file);
    }
    Replayed {
        alerts: std::fs::read_to_string(&alerts).unwrap(),
        report: serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Fails unless `path` has no permission for others (the tests run under
/// the usual umask 022, which would give 0644).
pub fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "{} is mode {mode:o}", path.display());
}

/// The shipped `config/tocsin.toml` with its mappings and policy named by
/// absolute path, to be written anywhere.
pub fn shipped_config() -> String {
    shipped_config_with_policy(&root().join("config/policies/nhs-standard-contract.toml"))
}

/// As [`shipped_config`], naming `policy` instead of the shipped policy.
pub fn shipped_config_with_policy(policy: &Path) -> String {
    std::fs::read_to_string(root().join("config/tocsin.toml"))
        .unwrap()
        .replace(
            "mappings = \"mappings.toml\"",
            &format!("mappings = {:?}", root().join("config/mappings.toml")),
        )
        .replace(
            "policy = \"policies/nhs-standard-contract.toml\"",
            &format!("policy = {policy:?}"),
        )
}
