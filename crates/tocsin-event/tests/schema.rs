//! The checked-in JSON Schema must match the one generated from the types.
//! Regenerate with `TOCSIN_BLESS=1 cargo test -p tocsin-event --test schema`.

use std::path::PathBuf;

#[test]
fn checked_in_schema_matches_the_types() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/interface-event.schema.json");
    let generated = serde_json::to_string_pretty(&tocsin_event::json_schema()).unwrap() + "\n";
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
        "schemas/interface-event.schema.json is stale: rerun with TOCSIN_BLESS=1"
    );
}

/// A warning code's metric label is its name on the wire, for each code.
#[test]
fn warning_code_names_are_their_wire_names() {
    for code in tocsin_event::WarningCode::ALL {
        assert_eq!(
            serde_json::to_value(code).unwrap(),
            serde_json::Value::from(code.as_str())
        );
    }
}
