//! Differential test: tocsin's field extraction against the Python `hl7`
//! package reading the same fixtures (tests/hl7-differential/extract.py).
//!
//! Needs `python3` with `pip install -r tests/requirements.txt` (the `hl7`
//! package). It fails, never skips, when either is missing.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use tocsin_hl7::{Hl7Config, raw_fields, split_messages};

type PyOutput = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn python_view() -> PyOutput {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/hl7-differential/extract.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(common::fixture_dir())
        .output()
        .expect("python3 must be installed for the HL7 differential test");
    assert!(
        out.status.success(),
        "extract.py failed (is the `hl7` package installed? pip install -r tests/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("extract.py prints JSON")
}

#[test]
fn field_values_agree_with_python_hl7() {
    let python = python_view();
    let cfg = Hl7Config::default();
    let mut compared = 0;
    for path in common::fixture_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let ours: Result<Vec<_>, _> = split_messages(&bytes)
            .into_iter()
            .map(|m| raw_fields(m.bytes, &cfg))
            .collect();
        let Ok(ours) = ours else {
            // Only fixtures made to be rejected may fail at the text level.
            assert!(name.starts_with("reject_"), "{name}: {:?}", ours.err());
            continue;
        };
        let theirs = python
            .get(&name)
            .unwrap_or_else(|| panic!("{name} missing from extract.py output"));
        assert_eq!(ours.len(), theirs.len(), "{name}: message count");
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            assert_eq!(
                a, b,
                "{name} message {i}: tocsin (left) vs python hl7 (right)"
            );
            compared += 1;
        }
    }
    assert!(compared >= 50, "only {compared} messages compared");
}
