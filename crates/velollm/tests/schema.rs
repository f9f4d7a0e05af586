//! The committed JSON Schema of the result document is generated from the types and must not go stale.
//! Regenerate it with `UPDATE_SCHEMA=1 cargo test -p velollm --test cli schema::`.

use crate::common;

#[test]
fn committed_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&velollm_core::document::result::json_schema()).unwrap() + "\n";
    let path = common::schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/result-schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p velollm --test cli schema::` and commit it"
    );
}
