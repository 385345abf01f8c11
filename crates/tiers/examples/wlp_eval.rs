//! Evaluates the shipped tagger on a directory of brat `protocol_N.txt`/`.ann` pairs, exact
//! span and type match: `cargo run --release -p fl-tiers --example wlp_eval -- DIR`. Prints one
//! JSON object `{"per_type": {...}, "micro": {...}, "numeric_micro": {...}, "protocols": N}`
//! on stdout and the extraction speed on stderr.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]

use std::path::PathBuf;
use std::time::Instant;

use fl_tiers::brat;
use fl_tiers::spec::{extract_with, shipped_tagger};
use fl_tiers::tagger::Evaluation;

fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::args().nth(1) else {
        anyhow::bail!("usage: wlp_eval DIR");
    };
    let docs = brat::read_dir(&PathBuf::from(&dir))?;
    if docs.is_empty() {
        anyhow::bail!("{dir}: no protocol_N.txt files");
    }
    let tagger = shipped_tagger()?;
    let eval = Evaluation::run(tagger, &docs);
    println!("{}", serde_json::to_string_pretty(&eval.to_json())?);
    // Full tier-1 extraction speed (tagging + normalization + spec), one thread.
    let t = Instant::now();
    let mut steps = 0u64;
    for d in &docs {
        steps += u64::from(extract_with(tagger, &d.text).summary.steps);
    }
    let s = t.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "document counts")]
    let rate = docs.len() as f64 / s;
    eprintln!(
        "extracted {} protocols ({steps} steps) in {s:.3} s on one thread: {rate:.0} protocols/s",
        docs.len()
    );
    Ok(())
}
