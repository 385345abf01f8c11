//! Trains the entity tagger on a WLP split and writes the model that fl-tiers ships:
//! `cargo run --release -p fl-tiers --example wlp_train -- ../shared/data/protocols/wlp/train
//! crates/tiers/model/wlp-tagger.bin.gz ../shared/data/protocols/wlp/dev [EPOCHS] [BAGS]`
//! (defaults 10 and 5: five perceptrons on differently shuffled passes, weights averaged), plus
//! a specialist model for the numeric types. The shipped model is trained on `train` only with
//! the defaults; comma-separated directories are pooled. Never pass the test split here.
//! Beside MODEL_OUT it writes `MODEL_OUT.features.sha256`, the training data's
//! [`feature_fingerprint`], which the `wlp` test compares with the current code's. With
//! `--check` it writes nothing and fails unless the model and fingerprint already at MODEL_OUT
//! are exactly what it trained (the shipped model rebuilds bit for bit, 33 s).

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]

use std::path::PathBuf;
use std::time::Instant;

use fl_tiers::brat;
use fl_tiers::tagger::{Evaluation, Tagger, TrainOptions, feature_fingerprint};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    args.retain(|a| a != "--check");
    let (Some(train_dir), Some(out)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: wlp_train [--check] TRAIN_DIR MODEL_OUT [DEV_DIR] [EPOCHS] [BAGS]");
    };
    let mut docs = Vec::new();
    for dir in train_dir.split(',') {
        docs.extend(brat::read_dir(&PathBuf::from(dir))?);
    }
    let epochs = args.get(3).map(|e| e.parse()).transpose()?.unwrap_or(10);
    let bags = args.get(4).map(|b| b.parse()).transpose()?.unwrap_or(5);
    let t = Instant::now();
    let options = TrainOptions { epochs, bags, ..TrainOptions::shipped() };
    let tagger = Tagger::train(&docs, options)?;
    eprintln!(
        "trained on {} protocols in {:.1} s: {} features",
        docs.len(),
        t.elapsed().as_secs_f64(),
        tagger.num_features()
    );
    let fingerprint_file = format!("{out}.features.sha256");
    let fingerprint = format!("{}\n", feature_fingerprint(&docs));
    if check {
        let (mut trained, mut existing) = (Vec::new(), Vec::new());
        tagger.write(&mut trained)?;
        Tagger::read(std::io::BufReader::new(std::fs::File::open(out)?))?.write(&mut existing)?;
        if trained != existing {
            anyhow::bail!("{out} is not what this recipe trains: retrain it (without --check)");
        }
        if std::fs::read_to_string(&fingerprint_file)? != fingerprint {
            anyhow::bail!("{fingerprint_file} does not match the training data's features");
        }
        eprintln!("{out} and {fingerprint_file} rebuild bit for bit");
        return Ok(());
    }
    let file = std::fs::File::create(out)?;
    tagger.write(std::io::BufWriter::new(file))?;
    eprintln!("wrote {out} ({} bytes)", std::fs::metadata(out)?.len());
    std::fs::write(&fingerprint_file, fingerprint)?;
    eprintln!("wrote {fingerprint_file}");
    if let Some(dev) = args.get(2) {
        let dev_docs = brat::read_dir(&PathBuf::from(dev))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&Evaluation::run(&tagger, &dev_docs).to_json())?
        );
    }
    Ok(())
}
