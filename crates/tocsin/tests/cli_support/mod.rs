//! What the command-line tests share: the repository root, its fixtures,
//! and the real `tocsin` binary run to completion from the root, without
//! the caller's `TOCSIN_CONFIG`.

use std::path::PathBuf;
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
