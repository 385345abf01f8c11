//! How well the normalizer reads gold numeric entities (a development aid):
//! `wlp_units DIRS [TYPE]` pools the comma-separated directories and prints, per numeric type,
//! how many gold spans parse into a value with a unit; with TYPE, the most frequent spans of
//! that type that do not parse (or, for Amount, fall back to a bare count); with `--values`
//! after TYPE, every span of that type and what it was read as.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]

use std::collections::BTreeMap;
use std::path::PathBuf;

use fl_tiers::brat;
use fl_tiers::tagger::NUMERIC_KINDS;
use fl_tiers::units;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dirs) = args.first() else {
        anyhow::bail!("usage: wlp_units DIRS [TYPE]");
    };
    let show = args.get(1);
    let values = args.get(2).is_some_and(|a| a == "--values");
    let mut docs = Vec::new();
    for dir in dirs.split(',') {
        docs.extend(brat::read_dir(&PathBuf::from(dir))?);
    }
    let mut totals: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for d in &docs {
        let chars: Vec<char> = d.text.chars().collect();
        for e in &d.entities {
            let surface: String = chars[e.start..e.end].iter().collect();
            if !NUMERIC_KINDS.contains(&e.kind.as_str()) {
                continue;
            }
            let reading = units::read_entity(&e.kind, &surface);
            let read = reading.is_some_and(|r| r.has_unit());
            if values && show == Some(&e.kind) {
                println!("{surface:?}\t{reading:?}");
            }
            let t = totals.entry(e.kind.clone()).or_default();
            t.0 += 1;
            t.1 += usize::from(read);
            if !read && show == Some(&e.kind) {
                *failures.entry(surface.to_lowercase()).or_default() += 1;
            }
        }
    }
    for (kind, (gold, read)) in &totals {
        #[allow(clippy::cast_precision_loss, reason = "counts")]
        let rate = *read as f64 / (*gold).max(1) as f64;
        println!("{kind}: {read}/{gold} read ({rate:.3})");
    }
    let mut failures: Vec<_> = failures.into_iter().collect();
    failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (surface, n) in failures.iter().take(60) {
        println!("{n:5}  {surface:?}");
    }
    Ok(())
}
