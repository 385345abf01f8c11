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
    // The vectors shown are the noised files tier 2 would send, not recomputed ones.
    assert_eq!(text(&o).matches("FeatureVector: WOULD BE SENT").count(), 3, "{}", text(&o));
    assert_eq!(text(&o).matches("local DP ε = 1, δ = 0.00001").count(), 3, "{}", text(&o));
    assert_eq!(text(&o).matches("dimensions (sent)").count(), 3, "{}", text(&o));
    let o = fl_client(&["inspect", "--specs", s, "--sensitivity", "1", "--agreement", "dpa:DPA-1"]);
    assert!(o.status.success());
    assert_eq!(text(&o).matches("ProtocolSpec: NOT SENT").count(), 3);
    assert_eq!(text(&o).matches("WOULD BE SENT").count(), 3, "features go with a DPA at level 1");

    for (args, code) in [
        (vec!["inspect", "--specs", s, "--sensitivity", "7"], 2),
        // A malformed flag value is a usage error (it was exit 1 before --agreement used clap).
        (vec!["inspect", "--specs", s, "--agreement", "nda:1"], 2),
        (vec!["extract", "--corpus", "/nonexistent", "--output", s], 1),
        (vec!["extract", "--tier", "3", "--corpus", c, "--output", s], 2),
    ] {
        let o = fl_client(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count().min(1), 1);
        assert!(!text(&o).contains("panicked"));
    }
    // Local DP parameters are checked before anything is extracted: a clip norm whose noise
    // f32 cannot carry, a negative ε and a zero clip are usage errors that write nothing.
    let unwritten = dir.path().join("unwritten");
    let u = unwritten.to_str().unwrap();
    for dp in [["1", "1e37"], ["-1", "8"], ["1", "0"]] {
        let (epsilon, clip) = (format!("--dp-epsilon={}", dp[0]), format!("--dp-clip={}", dp[1]));
        let o =
            fl_client(&["extract", "--tier", "2", "--corpus", c, "--output", u, &epsilon, &clip]);
        assert_eq!(o.status.code(), Some(2), "{dp:?}: {}", text(&o));
        assert!(text(&o).contains("invalid local DP parameters"), "{}", text(&o));
        assert!(!unwritten.exists(), "{dp:?} wrote output");
    }
    // A clip below f32's subnormal granularity used to hang the clipping loop; it now ends.
    let o = fl_client(&[
        "extract",
        "--tier",
        "2",
        "--corpus",
        c,
        "--output",
        u,
        "--dp-epsilon",
        "1",
        "--dp-clip",
        "1e-45",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("C = 1e-45"), "{}", text(&o));

    // `submit` reads and checks every file before it connects: an oversized file and a spec
    // with a field the format lacks (text smuggled into a quantity) are refused with the file's
    // name, and nothing is sent (the server and CA given do not exist).
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(specs.join("protocol_1.spec.json")).unwrap())
            .unwrap();
    let mut smuggled = spec;
    let step = smuggled["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s.get("amounts").is_some())
        .unwrap();
    step["amounts"][0]["note"] = serde_json::json!("Add 5 ul of the secret buffer");
    for (name, contents, expected) in [
        ("big.spec.json", " ".repeat(4 << 20 | 1), "4194304-byte limit"),
        ("smuggled.spec.json", smuggled.to_string(), "unknown field `note`"),
    ] {
        let one = dir.path().join(format!("submit-{name}"));
        std::fs::create_dir(&one).unwrap();
        std::fs::write(one.join(name), contents).unwrap();
        let o = fl_client(&[
            "submit",
            "--specs",
            one.to_str().unwrap(),
            "--server",
            "127.0.0.1:9",
            "--ca",
            "/nonexistent/ca.pem",
            "--api-key",
            "k",
        ]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        assert!(text(&o).contains(name) && text(&o).contains(expected), "{name}: {}", text(&o));
        assert!(!text(&o).contains("panicked"));
    }
}

#[test]
fn train_a_tagger_on_own_annotations_and_extract_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let wlp = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/protocols/wlp");
    let (annotated, held, plain) =
        (dir.path().join("annotated"), dir.path().join("held"), dir.path().join("plain"));
    for d in [&annotated, &held, &plain] {
        std::fs::create_dir(d).unwrap();
    }
    for n in [3, 4, 5, 6, 9, 12, 13, 14, 15, 18, 19, 22] {
        for ext in ["txt", "ann"] {
            let name = format!("protocol_{n}.{ext}");
            std::fs::copy(wlp.join("train").join(&name), annotated.join(&name)).unwrap();
        }
    }
    // One protocol without annotations: skipped, not learnt as "no entities".
    std::fs::copy(wlp.join("dev/protocol_0.txt"), annotated.join("protocol_0.txt")).unwrap();
    for n in [1, 7] {
        for ext in ["txt", "ann"] {
            let name = format!("protocol_{n}.{ext}");
            std::fs::copy(wlp.join("dev").join(&name), held.join(&name)).unwrap();
        }
        let name = format!("protocol_{n}.txt");
        std::fs::copy(wlp.join("dev").join(&name), plain.join(&name)).unwrap();
    }
    let model = dir.path().join("own.tagger.gz");
    let (a, h, m) = (annotated.to_str().unwrap(), held.to_str().unwrap(), model.to_str().unwrap());
    let o = fl_client(&[
        "train-tagger",
        "--annotated",
        a,
        "--out",
        m,
        "--dev",
        h,
        "--epochs",
        "2",
        "--bags",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("trained on 12 protocols") && out.contains("1 without annotations"),
        "{out}"
    );
    assert!(out.contains("new ") && out.contains("shipped "), "{out}");
    assert!(std::fs::metadata(&model).unwrap().len() > 1000);

    let specs = dir.path().join("specs");
    let (p, s) = (plain.to_str().unwrap(), specs.to_str().unwrap());
    let o = fl_client(&["extract", "--corpus", p, "--output", s, "--model", m]);
    assert!(o.status.success(), "{}", text(&o));
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(specs.join("protocol_1.spec.json")).unwrap())
            .unwrap();
    let actions = spec["summary"]["actions"].as_u64().unwrap();
    assert!(actions > 0, "the adapted tagger finds actions: {spec}");

    let garbage = dir.path().join("garbage.gz");
    std::fs::write(&garbage, b"not a model").unwrap();
    let g = garbage.to_str().unwrap();
    for (args, code, says) in [
        (vec!["extract", "--corpus", p, "--output", s, "--model", g], 1, "not a tagger model"),
        (vec!["train-tagger", "--annotated", p, "--out", m], 2, "annotated"),
        (vec!["train-tagger", "--annotated", a, "--out", m, "--epochs", "0"], 2, "epochs"),
        (vec!["train-tagger", "--annotated", a, "--out", m, "--dev", p], 1, "no annotated"),
    ] {
        let o = fl_client(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says) && !text(&o).contains("panicked"), "{}", text(&o));
    }
}

#[test]
fn extract_reads_windows_1252_and_skips_files_that_are_not_text() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    // Saved on Windows: `°` is the byte 0xB0, invalid as UTF-8.
    std::fs::write(corpus.join("protocol_1.txt"), b"Miniprep\nIncubate at 37 \xb0C for 1 h.\n")
        .unwrap();
    std::fs::write(corpus.join("protocol_2.txt"), b"PK\x03\x04\x14\x00\x06\x00").unwrap();
    let output = dir.path().join("specs");
    let (c, s) = (corpus.to_str().unwrap(), output.to_str().unwrap());
    let o = fl_client(&["extract", "--corpus", c, "--output", s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("read as windows-1252") && t.contains("protocol_1.txt"), "{t}");
    assert!(t.contains("skipped") && t.contains("protocol_2.txt") && t.contains("not text"), "{t}");
    assert!(t.contains("1 of 2 protocol files skipped"), "{t}");
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(output.join("protocol_1.spec.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["steps"][0]["temperatures_c"][0]["min"], 37.0, "{spec}");
    assert!(!output.join("protocol_2.spec.json").exists());
}

#[test]
fn schema_prints_the_committed_schemas() {
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tiers/schema");
    for (tier, file) in
        [("1", "protocol-spec.v2.schema.json"), ("2", "feature-vector.v1.schema.json")]
    {
        let o = fl_client(&["schema", "--tier", tier]);
        assert!(o.status.success(), "{}", text(&o));
        let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(committed.join(file)).unwrap()).unwrap();
        assert_eq!(printed, file, "tier {tier}");
    }
    let o = fl_client(&["schema", "--tier", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // The older ProtocolSpec version the receiver still reads.
    let o = fl_client(&["schema", "--spec-version", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let v1 = std::fs::read_to_string(committed.join("protocol-spec.v1.schema.json")).unwrap();
    assert_eq!(printed, serde_json::from_str::<serde_json::Value>(&v1).unwrap());
    for bad in [&["--spec-version", "3"][..], &["--tier", "2", "--spec-version", "1"]] {
        let o = fl_client(&[&["schema"], bad].concat());
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert!(text(&o).contains("--spec-version"), "{}", text(&o));
    }
}

/// `join` settings that cannot work are refused before connecting: NaN α had quietly meant an
/// IID split, an idle timeout of 0 timed out at once, a mistyped width aborted on its
/// allocation (exit 2 for these), and a CA file without a certificate failed every handshake
/// with "unknown issuer" (now named, exit 1).
#[test]
fn join_refuses_unusable_settings_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("alice.identity");
    let id = identity.to_str().unwrap();
    let o = fl_client(&["keygen", "--partner-id", "alice", "--identity", id]);
    assert!(o.status.success(), "{}", text(&o));
    let empty_ca = dir.path().join("empty.pem");
    std::fs::write(&empty_ca, "not a certificate\n").unwrap();
    let ca = empty_ca.to_str().unwrap();
    // Port 9 (discard) on loopback: nothing is expected to answer; every case must stop first.
    let join = ["join", "--identity", id, "--dataset", "digits", "--server", "127.0.0.1:9"];
    for (bad, code, says) in [
        (&["--alpha", "nan", "--ca", ca][..], 2, "alpha"),
        (&["--alpha=-1", "--ca", ca], 2, "alpha"),
        (&["--idle-timeout", "0", "--ca", ca], 2, "idle-timeout"),
        (&["--hidden", "99999999999", "--ca", ca], 2, "hidden"),
        (&["--ca", ca], 1, "no PEM certificate"),
    ] {
        let mut args = join.to_vec();
        args.extend(bad);
        let o = fl_client(&args);
        assert_eq!(o.status.code(), Some(code), "{bad:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{bad:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{bad:?}: {}", text(&o));
    }
}
