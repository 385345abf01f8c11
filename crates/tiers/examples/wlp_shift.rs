//! How the annotation of numeric spans differs between WLP splits, and what that costs the
//! shipped tagger (a development aid): `wlp_shift TRAIN_DIR DIR...`.
//!
//! Per directory it prints the share of gold numeric spans that end in punctuation
//! (`30–60 s.`, `20 min,`), that start with a qualifier (`~`, `≥` …), and that contain a word
//! never seen in a numeric span of TRAIN_DIR; then the shipped tagger's numeric F1 with exact
//! spans (the figure `wlp_eval` reports and the goal is stated in) next to the same score
//! after trailing punctuation is cut from gold and predicted spans alike. The second figure
//! is an explanation of the first, never a replacement for it.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]

use std::collections::HashSet;
use std::path::PathBuf;

use fl_tiers::brat::{self, Document, Entity};
use fl_tiers::spec::shipped_tagger;
use fl_tiers::tagger::{Counts, NUMERIC_KINDS, score};
use fl_tiers::tokenize::tokenize;

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

fn pooled(per_doc: impl Iterator<Item = std::collections::HashMap<String, Counts>>) -> Counts {
    let mut out = Counts::default();
    for m in per_doc {
        for (k, c) in m {
            if NUMERIC_KINDS.contains(&k.as_str()) {
                out.add(c);
            }
        }
    }
    out
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
    println!("split\tnumeric\tpunct-end\tqualifier\tnew-word\tF1 exact\tF1 punct-trimmed");
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
            exact.push(score(&d.entities, &predicted));
            let cut = |es: &[Entity]| es.iter().map(|e| trimmed(&chars, e)).collect::<Vec<_>>();
            relaxed.push(score(&cut(&d.entities), &cut(&predicted)));
        }
        #[allow(clippy::cast_precision_loss, reason = "entity counts")]
        let share = |k: usize| k as f64 / n.max(1) as f64;
        println!(
            "{dir}\t{n}\t{:.3}\t{:.3}\t{:.3}\t{:.4}\t{:.4}",
            share(punct),
            share(qualifier),
            share(new_word),
            pooled(exact.into_iter()).f1(),
            pooled(relaxed.into_iter()).f1()
        );
    }
    Ok(())
}
