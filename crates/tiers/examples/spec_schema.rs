//! Prints the JSON Schema of `ProtocolSpec` (committed as `schema/protocol-spec.v2.schema.json`),
//! or with `features` that of `FeatureVector` (`schema/feature-vector.v1.schema.json`).

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]
fn main() -> anyhow::Result<()> {
    let schema = match std::env::args().nth(1).as_deref() {
        None | Some("spec") => fl_tiers::spec::ProtocolSpec::json_schema(),
        Some("features") => fl_tiers::features::FeatureVector::json_schema(),
        Some(other) => anyhow::bail!("unknown schema {other:?}: expected `spec` or `features`"),
    };
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(())
}
