//! Writes a small audit log with a signed checkpoint, verifies it, and prints the head to anchor.
//!
//! `cargo run -p fl-audit --example audit_demo -- DIR`

#![allow(clippy::print_stdout, reason = "an example reports to the terminal")]

use std::collections::BTreeMap;

use fl_audit::{AuditLog, CheckpointSigner, Digest, Durability, Entry, Extension, verify_file};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir =
        std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "audit-demo".into()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.log");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join("audit.log.checkpoints"));
    let mut log = AuditLog::create(
        &path,
        Entry::genesis("demo", r#"{"rounds":3}"#),
        1,
        Durability::EveryAppend,
    )?;
    for r in 1..=3u64 {
        let mut fields = BTreeMap::new();
        fields.insert("round".into(), Extension::Int(i64::try_from(r)?));
        fields.insert("aggregate".into(), Extension::Digest(Digest::of(&r.to_le_bytes())));
        log.append(Entry::Event { kind: "round".into(), fields }, 1 + r)?;
    }
    let signer = CheckpointSigner::generate(&mut fl_audit_demo_rng()?);
    log.checkpoint(&signer)?;
    let report = verify_file(&path, Some(&signer.verifying_key()))?;
    println!("{} records, {} checkpoint(s) verified", report.records, report.checkpoints_verified);
    println!("anchor: {}", log.head().anchor());
    Ok(())
}

fn fl_audit_demo_rng() -> Result<rand::rngs::ChaCha20Rng, Box<dyn std::error::Error>> {
    use rand::SeedableRng;
    Ok(rand::rngs::ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng)?)
}
