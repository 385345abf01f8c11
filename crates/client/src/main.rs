//! `fl-client`: the partner's command-line front end. `extract` turns lab protocols into tier-1
//! specs (and tier-2 feature vectors) locally (`train-tagger` adapts its entity tagger to the
//! partner's own annotated protocols), `inspect` shows exactly what would be sent and
//! whether the sensitivity policy lets it out, `keygen` creates the partner's identity and
//! `join` takes part in a federation (tier 3).
//!
//! Exit codes: 0 success; 1 the command failed (unreadable input, unwritable output, invalid
//! files); 2 invalid arguments.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a CLI reports to the terminal")]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use fl_tiers::brat;
use fl_tiers::features::{FeatureVector, LocalDp, features, local_dp_summary};
use fl_tiers::inspect::{FEATURES_SUFFIX, SPEC_SUFFIX};
use fl_tiers::policy::{Agreement, AgreementKind, Sensitivity};
use fl_tiers::spec::{OLDEST_SPEC_VERSION, ProtocolSpec, SPEC_VERSION};
use fl_tiers::tagger::{Evaluation, Tagger, TrainOptions};

#[derive(Parser, Debug)]
#[command(
    name = "fl-client",
    version,
    about = "mshale-fl partner client (local extraction and inspection)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Extract ProtocolSpec JSON (tier 1) and feature vectors (tier 2) from `*.txt` protocols,
    /// locally; nothing is sent.
    Extract {
        /// 1: `<name>.spec.json` per protocol; 2: also `<name>.features.json`.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        tier: u8,
        /// Directory of protocol text files (first line = title, one step per line).
        #[arg(long)]
        corpus: PathBuf,
        /// Output directory (created if missing).
        #[arg(long)]
        output: PathBuf,
        /// Local DP on feature vectors (tier 2): ε per vector; none when omitted.
        #[arg(long)]
        dp_epsilon: Option<f64>,
        /// δ of the local DP release.
        #[arg(long, default_value_t = 1e-5)]
        dp_delta: f64,
        /// L2 clip norm C of the feature vector before noise (sensitivity 2C).
        #[arg(long, default_value_t = 8.0)]
        dp_clip: f64,
        /// Entity tagger model from `fl-client train-tagger` (default: the shipped model,
        /// trained on the WLP corpus).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Train the entity tagger on this partner's own brat-annotated protocols (`NAME.txt` with
    /// `NAME.ann`), for `extract --model`, when its annotation conventions differ from the
    /// shipped model's; locally, nothing is sent.
    TrainTagger {
        /// Directory of annotated protocols (repeatable; pooled). Protocols without
        /// annotations are skipped.
        #[arg(long = "annotated", required = true)]
        annotated: Vec<PathBuf>,
        /// Where to write the model (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Held-out annotated protocols: scores the new and the shipped model on them (exact
        /// span and type match).
        #[arg(long)]
        dev: Option<PathBuf>,
        /// Passes over the training protocols.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
        epochs: u16,
        /// Perceptrons on differently shuffled passes whose weights are averaged.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=20))]
        bags: u16,
    },
    /// Create an ed25519 identity file for a partner and print its public key (give it to the
    /// server operator for `fl-server enrol`).
    Keygen {
        /// The partner id.
        #[arg(long)]
        partner_id: String,
        /// Where to write the identity (never overwritten).
        #[arg(long)]
        identity: PathBuf,
    },
    /// Join a federation (tier 3): train locally and send signed, clipped, noised, securely
    /// aggregated updates.
    Join(Box<JoinArgs>),
    /// Send the specs (tier 1) or feature vectors (tier 2) of a directory that the policy lets
    /// out; each file is checked again by the server.
    Submit {
        /// Directory of `*.spec.json` (and, for tier 2, `*.features.json`) files.
        #[arg(long)]
        specs: PathBuf,
        /// 1: send ProtocolSpec files; 2: send feature vectors.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        tier: u8,
        /// Ingestion server `host:port`.
        #[arg(long, default_value = "127.0.0.1:9091")]
        server: String,
        /// Name on the server's certificate.
        #[arg(long, default_value = "localhost")]
        server_name: String,
        /// Certificate to trust.
        #[arg(long)]
        ca: PathBuf,
        /// API key (or the MSHALE_API_KEY environment variable).
        #[arg(long, env = "MSHALE_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Sensitivity level of the source protocols (0–3).
        #[arg(long, default_value_t = 0)]
        sensitivity: u8,
        /// A recorded agreement, `dpa:ID`, `irb:ID` or `training:ID` (repeatable).
        #[arg(long = "agreement", value_parser = parse_agreement)]
        agreements: Vec<Agreement>,
    },
    /// Show the privacy budget this partner has spent, as the server last reported it (kept
    /// beside the identity file by `join`).
    Budget {
        /// Identity file used with `join`.
        #[arg(long)]
        identity: PathBuf,
    },
    /// Show what would be sent from a directory of specs and feature vectors (the files
    /// `submit` reads), and the policy decision for each.
    Inspect {
        /// Directory of `*.spec.json` (tier 1) and `*.features.json` (tier 2) files.
        #[arg(long)]
        specs: PathBuf,
        /// Also list the non-zero feature-vector dimensions by name.
        #[arg(long)]
        show_features: bool,
        /// Sensitivity level of the source protocols: 0 public, 1 anonymised, 2 outcomes,
        /// 3 proprietary.
        #[arg(long, default_value_t = 0)]
        sensitivity: u8,
        /// A recorded agreement, `dpa:ID`, `irb:ID` or `training:ID` (repeatable).
        #[arg(long = "agreement", value_parser = parse_agreement)]
        agreements: Vec<Agreement>,
    },
    /// Print the JSON Schema of what a tier sends (1: ProtocolSpec, 2: feature vector), to
    /// check files with any JSON Schema validator before `submit`.
    Schema {
        /// 1: ProtocolSpec; 2: feature vector.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        tier: u8,
        /// Tier 1 only: the ProtocolSpec version whose schema to print (default: the version
        /// this build writes; older ones it still reads are accepted).
        #[arg(long)]
        spec_version: Option<u32>,
    },
}

#[derive(clap::Args, Debug)]
struct JoinArgs {
    /// Server `host:port`.
    #[arg(long, default_value = "127.0.0.1:9090")]
    server: String,
    /// Name on the server's certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Certificate to trust (the server's self-signed `STATE/tls/cert.pem` or a CA).
    #[arg(long)]
    ca: PathBuf,
    /// Identity file from `fl-client keygen`.
    #[arg(long)]
    identity: PathBuf,
    /// Local data: this partner's shard of a shipped dataset (mnist or digits).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Shard `I/N`: this partner is I of N (0-based).
    #[arg(long, default_value = "0/1")]
    shard: String,
    /// Dirichlet α of the label-skewed split (0: IID).
    #[arg(long, default_value_t = 0.5, value_parser = parse_alpha)]
    alpha: f64,
    /// Hidden layer widths (`none`: softmax regression); must match the server's model.
    #[arg(long, default_value = "128", value_parser = fl_net::simulation::parse_hidden)]
    hidden: ::std::vec::Vec<usize>,
    /// Seed of the data split (the server's --seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds to wait for the server's next message.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// This partner's threshold Paillier key file (from the dealer; --privacy paillier).
    #[arg(long)]
    paillier_key: Option<PathBuf>,
}

/// A Dirichlet α: 0 (IID) or finite and positive; NaN must not quietly mean IID.
fn parse_alpha(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(a) if a.is_finite() && a >= 0.0 => Ok(a),
        _ => Err(format!("{s:?} is not 0 (IID) or a finite positive α")),
    }
}

fn join(args: &JoinArgs) -> Result<()> {
    use fl_net::simulation::{Partition, SimDataset, partner_data};
    let (i, n) = args
        .shard
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .context("--shard is I/N, e.g. 0/3")?;
    let identity = fl_net::auth::Identity::load(&args.identity)?;
    let partition =
        if args.alpha > 0.0 { Partition::Dirichlet { alpha: args.alpha } } else { Partition::Iid };
    let (data, _) = partner_data(SimDataset::parse(&args.dataset)?, partition, n, i, args.seed)?;
    let mut widths = vec![data.num_features()];
    widths.extend(&args.hidden);
    widths.push(data.num_classes);
    let model = fl_train::Mlp::new(&widths)
        .map_err(|e| fl_net::Error::Config { name: "hidden", reason: e.to_string() })?;
    let mut participant =
        fl_net::Participant::new(identity.partner().clone(), model, data, fl_dp::csprng()?)?;
    if let Some(path) = &args.paillier_key {
        participant = participant.with_paillier(fl_net::paillier::load_party_key(path)?);
    }
    let cfg = fl_net::network::JoinConfig {
        server: args.server.clone(),
        server_name: args.server_name.clone(),
        ca: args.ca.clone(),
        max_frame: fl_net::frame::DEFAULT_MAX_FRAME,
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
    };
    println!(
        "{} joining {} with {} local examples",
        identity.partner(),
        args.server,
        participant.num_examples()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(fl_net::network::join(&cfg, &identity, &mut participant))?;
    let record = serde_json::json!({
        "server": args.server,
        "partner": identity.partner().as_str(),
        "epsilon_spent": report.epsilon_spent,
        "rounds_included": report.rounds_included,
        "not_selected": report.not_selected,
        "unix_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
    });
    let path = budget_path(&args.identity);
    std::fs::write(&path, serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "done ({}): included in {} rounds, ε spent {}",
        report.done,
        report.rounds_included,
        report.epsilon_spent.map_or_else(|| "-".into(), |e| format!("{e:.4}"))
    );
    for n in &report.not_selected {
        println!("not selected: {n}");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "one argument per command-line flag")]
fn submit(
    specs: &Path,
    tier: u8,
    server: &str,
    server_name: &str,
    ca: &Path,
    api_key: &str,
    sensitivity: u8,
    agreements: &[Agreement],
) -> Result<()> {
    use fl_tiers::policy::{Artifact, authorize};
    let level = Sensitivity::from_level(sensitivity)?;
    let suffix = if tier == 1 { SPEC_SUFFIX } else { FEATURES_SUFFIX };
    let paths = fl_tiers::inspect::files_ending_with(specs, suffix)?;
    if paths.is_empty() {
        bail!("{}: no {suffix} files", specs.display());
    }
    let mut outbound = Vec::new();
    let mut names = Vec::new();
    for p in &paths {
        // The same bounded read as `inspect`: what it shows is what is sent.
        let text = fl_tiers::inspect::read_artifact_file(p)?;
        let artifact = if tier == 1 {
            let spec = ProtocolSpec::from_json(&text)
                .with_context(|| format!("{}: not a ProtocolSpec", p.display()))?;
            Artifact::Spec(spec)
        } else {
            let fv = FeatureVector::from_json(&text)
                .with_context(|| format!("{}: not a feature vector", p.display()))?;
            Artifact::Features(fv)
        };
        // Nothing leaves without the policy's Outbound.
        outbound
            .push(authorize(artifact, level, agreements).with_context(|| p.display().to_string())?);
        names.push(p.display().to_string());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let replies =
        runtime.block_on(fl_net::ingest::submit(server, server_name, ca, api_key, &outbound))?;
    let mut refused = 0;
    for (name, r) in names.iter().zip(&replies) {
        match r {
            fl_net::ingest::IngestReply::Stored { sha256 } => println!("stored {name} ({sha256})"),
            fl_net::ingest::IngestReply::Refused { reason } => {
                refused += 1;
                println!("REFUSED {name}: {reason}");
            }
            _ => println!("{name}: unexpected reply"),
        }
    }
    if refused > 0 {
        bail!("the server refused {refused} of {} files", replies.len());
    }
    Ok(())
}

fn budget_path(identity: &Path) -> PathBuf {
    let mut name = identity.as_os_str().to_owned();
    name.push(".budget.json");
    PathBuf::from(name)
}

fn budget(identity: &Path) -> Result<()> {
    let path = budget_path(identity);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no budget record at {} (run join first)", path.display()))?;
    let r: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a budget record", path.display()))?;
    let eps =
        r["epsilon_spent"].as_f64().map_or_else(|| "- (no DP)".to_owned(), |e| format!("{e:.4}"));
    println!(
        "{} at {}: ε spent {eps}, included in {} rounds (as last reported by the server)",
        r["partner"].as_str().unwrap_or("?"),
        r["server"].as_str().unwrap_or("?"),
        r["rounds_included"]
    );
    if let Some(ns) = r["not_selected"].as_array() {
        for n in ns {
            println!("not selected: {}", n.as_str().unwrap_or_default());
        }
    }
    Ok(())
}

/// `KIND:ID` of `--agreement`; a malformed one is a usage error (exit 2) like any other flag.
fn parse_agreement(s: &str) -> std::result::Result<Agreement, String> {
    let (kind, id) =
        s.split_once(':').ok_or("an agreement is KIND:ID (dpa, irb, training)".to_owned())?;
    let kind = match kind {
        "dpa" => AgreementKind::Dpa,
        "irb" => AgreementKind::Irb,
        "training" => AgreementKind::FederatedTraining,
        other => return Err(format!("unknown agreement kind {other:?} (dpa, irb, training)")),
    };
    Agreement::new(kind, id).map_err(|e| e.to_string())
}

/// Runs `work` with a progress bar on stderr (hidden when stderr is not a terminal) that `work`
/// advances through its `(done, total)` callback.
fn with_progress<T>(
    template: &str,
    work: impl FnOnce(&mut dyn FnMut(usize, usize)) -> T,
) -> Result<T> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .context("progress template")?
            .progress_chars("=> "),
    );
    let out = work(&mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    Ok(out)
}

fn read_tagger(path: &Path) -> Result<Tagger> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    Tagger::read(std::io::BufReader::new(file))
        .with_context(|| format!("{}: not a tagger model of this version", path.display()))
}

fn extract(
    tier: u8,
    corpus: &Path,
    output: &Path,
    dp: Option<(f64, f64, f64)>,
    model: Option<&Path>,
) -> Result<()> {
    // Checked before any protocol is read: a bad value is a usage error and writes nothing.
    let local_dp = dp
        .map(|(epsilon, delta, clip)| {
            LocalDp::new(epsilon, delta, clip).map_err(|e| fl_tiers::Error::InvalidParameter {
                name: "local DP parameters",
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let own;
    let tagger = match model {
        Some(path) => {
            own = read_tagger(path)?;
            &own
        }
        None => fl_tiers::spec::shipped_tagger()?,
    };
    let report = with_progress(
        "extracting: {pos}/{len} protocols [{bar:30}] {elapsed_precise} (eta {eta})",
        |progress| fl_tiers::spec::extract_dir_with_progress(tagger, corpus, output, progress),
    )??;
    for (path, encoding) in &report.transcoded {
        eprintln!("read as {}: {}", encoding.name(), path.display());
    }
    for (path, reason) in &report.skipped {
        eprintln!("skipped {}: {reason}", path.display());
    }
    if report.specs.is_empty() && report.skipped.is_empty() {
        bail!("{}: no .txt protocols found", corpus.display());
    }
    #[allow(clippy::cast_precision_loss, reason = "file counts")]
    let rate = report.specs.len() as f64 / report.seconds.max(1e-9);
    println!(
        "tier 1: {} ProtocolSpec files in {} ({:.2} s, {rate:.0} protocols/s)",
        report.specs.len(),
        output.display(),
        report.seconds
    );
    if tier == 2 {
        let mut rng = fl_dp::csprng()?;
        for (stem, spec) in &report.specs {
            let mut fv = features(spec);
            if let Some(local_dp) = &local_dp {
                fv = local_dp.privatize(&fv, &mut rng)?;
            }
            // Written beside and renamed over, so `submit` never reads half a file.
            let path = output.join(format!("{stem}{FEATURES_SUFFIX}"));
            let tmp = output.join(format!(".{stem}{FEATURES_SUFFIX}.tmp"));
            std::fs::write(&tmp, serde_json::to_string(&fv)?)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let n = report.specs.len();
        let dp_note = dp.map_or_else(|| "no local DP".to_owned(), local_dp_summary);
        println!("tier 2: {n} feature vectors (223 dims, {dp_note})");
    }
    if !report.skipped.is_empty() {
        bail!(
            "{} of {} protocol files skipped (listed above); the others were written",
            report.skipped.len(),
            report.skipped.len() + report.specs.len()
        );
    }
    Ok(())
}

fn train_tagger(
    annotated: &[PathBuf],
    out: &Path,
    dev: Option<&Path>,
    epochs: u16,
    bags: u16,
) -> Result<()> {
    let mut docs = Vec::new();
    let mut skipped = 0usize;
    for dir in annotated {
        for doc in brat::read_dir(dir)? {
            if doc.entities.is_empty() {
                skipped += 1;
            } else {
                docs.push(doc);
            }
        }
    }
    // Held-out protocols are read before training, so a bad `--dev` fails fast.
    let held = dev.map(|dir| brat::read_dir(dir).map(|docs| (dir, docs))).transpose()?;
    if let Some((dir, docs)) = &held
        && docs.iter().all(|d| d.entities.is_empty())
    {
        bail!("{}: no annotated protocols to score on", dir.display());
    }
    let entities: usize = docs.iter().map(|d| d.entities.len()).sum();
    let options = TrainOptions {
        epochs: usize::from(epochs),
        bags: usize::from(bags),
        ..TrainOptions::shipped()
    };
    let t = std::time::Instant::now();
    let tagger = with_progress(
        "training: pass {pos}/{len} [{bar:30}] {elapsed_precise} (eta {eta})",
        |progress| Tagger::train_with_progress(&docs, options, progress),
    )??;
    println!(
        "trained on {} protocols ({entities} entities, {} types; {skipped} without annotations \
         skipped) in {:.1} s",
        docs.len(),
        tagger.kinds().len(),
        t.elapsed().as_secs_f64()
    );
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir
        .join(format!(".{}.tmp", out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let mut bytes = Vec::new();
    tagger.write(&mut bytes)?;
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    if let Some((dev, held)) = held {
        println!("on {} ({} protocols), F1 exact span and type:", dev.display(), held.len());
        for (name, t) in [("new", &tagger), ("shipped", fl_tiers::spec::shipped_tagger()?)] {
            let e = Evaluation::run(t, &held);
            let action = e.per_type.get("Action").copied().unwrap_or_default();
            println!(
                "  {name:8} numeric {:.3}  all types {:.3}  Action {:.3}",
                e.numeric_micro.f1(),
                e.micro.f1(),
                action.f1()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Extract { tier, corpus, output, dp_epsilon, dp_delta, dp_clip, model } => {
            let dp = dp_epsilon.map(|e| (e, dp_delta, dp_clip));
            extract(tier, &corpus, &output, dp, model.as_deref())
        }
        Command::TrainTagger { annotated, out, dev, epochs, bags } => {
            train_tagger(&annotated, &out, dev.as_deref(), epochs, bags)
        }
        Command::Keygen { partner_id, identity } => (|| {
            let id = fl_net::auth::Identity::generate(
                fl_core::PartnerId::new(partner_id)?,
                &mut fl_dp::csprng()?,
            );
            id.save(&identity).with_context(|| format!("writing {}", identity.display()))?;
            println!("{}", id.public_key_hex());
            Ok(())
        })(),
        Command::Join(args) => join(&args),
        Command::Budget { identity } => budget(&identity),
        Command::Submit {
            specs,
            tier,
            server,
            server_name,
            ca,
            api_key,
            sensitivity,
            agreements,
        } => submit(&specs, tier, &server, &server_name, &ca, &api_key, sensitivity, &agreements),
        Command::Inspect { specs, show_features, sensitivity, agreements } => (|| {
            let level = Sensitivity::from_level(sensitivity)?;
            let report = fl_tiers::inspect::inspect(&specs, level, &agreements, show_features)?;
            print!("{report}");
            Ok(())
        })(),
        Command::Schema { tier, spec_version } => (|| {
            let schema = match (tier, spec_version) {
                (1, None) => ProtocolSpec::json_schema(),
                (1, Some(v)) => ProtocolSpec::json_schema_of_version(v).ok_or_else(|| {
                    fl_tiers::Error::InvalidParameter {
                        name: "--spec-version",
                        reason: format!(
                            "{v}: this build reads ProtocolSpec versions {OLDEST_SPEC_VERSION} to {SPEC_VERSION}"
                        ),
                    }
                })?,
                (_, None) => FeatureVector::json_schema(),
                (_, Some(_)) => {
                    return Err(fl_tiers::Error::InvalidParameter {
                        name: "--spec-version",
                        reason: "only for --tier 1".into(),
                    }
                    .into());
                }
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", fl_core::display_chain(e.as_ref()));
            let usage = e
                .downcast_ref::<fl_tiers::Error>()
                .is_some_and(|e| matches!(e, fl_tiers::Error::InvalidParameter { .. }))
                || e.downcast_ref::<fl_net::Error>()
                    .is_some_and(|e| matches!(e, fl_net::Error::Config { .. }));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
