//! A restarted server resumes where its audit log says the federation stands: the checkpoint
//! must be the last logged aggregate (or, after a crash between logging and checkpointing, the
//! model that round started from, and the round runs again); a checkpoint the log does not
//! account for, one of another shape, or one without a log is refused and the state directory
//! is left as it was. Every restart is logged.

#![allow(clippy::unwrap_used, clippy::panic_in_result_fn, reason = "test code")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fl_audit::{AuditLog, Digest, Durability, Entry, Extension, RoundEntry};
use fl_core::{ModelParams, ModelVersion, PartnerId, Round};
use fl_net::auth::{Identity, Registry, parse_public_key};
use fl_net::network::{Resumed, ServeConfig, ServeEvent, serve};
use fl_net::{Error, FederationConfig};
use fl_train::Mlp;

mod common;
use common::federation_config;

fn federation() -> FederationConfig {
    federation_config("resume test", 3, 2)
}

fn mlp(hidden: usize) -> Mlp {
    Mlp::new(&[64, hidden, 10]).unwrap()
}

/// The three global models of a federation that logged two rounds: initial, after 1, after 2.
fn models() -> [ModelParams<f32>; 3] {
    let m = mlp(8);
    [m.init(1), m.init(2), m.init(3)]
}

fn round_entry(round: u64, incoming: &ModelParams<f32>, aggregate: &ModelParams<f32>) -> Entry {
    Entry::Round(Box::new(RoundEntry {
        round: Round(round),
        model_version: ModelVersion(0),
        participants: vec![PartnerId::new("lab-0").unwrap(), PartnerId::new("lab-1").unwrap()],
        charges: Vec::new(),
        aggregator: "fedavg".into(),
        privacy_mode: "none".into(),
        incoming_model: Digest::of_params(incoming),
        aggregate: Digest::of_params(aggregate),
        update_digests: Vec::new(),
        extensions: BTreeMap::new(),
    }))
}

/// A state directory with two enrolled partners and an audit log of `rounds`
/// logged rounds (each from `models[r - 1]` to `models[r]`).
fn state_dir(root: &Path, rounds: u64) -> std::path::PathBuf {
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut rng = fl_dp::csprng().unwrap();
    let mut registry = Registry::open(&state.join("partners.json")).unwrap();
    for i in 0..2 {
        let id = Identity::generate(PartnerId::new(format!("lab-{i}")).unwrap(), &mut rng);
        registry
            .enrol(id.partner().clone(), parse_public_key(&id.public_key_hex()).unwrap())
            .unwrap();
    }
    let config = serde_json::to_string(&federation()).unwrap();
    let mut log = AuditLog::create(
        state.join("audit.log"),
        Entry::genesis("resume test", config),
        1,
        Durability::EveryAppend,
    )
    .unwrap();
    let m = models();
    for r in 1..=rounds {
        let r_ = usize::try_from(r).unwrap();
        log.append(round_entry(r, &m[r_ - 1], &m[r_]), 1 + r).unwrap();
    }
    state
}

/// Serves from `state` with a join timeout short enough that no partner is awaited: returns
/// the outcome and the `Resumed` event, if any.
fn restart(state: &Path) -> (Result<(), Error>, Option<Resumed>) {
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: state.to_path_buf(),
        federation: federation(),
        initial: models()[0].clone(),
        tls: None,
        join_timeout: Duration::from_millis(200),
        phase_timeout: Duration::from_secs(1),
        max_frame: 1 << 20,
        evaluation: None,
        paillier: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut resumed = None;
    let out = rt.block_on(serve(cfg, &mut |ev| {
        if let ServeEvent::Resumed(r) = ev {
            resumed = Some(r);
        }
    }));
    (out.map(|_| ()), resumed)
}

fn save(state: &Path, model: &ModelParams<f32>) {
    fl_core::save_safetensors(model, state.join("model.safetensors")).unwrap();
}

/// The entries of the audit log, its whole chain checked.
fn entries(state: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(state.join("audit.log")).unwrap();
    fl_audit::read_records(&bytes).unwrap().into_iter().map(|r| r.entry).collect()
}

fn int(fields: &BTreeMap<String, Extension>, key: &str) -> Option<i64> {
    match fields.get(key) {
        Some(Extension::Int(v)) => Some(*v),
        _ => None,
    }
}

#[test]
fn the_last_logged_aggregate_resumes_after_its_round_and_the_restart_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_dir(dir.path(), 2);
    save(&state, &models()[2]);
    let (out, resumed) = restart(&state);
    // Resumed, then waited for partners that never came.
    assert!(matches!(out, Err(Error::Timeout(_))), "{out:?}");
    let r = resumed.unwrap();
    assert_eq!((r.completed, r.rerun_round), (2, None));
    let log = entries(&state);
    assert_eq!(log.len(), 4);
    let Entry::Event { kind, fields } = &log[3] else { panic!("{:?}", log[3]) };
    assert_eq!(kind, "resumed");
    assert_eq!(int(fields, "completed"), Some(2));
    assert_eq!(int(fields, "rerun_round"), None);
    let config = serde_json::to_string(&federation()).unwrap();
    assert_eq!(
        fields.get("config_digest"),
        Some(&Extension::Digest(Digest::of(config.as_bytes())))
    );
}

#[test]
fn a_checkpoint_one_round_behind_the_log_reruns_that_round() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_dir(dir.path(), 2);
    save(&state, &models()[1]);
    let (_, resumed) = restart(&state);
    let r = resumed.unwrap();
    assert_eq!((r.completed, r.rerun_round), (1, Some(2)));
    let Entry::Event { fields, .. } = &entries(&state)[3] else { panic!() };
    assert_eq!(int(fields, "rerun_round"), Some(2));

    // The crash before the first checkpoint: no file yet, the configured model started round 1.
    let dir = tempfile::tempdir().unwrap();
    let state = state_dir(dir.path(), 1);
    let r = restart(&state).1.unwrap();
    assert_eq!((r.completed, r.rerun_round), (0, Some(1)));
}

/// A refused restart changes nothing in the state directory.
fn assert_refused(state: &Path, needle: &str) {
    let before = std::fs::read(state.join("audit.log")).ok();
    let (out, resumed) = restart(state);
    let err = out.unwrap_err();
    assert!(matches!(err, Error::State(_)), "{err:?}");
    assert!(err.to_string().contains(needle), "{err}");
    assert!(resumed.is_none());
    let after = std::fs::read(state.join("audit.log")).ok();
    let len = |b: &Option<Vec<u8>>| b.as_ref().map(Vec::len);
    assert!(after == before, "audit.log changed: {:?} → {:?} bytes", len(&before), len(&after));
}

#[test]
fn checkpoints_the_log_does_not_account_for_are_refused() {
    // A model that is neither round 2's aggregate nor its incoming model.
    let dir = tempfile::tempdir().unwrap();
    let state = state_dir(dir.path(), 2);
    save(&state, &models()[0]);
    assert_refused(&state, "neither the aggregate of round 2");

    // No checkpoint after two logged rounds: the configured model is not round 2's either.
    std::fs::remove_file(state.join("model.safetensors")).unwrap();
    assert_refused(&state, "the configured initial model");

    // A checkpoint of another architecture, and one holding a NaN.
    save(&state, &mlp(16).init(1));
    assert_refused(&state, "does not fit the configured model");
    let mut nan = models()[2].clone();
    nan.as_mut_slice()[5] = f32::NAN;
    save(&state, &nan);
    assert_refused(&state, "non-finite");

    // A log whose final record was torn by a crash: refused over a checkpoint it does not
    // account for, with the torn bytes left in place (they were cut before the refusal once);
    // accepted over the aggregate of the last intact round, and only then cut.
    let log = state.join("audit.log");
    let bytes = std::fs::read(&log).unwrap();
    std::fs::write(&log, &bytes[..bytes.len() - 1]).unwrap();
    save(&state, &models()[2]);
    assert_refused(&state, "neither the aggregate of round 1");
    save(&state, &models()[1]);
    let r = restart(&state).1.unwrap();
    assert_eq!((r.completed, r.rerun_round), (1, None));
    assert!(r.audit_truncated_bytes > 0);
    assert!(matches!(entries(&state).last(), Some(Entry::Event { kind, .. }) if kind == "resumed"));

    // A checkpoint beside a log with no round.
    let dir = tempfile::tempdir().unwrap();
    let state = state_dir(dir.path(), 0);
    save(&state, &models()[0]);
    assert_refused(&state, "records no round");

    // A checkpoint without a log: not started afresh over it.
    std::fs::remove_file(state.join("audit.log")).unwrap();
    assert_refused(&state, "no audit log");
    assert!(!state.join("audit.log").exists());
}
