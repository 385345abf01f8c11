//! The `fl-client` binary as a partner runs it: extract a few real protocols at tiers 1 and 2,
//! inspect them at different sensitivity levels, and one-line errors with exit codes.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;
use std::process::{Command, Output};

fn fl_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fl-client")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn extract_inspect_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let wlp =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/protocols/wlp/test");
    for (i, n) in ["protocol_103", "protocol_106", "protocol_122"].iter().enumerate() {
        std::fs::copy(wlp.join(format!("{n}.txt")), corpus.join(format!("protocol_{}.txt", i + 1)))
            .unwrap();
    }
    let specs = dir.path().join("specs");
    let (c, s) = (corpus.to_str().unwrap(), specs.to_str().unwrap());
    let o =
        fl_client(&["extract", "--tier", "2", "--corpus", c, "--output", s, "--dp-epsilon", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("3 ProtocolSpec files") && text(&o).contains("3 feature vectors"),
        "{}",
        text(&o)
    );
    let fv: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(specs.join("protocol_1.features.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(fv["values"].as_array().unwrap().len(), 223);

    let o = fl_client(&["inspect", "--specs", s, "--show-features"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("ProtocolSpec: WOULD BE SENT").count(), 3, "{}", text(&o));
    let o = fl_client(&["inspect", "--specs", s, "--sensitivity", "1", "--agreement", "dpa:DPA-1"]);
    assert!(o.status.success());
    assert_eq!(text(&o).matches("ProtocolSpec: NOT SENT").count(), 3);
    assert_eq!(text(&o).matches("WOULD BE SENT").count(), 3, "features go with a DPA at level 1");

    for (args, code) in [
        (vec!["inspect", "--specs", s, "--sensitivity", "7"], 2),
        (vec!["inspect", "--specs", s, "--agreement", "nda:1"], 1),
        (vec!["extract", "--corpus", "/nonexistent", "--output", s], 1),
        (vec!["extract", "--tier", "3", "--corpus", c, "--output", s], 2),
    ] {
        let o = fl_client(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count().min(1), 1);
        assert!(!text(&o).contains("panicked"));
    }
}
