//! Shared by the integration tests that check the committed JSON Schemas.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;

/// `schema/FILE` as committed.
pub fn committed_schema(file: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema").join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
