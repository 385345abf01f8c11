//! Prints the JSON Schema of `ProtocolSpec` (committed as `schema/protocol-spec.v1.schema.json`).

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]
fn main() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&fl_tiers::spec::ProtocolSpec::json_schema())?);
    Ok(())
}
