//! Trains the entity tagger on a WLP split and writes the model that fl-tiers ships:
//! `cargo run --release -p fl-tiers --example wlp_train -- ../shared/data/protocols/wlp/train
//! crates/tiers/model/wlp-tagger.bin.gz ../shared/data/protocols/wlp/dev [EPOCHS] [BAGS]`
//! (defaults 10 and 5: five perceptrons on differently shuffled passes, weights averaged), plus
//! a specialist model for the numeric types. The shipped model is trained on `train` only with
//! the defaults; comma-separated directories are pooled. Never pass the test split here.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]

use std::path::PathBuf;
use std::time::Instant;

use fl_tiers::brat;
use fl_tiers::tagger::{Evaluation, Tagger, TrainOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(train_dir), Some(out)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: wlp_train TRAIN_DIR MODEL_OUT [DEV_DIR] [EPOCHS] [BAGS]");
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
    let file = std::fs::File::create(out)?;
    tagger.write(std::io::BufWriter::new(file))?;
    eprintln!("wrote {out} ({} bytes)", std::fs::metadata(out)?.len());
    if let Some(dev) = args.get(2) {
        let dev_docs = brat::read_dir(&PathBuf::from(dev))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&Evaluation::run(&tagger, &dev_docs).to_json())?
        );
    }
    Ok(())
}
