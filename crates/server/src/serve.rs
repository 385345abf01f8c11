//! `fl-server serve` and `fl-server enrol`: the networked federation (fl-net's TLS transport).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use fl_net::network::{ServeConfig, ServeEvent, TlsFiles, serve};
use fl_net::paillier::PaillierSetup;
use fl_net::simulation::{SimDataset, load};

use crate::Failure;
use crate::args::FederationArgs;

/// A certificate and key for the TLS listener; without them a self-signed pair in STATE/tls.
#[derive(Args, Debug)]
struct TlsArgs {
    /// TLS certificate (PEM); default: a self-signed one in STATE/tls.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    fn files(&self) -> Option<TlsFiles> {
        self.tls_cert.clone().zip(self.tls_key.clone()).map(|(cert, key)| TlsFiles { cert, key })
    }
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    federation: FederationArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// State directory (partner registry, audit log, budget ledger, checkpoints, TLS files).
    #[arg(long, default_value = "fl-state")]
    state: PathBuf,
    /// Rounds.
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Quorum: connected partners needed to start, and usable updates for a round to count.
    #[arg(long, default_value_t = 3)]
    min_clients: usize,
    /// Partners selected per round (default: every connected partner).
    #[arg(long, default_value_t = 1_000)]
    clients_per_round: usize,
    /// Initial model (safetensors); default: a fresh MLP for --dataset and --hidden.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Seconds to wait for the quorum to connect.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    join_timeout: u64,
    /// Seconds to wait for the answers of one protocol phase.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    phase_timeout: u64,
    /// Largest frame accepted from a client, in MiB (1 to 4095).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..4096))]
    max_frame_mib: u32,
    /// The public threshold key from `fl-server paillier-deal` (with --privacy paillier).
    #[arg(long)]
    paillier_key: Option<PathBuf>,
}

pub(crate) fn run(args: &ServeArgs) -> Result<(), Failure> {
    let f = &args.federation;
    let federation =
        f.config("fl-server serve", args.rounds, args.clients_per_round, args.min_clients)?;
    let (_, test) = load(SimDataset::parse(&f.dataset)?, f.seed)?;
    let mut widths = vec![test.num_features()];
    widths.extend(&f.hidden);
    widths.push(test.num_classes);
    let mlp = fl_train::Mlp::new(&widths)
        .map_err(|e| fl_net::Error::Config { name: "hidden", reason: e.to_string() })?;
    let initial = match &args.model {
        Some(p) => fl_core::load_safetensors(p)?,
        None => mlp.init(f.seed),
    };
    let cfg = ServeConfig {
        listen: args.listen,
        state_dir: args.state.clone(),
        federation,
        initial,
        tls: args.tls.files(),
        join_timeout: Duration::from_secs(args.join_timeout),
        phase_timeout: Duration::from_secs(args.phase_timeout),
        max_frame: args.max_frame_mib.saturating_mul(1 << 20),
        evaluation: Some((mlp, test)),
        paillier: args.paillier_key.as_deref().map(PaillierSetup::load).transpose()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(serve(cfg, &mut |ev| match ev {
        ServeEvent::Listening(a) => {
            println!("listening on {a} (state in {})", args.state.display())
        }
        ServeEvent::Joined(p) => println!("joined: {p}"),
        ServeEvent::Resumed(r) => {
            println!(
                "resumed after round {} (interrupted round's reservations: {} aborted, {} committed; {} torn audit bytes cut)",
                r.completed,
                r.aborted_reservations,
                r.committed_reservations,
                r.audit_truncated_bytes
            );
            if let Some(round) = r.rerun_round {
                println!(
                    "round {round} is in the audit log but its model was not saved: it runs again (its DP charges stand)"
                );
            }
        }
        ServeEvent::Refused { peer, reason } => println!("refused {peer}: {reason}"),
        ServeEvent::Round(r) => match (&r.aborted, r.accuracy) {
            (Some(reason), _) => println!("round {:>3} aborted: {reason}", r.round),
            (None, acc) => println!(
                "round {:>3}  accuracy {}  included {}  {:.2} s",
                r.round,
                acc.map_or_else(|| "-".into(), |a| format!("{:.2} %", 100.0 * a)),
                r.included.len(),
                r.seconds
            ),
        },
        _ => {}
    }))?;
    let completed = report.rounds.iter().filter(|r| r.aborted.is_none()).count();
    let last = report.rounds.iter().rev().find_map(|r| r.accuracy);
    if let (Some(a), Some(b)) = (report.initial_accuracy, last) {
        println!("accuracy: initial {:.2} % -> final {:.2} %", 100.0 * a, 100.0 * b);
    }
    println!(
        "done: {completed} rounds, {} refused connections or messages; audit log {} verifies",
        report.refused.len(),
        args.state.join("audit.log").display()
    );
    std::fs::write(args.state.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct EnrolArgs {
    /// State directory holding `partners.json`.
    #[arg(long, default_value = "fl-state")]
    state: PathBuf,
    /// The partner's id.
    #[arg(long)]
    partner_id: String,
    /// The partner's ed25519 public key, 64 hex digits (`fl-client keygen` prints it).
    #[arg(long)]
    public_key: String,
}

pub(crate) fn enrol(args: &EnrolArgs) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.state)?;
    let mut registry = fl_net::auth::Registry::open(&args.state.join("partners.json"))?;
    let id = fl_core::PartnerId::new(args.partner_id.clone())?;
    registry.enrol(id.clone(), fl_net::auth::parse_public_key(&args.public_key)?)?;
    println!("enrolled {id} ({} partners)", registry.len());
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct PaillierDealArgs {
    /// Partner ids, comma separated (share i goes to the i-th).
    #[arg(long, value_delimiter = ',', required = true)]
    partners: Vec<String>,
    /// Decryption shares needed to decrypt a round's sum (at most --min-clients of `serve`).
    #[arg(long)]
    threshold: u32,
    /// Modulus size in bits (2048 or more).
    #[arg(long, default_value_t = 2048)]
    bits: u32,
    /// Directory for `paillier-public.json` and `<partner>.paillier-key` (must not hold them).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn paillier_deal(args: &PaillierDealArgs) -> Result<(), Failure> {
    let partners = args
        .partners
        .iter()
        .map(|p| fl_core::PartnerId::new(p.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&args.out)?;
    let public = args.out.join("paillier-public.json");
    if public.exists() {
        return Err(fl_net::Error::Config {
            name: "out",
            reason: format!("{} exists; deal into an empty directory", public.display()),
        }
        .into());
    }
    let (setup, keys) =
        fl_net::paillier::deal(&partners, args.threshold, args.bits, &mut fl_dp::csprng()?)?;
    for (p, key) in &keys {
        fl_net::paillier::save_party_key(key, &args.out.join(format!("{p}.paillier-key")))?;
    }
    setup.save(&public)?;
    println!(
        "dealt a {}-bit key, {} of {} shares decrypt: {} for the server; one secret .paillier-key file per partner in {} (hand each over confidentially, then delete it here)",
        args.bits,
        args.threshold,
        keys.len(),
        public.display(),
        args.out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct ApiKeyArgs {
    /// State directory holding `apikeys.json`.
    #[arg(long, default_value = "fl-state")]
    state: PathBuf,
    /// The partner the key is for (replaces its previous key).
    #[arg(long)]
    partner_id: String,
}

pub(crate) fn apikey(args: &ApiKeyArgs) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.state)?;
    let mut keys = fl_net::ingest::ApiKeys::open(&args.state.join("apikeys.json"))?;
    let key = keys.issue(fl_core::PartnerId::new(args.partner_id.clone())?)?;
    // Shown once; only its SHA-256 is stored.
    println!("{}", key.as_str());
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct IngestArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9091")]
    listen: SocketAddr,
    /// State directory (`apikeys.json`, `submissions/`, `tls/`).
    #[arg(long, default_value = "fl-state")]
    state: PathBuf,
    #[command(flatten)]
    tls: TlsArgs,
}

pub(crate) fn ingest(args: &IngestArgs) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.state)?;
    let tls = match args.tls.files() {
        Some(files) => files,
        None => fl_net::network::self_signed(&args.state)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let state = args.state.clone();
    runtime.block_on(fl_net::ingest::serve_ingest(
        args.listen,
        &args.state,
        &tls,
        std::sync::Arc::new(|line| println!("{line}")),
        |addr| {
            println!(
                "accepting submissions on {addr} (stored in {})",
                state.join("submissions").display()
            )
        },
    ))?;
    Ok(())
}
