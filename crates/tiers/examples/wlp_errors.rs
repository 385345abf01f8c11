//! Prints gold/predicted disagreements of one entity type (a development aid):
//! `wlp_errors MODEL DIR TYPE`.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example reports to the terminal")]
use std::path::PathBuf;

use fl_tiers::{Tagger, brat};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(dir), Some(kind)) = (args.first(), args.get(1), args.get(2)) else {
        anyhow::bail!("usage: wlp_errors MODEL DIR TYPE");
    };
    let tagger = Tagger::read(std::fs::File::open(model)?)?;
    for d in brat::read_dir(&PathBuf::from(dir))? {
        let chars: Vec<char> = d.text.chars().collect();
        let s = |e: &brat::Entity| chars[e.start..e.end].iter().collect::<String>();
        let pred: Vec<_> = tagger.tag(&d.text).into_iter().filter(|e| e.kind == *kind).collect();
        let gold: Vec<_> = d.entities.iter().filter(|e| e.kind == *kind).cloned().collect();
        let all_pred = tagger.tag(&d.text);
        for g in gold.iter().filter(|g| !pred.contains(g)) {
            let why = if let Some(p) =
                all_pred.iter().find(|p| p.start == g.start && p.end == g.end)
            {
                format!("TYPE as {}", p.kind)
            } else if let Some(p) = all_pred.iter().find(|p| p.start < g.end && g.start < p.end) {
                format!("BOUNDARY pred {:?} {}", s(p), p.kind)
            } else {
                "NONE".to_owned()
            };
            println!("MISS {why} gold {:?}", s(g));
        }
        for p in pred.iter().filter(|p| !gold.contains(p)) {
            println!("FALSE {:?}", s(p));
        }
    }
    Ok(())
}
