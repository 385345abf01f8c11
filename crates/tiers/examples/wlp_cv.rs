//! K-fold cross-validation of the tagger's training recipe (a development aid, to tell a real
//! gain from dev-split noise): `wlp_cv DIRS [K] [EPOCHS] [BAGS]` pools the comma-separated
//! directories, assigns protocol i (sorted by name) to fold i mod K (default 5), trains on the
//! other folds with the shipped recipe (numeric specialist included) and prints numeric,
//! all-type micro and Action F1 per fold, their mean and spread, and the pooled scores.
//! Never pass the test split here.
//!
//! `--dump FILE` also writes one JSON line per protocol: `path`, `fold`, `tokens`
//! (`[text, start, end, line]` from [`fl_tiers::tokenize`]), `gold` and `predicted`
//! (`[start, end, type]`; predicted by the model that did not see the protocol), so that other
//! taggers can be cross-validated on the same folds and tokens
//! (`crates/tiers/scripts/bilstm_crf.py`).

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]

use std::io::Write;
use std::path::PathBuf;

use fl_tiers::brat::{self, Entity};
use fl_tiers::tagger::{Counts, Evaluation, Tagger, TrainOptions};
use fl_tiers::tokenize::tokenize;
use rayon::prelude::*;
use serde_json::json;

/// A fold's scores and its protocols' predictions by index.
type FoldResult = (Evaluation, Vec<(usize, Vec<Entity>)>);

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let dump = match args.iter().position(|a| a == "--dump") {
        Some(i) if i + 1 < args.len() => {
            Some(PathBuf::from(args.drain(i..=i + 1).nth(1).unwrap_or_default()))
        }
        Some(_) => anyhow::bail!("--dump needs a file"),
        None => None,
    };
    let Some(dirs) = args.first() else {
        anyhow::bail!("usage: wlp_cv DIRS [K] [EPOCHS] [BAGS] [--dump FILE]");
    };
    let k: usize = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(5);
    let epochs = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(10);
    let bags = args.get(3).map(|a| a.parse()).transpose()?.unwrap_or(5);
    let mut docs = Vec::new();
    for dir in dirs.split(',') {
        docs.extend(brat::read_dir(&PathBuf::from(dir))?);
    }
    docs.sort_by(|a, b| a.path.cmp(&b.path));
    if k < 2 || docs.len() < k {
        anyhow::bail!("need K ≥ 2 and at least K protocols ({} found)", docs.len());
    }
    let options = TrainOptions { epochs, bags, ..TrainOptions::shipped() };
    let folds: Vec<anyhow::Result<FoldResult>> = (0..k)
        .into_par_iter()
        .map(|fold| {
            let (held, train): (Vec<_>, Vec<_>) =
                docs.iter().enumerate().partition(|(i, _)| i % k == fold);
            let train: Vec<_> = train.into_iter().map(|(_, d)| d.clone()).collect();
            let tagger = Tagger::train(&train, options)?;
            let predicted: Vec<Vec<Entity>> =
                held.iter().map(|(_, d)| tagger.tag(&d.text)).collect();
            let held_docs: Vec<_> = held.iter().map(|(_, d)| (*d).clone()).collect();
            let eval = Evaluation::of_predictions(&held_docs, &predicted);
            Ok((eval, held.iter().map(|(i, _)| *i).zip(predicted).collect()))
        })
        .collect();
    let mut predicted = vec![Vec::new(); docs.len()];
    let (mut numeric, mut micro, mut action) =
        (Counts::default(), Counts::default(), Counts::default());
    let mut scores = Vec::new();
    for (fold, result) in folds.into_iter().enumerate() {
        let (eval, fold_predicted) = result?;
        for (i, p) in fold_predicted {
            predicted[i] = p;
        }
        let a = eval.per_type.get("Action").copied().unwrap_or_default();
        println!(
            "fold {fold}: {} protocols, numeric {:.4}, micro {:.4}, Action {:.4}",
            eval.protocols,
            eval.numeric_micro.f1(),
            eval.micro.f1(),
            a.f1()
        );
        scores.push(eval.numeric_micro.f1());
        numeric.add(eval.numeric_micro);
        micro.add(eval.micro);
        action.add(a);
    }
    if let Some(file) = dump {
        let spans = |es: &[Entity]| -> Vec<_> {
            es.iter().map(|e| json!([e.start, e.end, e.kind])).collect()
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for (i, (doc, predicted)) in docs.iter().zip(&predicted).enumerate() {
            let tokens: Vec<_> = tokenize(&doc.text)
                .into_iter()
                .map(|t| json!([t.text, t.start, t.end, t.line]))
                .collect();
            let line = json!({
                "path": doc.path, "fold": i % k, "tokens": tokens,
                "gold": spans(&doc.entities), "predicted": spans(predicted),
            });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        println!("wrote {}", file.display());
    }
    #[allow(clippy::cast_precision_loss, reason = "few folds")]
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let (lo, hi) = scores.iter().fold((1.0f64, 0.0f64), |(l, h), &s| (l.min(s), h.max(s)));
    println!(
        "numeric per fold: mean {mean:.4}, sd {sd:.4}, min {lo:.4}, max {hi:.4}\n\
         pooled: numeric {:.4}, micro {:.4}, Action {:.4}",
        numeric.f1(),
        micro.f1(),
        action.f1()
    );
    Ok(())
}
