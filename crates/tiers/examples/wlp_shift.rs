//! How the annotation of numeric spans differs between WLP splits, and what that costs the
//! shipped tagger (a development aid): `wlp_shift TRAIN_DIR DIR...`.
//!
//! Per directory it prints the share of gold numeric spans that end in punctuation
//! (`30–60 s.`, `20 min,`), that start with a qualifier (`~`, `≥` …), and that contain a word
//! never seen in a numeric span of TRAIN_DIR; then the shipped tagger's numeric F1 with exact
//! spans (the figure `wlp_eval` reports and the goal is stated in) next to the same score
//! after trailing punctuation is cut from gold and predicted spans alike. The second figure
//! is an explanation of the first, never a replacement for it. The exact F1 comes with a 95 %
//! interval from 2,000 bootstrap resamples of the directory's protocols (seeded, so
//! reproducible), to show how far a split's score moves with which protocols it happens to
//! hold.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]

use std::collections::HashSet;
use std::path::PathBuf;

use fl_tiers::brat::{self, Document, Entity};
use fl_tiers::spec::shipped_tagger;
use fl_tiers::tagger::{Counts, NUMERIC_KINDS, score};
use fl_tiers::tokenize::tokenize;
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};

fn numeric(entities: &[Entity]) -> impl Iterator<Item = &Entity> {
    entities.iter().filter(|e| NUMERIC_KINDS.contains(&e.kind.as_str()))
}

fn words(chars: &[char], e: &Entity) -> Vec<String> {
    let text: String = chars[e.start..e.end].iter().collect();
    tokenize(&text)
        .into_iter()
        .filter(|t| !t.text.starts_with(|c: char| c.is_ascii_digit()))
        .map(|t| t.text.to_lowercase())
        .collect()
}

/// `e` without trailing `.`, `,`, `;`, `:` and without a trailing `)` that closes nothing.
fn trimmed(chars: &[char], e: &Entity) -> Entity {
    let mut end = e.end;
    while end > e.start + 1 {
        let c = chars[end - 1];
        let unopened = c == ')' && !chars[e.start..end].contains(&'(');
        if matches!(c, '.' | ',' | ';' | ':') || unopened {
            end -= 1;
        } else {
            break;
        }
    }
    Entity { end, ..e.clone() }
}

fn numeric_counts(per_type: &std::collections::HashMap<String, Counts>) -> Counts {
    let mut out = Counts::default();
    for (k, c) in per_type {
        if NUMERIC_KINDS.contains(&k.as_str()) {
            out.add(*c);
        }
    }
    out
}

fn pooled<'a>(per_doc: impl Iterator<Item = &'a Counts>) -> Counts {
    per_doc.fold(Counts::default(), |mut acc, c| {
        acc.add(*c);
        acc
    })
}

/// 2.5 % and 97.5 % quantiles of pooled F1 over protocol resamples.
fn bootstrap(per_doc: &[Counts]) -> (f64, f64) {
    let mut rng = ChaCha20Rng::seed_from_u64(2020);
    let mut f1s: Vec<f64> = (0..2000)
        .map(|_| {
            pooled((0..per_doc.len()).map(|_| &per_doc[rng.random_range(0..per_doc.len())])).f1()
        })
        .collect();
    f1s.sort_by(f64::total_cmp);
    (f1s[50], f1s[1949])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((train_dir, dirs)) = args.split_first().filter(|(_, d)| !d.is_empty()) else {
        anyhow::bail!("usage: wlp_shift TRAIN_DIR DIR...");
    };
    let mut seen = HashSet::new();
    for d in brat::read_dir(&PathBuf::from(train_dir))? {
        let chars: Vec<char> = d.text.chars().collect();
        for e in numeric(&d.entities) {
            seen.extend(words(&chars, e));
        }
    }
    let tagger = shipped_tagger()?;
    println!(
        "split\tnumeric\tpunct-end\tqualifier\tnew-word\tF1 exact\t95 % interval\tF1 punct-trimmed"
    );
    for dir in dirs {
        let docs: Vec<Document> = brat::read_dir(&PathBuf::from(dir))?;
        let (mut n, mut punct, mut qualifier, mut new_word) = (0usize, 0usize, 0usize, 0usize);
        let mut exact = Vec::new();
        let mut relaxed = Vec::new();
        for d in &docs {
            let chars: Vec<char> = d.text.chars().collect();
            for e in numeric(&d.entities) {
                n += 1;
                punct += usize::from(trimmed(&chars, e) != *e);
                qualifier += usize::from(matches!(
                    chars.get(e.start),
                    Some('~' | '≈' | '∼' | '<' | '>' | '≥' | '≤')
                ));
                new_word += usize::from(words(&chars, e).iter().any(|w| !seen.contains(w)));
            }
            let predicted = tagger.tag(&d.text);
            exact.push(numeric_counts(&score(&d.entities, &predicted)));
            let cut = |es: &[Entity]| es.iter().map(|e| trimmed(&chars, e)).collect::<Vec<_>>();
            relaxed.push(numeric_counts(&score(&cut(&d.entities), &cut(&predicted))));
        }
        #[allow(clippy::cast_precision_loss, reason = "entity counts")]
        let share = |k: usize| k as f64 / n.max(1) as f64;
        let (lo, hi) = bootstrap(&exact);
        println!(
            "{dir}\t{n}\t{:.3}\t{:.3}\t{:.3}\t{:.4}\t{lo:.3}–{hi:.3}\t{:.4}",
            share(punct),
            share(qualifier),
            share(new_word),
            pooled(exact.iter()).f1(),
            pooled(relaxed.iter()).f1()
        );
    }
    Ok(())
}
