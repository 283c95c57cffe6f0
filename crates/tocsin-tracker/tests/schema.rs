//! The checked-in alert JSON Schema must match the one generated from the
//! types, and real alerts must carry the fields subscribers rely on.
//! Regenerate with `TOCSIN_BLESS=1 cargo test -p tocsin-tracker --test schema`.

use std::path::PathBuf;

#[test]
fn checked_in_alert_schema_matches_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/alert.schema.json");
    let generated =
        serde_json::to_string_pretty(&tocsin_tracker::alert_json_schema()).unwrap() + "\n";
    if std::env::var_os("TOCSIN_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with TOCSIN_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        checked_in, generated,
        "schemas/alert.schema.json is stale: rerun with TOCSIN_BLESS=1"
    );
    let schema: serde_json::Value = serde_json::from_str(&checked_in).unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in [
        "alert_id",
        "kind",
        "document_kind",
        "encounter",
        "patient",
        "deadline",
        "raised_at",
        "rule",
    ] {
        assert!(required.contains(&field), "{field} not required");
    }
}
