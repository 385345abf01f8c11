//! The networked federation: the coordinator and participant state machines driven over TCP
//! with TLS 1.2/1.3 (rustls, ring provider), authenticated partners and signed messages.
//!
//! Connection protocol, each message a length-prefixed postcard frame ([`crate::frame`]):
//!
//! 1. server → client [`Downlink::Hello`] with a fresh 32-byte challenge;
//! 2. client → server [`Uplink::Auth`]: partner id, example count, ed25519 signature of the
//!    challenge and id ([`crate::auth`]); the server checks it against its registry and answers
//!    [`Downlink::Accepted`] or [`Downlink::Rejected`] (then closes);
//! 3. the server sends [`Downlink::Protocol`] messages of the round; the client answers with
//!    [`Uplink::Signed`] messages (sequence number, round, model version and body signed for
//!    this session). Wrong rounds or versions, bad signatures, replays, oversized frames and
//!    garbage close that connection only; the federation carries on with the others;
//! 4. [`Downlink::Done`] when the federation ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fl_core::{ModelParams, ModelVersion, PartnerId, Round};
use fl_train::{Dataset, Mlp, evaluate};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::auth::{
    AuthResponse, Challenge, Identity, Registry, Session, SignedMessage, new_challenge,
};
use crate::config::PrivacyMode;
use crate::coordinator::{Advance, Coordinator, Outbox};
use crate::frame::{FrameDecoder, encode_frame};
use crate::messages::{ClientMsg, ServerMsg, decode, encode};
use crate::state::{now_ms, save_checkpoint};
use crate::{Error, FederationConfig, Participant, Result};

/// Largest handshake frame (an auth response is ~150 bytes).
const HANDSHAKE_MAX_FRAME: u32 = 4096;

/// Server → client frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Downlink {
    /// The challenge to sign.
    Hello {
        /// Fresh random challenge.
        challenge: Challenge,
    },
    /// Authentication succeeded.
    Accepted {
        /// Rounds completed so far.
        completed: Round,
    },
    /// Authentication failed; the server closes the connection.
    Rejected {
        /// Why.
        reason: String,
    },
    /// A federation protocol message.
    Protocol(ServerMsg),
    /// The federation is over.
    Done {
        /// Why (e.g. all rounds completed).
        reason: String,
    },
}

/// Client → server frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Uplink {
    /// The answer to the challenge.
    Auth(AuthResponse),
    /// A signed protocol message.
    Signed(SignedMessage),
}

/// PEM certificate and key files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// A self-signed certificate for `localhost` and `127.0.0.1` in `dir/tls/`, created on first
/// use and reused afterwards. Clients trust it with `--ca dir/tls/cert.pem`.
///
/// # Errors
///
/// [`Error::Tls`], [`Error::Io`].
pub fn self_signed(dir: &Path) -> Result<TlsFiles> {
    let tls = dir.join("tls");
    let files = TlsFiles { cert: tls.join("cert.pem"), key: tls.join("key.pem") };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&tls)?;
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| Error::Tls(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(
        &mut opts.open(&files.key)?,
        ck.signing_key.serialize_pem().as_bytes(),
    )?;
    std::fs::write(&files.cert, ck.cert.pem())?;
    Ok(files)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS acceptor for a certificate and key.
///
/// # Errors
///
/// [`Error::Tls`] for unreadable or mismatched files.
pub fn server_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor> {
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| Error::Tls(format!("{}: {e}", files.cert.display())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", files.cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| Error::Tls(format!("{}: {e}", files.key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn client_tls(ca: &Path) -> Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?
    {
        roots
            .add(cert.map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?)
            .map_err(|e| Error::Tls(e.to_string()))?;
    }
    if roots.is_empty() {
        // An empty trust store would fail every handshake with an unhelpful "unknown issuer".
        return Err(Error::Tls(format!("{}: no PEM certificate to trust", ca.display())));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Writes one message as a frame.
///
/// # Errors
///
/// Framing and I/O failures.
pub async fn send_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
    max: u32,
) -> Result<()> {
    w.write_all(&encode_frame(&encode(msg)?, max)?).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one message; `None` at a clean end of stream.
///
/// # Errors
///
/// Oversized or malformed frames, I/O failures.
pub async fn recv_frame<R: AsyncRead + Unpin, T: serde::de::DeserializeOwned>(
    r: &mut R,
    dec: &mut FrameDecoder,
) -> Result<Option<T>> {
    loop {
        if let Some(frame) = dec.next_frame()? {
            return decode(&frame).map(Some);
        }
        let mut buf = vec![0u8; dec.wanted().clamp(1, 1 << 20)];
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return if dec.buffered() == 0 {
                Ok(None)
            } else {
                Err(Error::Malformed("stream ended inside a frame".into()))
            };
        }
        dec.push(&buf[..n]);
    }
}

/// `now + d`, or a deadline a century away when that overflows the clock (a timeout of
/// `Duration::MAX` means "wait as long as it takes", not a panic).
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// How long a new connection has to complete its TLS handshake (and, for the federation,
/// authentication) before it is dropped, so idle connections cannot pile up.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener's next connection. Accept errors (e.g. `EMFILE` while connections use up the
/// file descriptors) are transient for a listener: report, pause briefly and go on, rather than
/// stop accepting for the rest of the process.
pub(crate) async fn accept_next(
    listener: &TcpListener,
    on_error: impl Fn(&std::io::Error),
) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                on_error(&e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

pub(crate) async fn timed<T>(
    what: &str,
    d: Duration,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(d, f).await.map_err(|_| Error::Timeout(what.to_owned()))?
}

/// Server settings.
#[derive(Debug)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// State directory: `partners.json`, `audit.log`, `budget.ledger`, `model.safetensors`, `tls/`.
    pub state_dir: PathBuf,
    /// The federation (rounds, quorum, aggregator, privacy, DP).
    pub federation: FederationConfig,
    /// The initial global model.
    pub initial: ModelParams<f32>,
    /// TLS certificate and key; a self-signed pair in the state directory when `None`.
    pub tls: Option<TlsFiles>,
    /// How long to wait for the first quorum of partners to connect.
    pub join_timeout: Duration,
    /// How long to wait for the answers of one protocol phase.
    pub phase_timeout: Duration,
    /// Largest frame accepted from an authenticated client.
    pub max_frame: u32,
    /// Model and held-out data to report accuracy after each round.
    pub evaluation: Option<(Mlp, Dataset)>,
    /// The public threshold key (Paillier privacy mode only).
    pub paillier: Option<crate::paillier::PaillierSetup>,
}

/// What the server reports while it runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ServeEvent {
    /// Listening (the actual address, useful with port 0).
    Listening(SocketAddr),
    /// A partner authenticated.
    Joined(PartnerId),
    /// A connection or message was refused; the server carries on.
    Refused {
        /// Peer address or partner.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A round finished or was abandoned.
    Round(NetRoundReport),
    /// The server resumed a federation from its state directory.
    Resumed(Resumed),
}

/// One round of a networked federation.
#[derive(Clone, Debug, Serialize)]
pub struct NetRoundReport {
    /// The round.
    pub round: u64,
    /// Partners whose updates are in the aggregate.
    pub included: Vec<String>,
    /// Test accuracy after the round (when evaluation data was given).
    pub accuracy: Option<f64>,
    /// Seconds the round took.
    pub seconds: f64,
    /// Why the round was abandoned, if it was.
    pub aborted: Option<String>,
}

/// The end of a federation.
#[derive(Clone, Debug, Serialize)]
pub struct ServeReport {
    /// Rounds in order.
    pub rounds: Vec<NetRoundReport>,
    /// Accuracy of the initial model (when evaluation data was given).
    pub initial_accuracy: Option<f64>,
    /// Refused connections and messages.
    pub refused: Vec<String>,
}

enum Event {
    Joined { partner: PartnerId, num_examples: u64, tx: mpsc::UnboundedSender<Downlink>, conn: u64 },
    Msg { partner: PartnerId, conn: u64, signed: (Round, ModelVersion), msg: ClientMsg },
    Refused { peer: String, reason: String },
    Gone { partner: PartnerId, conn: u64 },
}

/// Authenticates one connection and then pumps its frames: signed messages to the central
/// loop, downlink messages to the socket.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    conn: u64,
    acceptor: tokio_rustls::TlsAcceptor,
    registry: Arc<Registry>,
    events: mpsc::UnboundedSender<Event>,
    max_frame: u32,
) {
    let refuse = |reason: String| {
        let _ = events.send(Event::Refused { peer: peer.to_string(), reason });
    };
    let handshake = async {
        let tls = acceptor.accept(tcp).await.map_err(|e| Error::Tls(e.to_string()))?;
        let (mut rd, mut wr) = tokio::io::split(tls);
        let challenge = new_challenge(&mut fl_dp::csprng()?);
        send_frame(&mut wr, &Downlink::Hello { challenge }, HANDSHAKE_MAX_FRAME).await?;
        let mut dec = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
        let Some(Uplink::Auth(resp)) = recv_frame::<_, Uplink>(&mut rd, &mut dec).await? else {
            return Err(Error::Auth("expected an authentication response".into()));
        };
        match registry.verify(&challenge, &resp) {
            Ok(key) => {
                Ok((rd, wr, Session::new(resp.partner.clone(), key, challenge), resp.num_examples))
            }
            Err(e) => {
                let _ = send_frame(
                    &mut wr,
                    &Downlink::Rejected { reason: e.to_string() },
                    HANDSHAKE_MAX_FRAME,
                )
                .await;
                Err(e)
            }
        }
    };
    let (mut rd, mut wr, mut session, num_examples) =
        match timed("handshake", HANDSHAKE_TIMEOUT, handshake).await {
            Ok(x) => x,
            Err(e) => return refuse(e.to_string()),
        };
    let partner = session.partner().clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<Downlink>();
    if tx.send(Downlink::Accepted { completed: Round(0) }).is_err()
        || events.send(Event::Joined { partner: partner.clone(), num_examples, tx, conn }).is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let done = matches!(m, Downlink::Done { .. });
            if send_frame(&mut wr, &m, u32::MAX).await.is_err() || done {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut dec = FrameDecoder::new(max_frame);
    loop {
        let msg = match recv_frame::<_, Uplink>(&mut rd, &mut dec).await {
            Ok(Some(Uplink::Signed(m))) => m,
            Ok(None) => break,
            Ok(Some(_)) => {
                refuse(format!("{partner}: unexpected frame after authentication"));
                break;
            }
            Err(e) => {
                refuse(format!("{partner}: {e}"));
                break;
            }
        };
        let body = match session.open(&msg).and_then(decode::<ClientMsg>) {
            Ok(b) => b,
            Err(e) => {
                refuse(format!("{partner}: {e}"));
                break;
            }
        };
        if events
            .send(Event::Msg {
                partner: partner.clone(),
                conn,
                signed: (msg.round, msg.model_version),
                msg: body,
            })
            .is_err()
        {
            break;
        }
    }
    let _ = events.send(Event::Gone { partner, conn });
    writer.abort();
}

struct Links {
    by_partner: BTreeMap<PartnerId, (u64, mpsc::UnboundedSender<Downlink>)>,
    /// Partners added to the coordinator (they stay known across reconnects).
    known: std::collections::BTreeSet<PartnerId>,
}

impl Links {
    fn deliver(&self, outbox: Outbox) {
        for (to, msg) in outbox {
            if let Some((_, tx)) = self.by_partner.get(&to) {
                let _ = tx.send(Downlink::Protocol(msg));
            }
        }
    }
}

/// Runs a federation over the network until `federation.rounds` rounds completed.
///
/// # Errors
///
/// Configuration, TLS, state-directory and coordinator failures; per-connection problems are
/// reported as [`ServeEvent::Refused`] and do not stop the server.
pub async fn serve(
    cfg: ServeConfig,
    on_event: &mut (dyn FnMut(ServeEvent) + Send),
) -> Result<ServeReport> {
    cfg.federation.validate()?;
    std::fs::create_dir_all(&cfg.state_dir)?;
    let registry = Arc::new(Registry::open(&cfg.state_dir.join("partners.json"))?);
    if registry.len() < cfg.federation.min_clients {
        return Err(Error::config(
            "partners",
            format!(
                "{} enrolled, the quorum is {}: enrol partners first (fl-server enrol)",
                registry.len(),
                cfg.federation.min_clients
            ),
        ));
    }
    if cfg.federation.privacy == PrivacyMode::Paillier && cfg.paillier.is_none() {
        // Refused before anyone connects: otherwise the first round would end the federation.
        return Err(Error::config(
            "paillier-key",
            "the Paillier privacy mode needs the dealer's public threshold key",
        ));
    }
    if let Some((model, _)) = &cfg.evaluation {
        // A model file of another architecture would first fail once partners had joined.
        cfg.initial.spec().ensure_same(model.spec()).map_err(|e| {
            Error::config("model", format!("the initial model is not the evaluated one: {e}"))
        })?;
    }
    let files = match &cfg.tls {
        Some(f) => f.clone(),
        None => self_signed(&cfg.state_dir)?,
    };
    let acceptor = server_acceptor(&files)?;
    let audit_path = cfg.state_dir.join("audit.log");
    let (coordinator, resumed) = open_state(&cfg, &audit_path)?;
    let mut coordinator = coordinator;
    if let Some(setup) = cfg.paillier.clone() {
        coordinator.set_paillier(setup)?;
    }
    if let Some(r) = &resumed {
        on_event(ServeEvent::Resumed(r.clone()));
    }

    let listener = TcpListener::bind(cfg.listen).await?;
    on_event(ServeEvent::Listening(listener.local_addr()?));
    let (ev_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let accept_tx = ev_tx.clone();
    let max_frame = cfg.max_frame;
    let accept_registry = Arc::clone(&registry);
    let accept = tokio::spawn(async move {
        let mut conn = 0u64;
        loop {
            let (tcp, peer) = accept_next(&listener, |e| {
                let _ = accept_tx.send(Event::Refused {
                    peer: "listener".into(),
                    reason: format!("accept failed, retrying: {e}"),
                });
            })
            .await;
            conn += 1;
            tokio::spawn(connection(
                tcp,
                peer,
                conn,
                acceptor.clone(),
                Arc::clone(&accept_registry),
                accept_tx.clone(),
                max_frame,
            ));
        }
    });
    drop(ev_tx);

    let mut links = Links { by_partner: BTreeMap::new(), known: std::collections::BTreeSet::new() };
    let mut refused = Vec::new();
    let handle = |ev: Event,
                  coordinator: &mut Coordinator,
                  links: &mut Links,
                  refused: &mut Vec<String>,
                  on_event: &mut (dyn FnMut(ServeEvent) + Send)|
     -> Result<()> {
        match ev {
            Event::Joined { partner, num_examples, tx, conn } => {
                if !links.known.contains(&partner) {
                    if let Err(e) = coordinator.add_partner(partner.clone(), num_examples) {
                        refused.push(format!("{partner}: {e}"));
                        on_event(ServeEvent::Refused {
                            peer: partner.to_string(),
                            reason: e.to_string(),
                        });
                        return Ok(());
                    }
                    links.known.insert(partner.clone());
                }
                coordinator.set_online(&partner, true);
                links.by_partner.insert(partner.clone(), (conn, tx));
                on_event(ServeEvent::Joined(partner));
            }
            Event::Msg { partner, conn, signed, msg } => {
                if links.by_partner.get(&partner).map(|l| l.0) != Some(conn) {
                    return Ok(());
                }
                let reason = if signed.0 != msg.round() {
                    Some(format!(
                        "signed round {} but the message is for round {}",
                        signed.0.0,
                        msg.round().0
                    ))
                } else if signed.1 != coordinator.model_version() {
                    Some(format!(
                        "model version {} is not the current {}",
                        signed.1.0,
                        coordinator.model_version().0
                    ))
                } else {
                    coordinator.receive(&partner, msg).err().map(|e| e.to_string())
                };
                if let Some(reason) = reason {
                    refused.push(format!("{partner}: {reason}"));
                    on_event(ServeEvent::Refused { peer: partner.to_string(), reason });
                }
            }
            Event::Refused { peer, reason } => {
                refused.push(format!("{peer}: {reason}"));
                on_event(ServeEvent::Refused { peer, reason });
            }
            Event::Gone { partner, conn } => {
                if links.by_partner.get(&partner).map(|l| l.0) == Some(conn) {
                    links.by_partner.remove(&partner);
                    coordinator.set_online(&partner, false);
                }
            }
        }
        Ok(())
    };

    // Wait for a quorum.
    let deadline = deadline_after(cfg.join_timeout);
    while links.by_partner.len() < cfg.federation.min_clients {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) => handle(ev, &mut coordinator, &mut links, &mut refused, on_event)?,
            Ok(None) => return Err(Error::Io(std::io::Error::other("listener stopped"))),
            Err(_) => {
                accept.abort();
                return Err(Error::Timeout(format!(
                    "{} of {} partners connected within {:?}",
                    links.by_partner.len(),
                    cfg.federation.min_clients,
                    cfg.join_timeout
                )));
            }
        }
    }
    // Let the rest of a burst of connections arrive.
    let grace = Instant::now() + Duration::from_millis(500);
    while let Ok(Some(ev)) =
        tokio::time::timeout(grace.saturating_duration_since(Instant::now()), events.recv()).await
    {
        handle(ev, &mut coordinator, &mut links, &mut refused, on_event)?;
    }

    let initial_accuracy = match &cfg.evaluation {
        Some((model, test)) => Some(evaluate(model, coordinator.global(), test)?.accuracy),
        None => None,
    };
    let mut rounds = Vec::new();
    let mut attempts = 0;
    while coordinator.completed().0 < cfg.federation.rounds && attempts < 2 * cfg.federation.rounds
    {
        attempts += 1;
        let t0 = Instant::now();
        // Partners that are not connected are not asked.
        let outbox = match coordinator.begin_round() {
            Ok(o) => o,
            Err(e @ (Error::NotEnoughPartners { .. } | Error::TooFewSampled { .. })) => {
                // Too few sampled is one round's draw; too few available ends the federation.
                let transient = matches!(e, Error::TooFewSampled { .. });
                let report = NetRoundReport {
                    round: coordinator.completed().0 + 1,
                    included: Vec::new(),
                    accuracy: None,
                    seconds: 0.0,
                    aborted: Some(e.to_string()),
                };
                on_event(ServeEvent::Round(report.clone()));
                rounds.push(report);
                if transient {
                    continue;
                }
                break;
            }
            Err(e) => return Err(e),
        };
        links.deliver(outbox);
        let mut deadline = deadline_after(cfg.phase_timeout);
        let report = loop {
            let connected: Vec<PartnerId> = coordinator
                .awaiting()
                .into_iter()
                .filter(|p| links.by_partner.contains_key(p))
                .collect();
            let ready = connected.is_empty() || Instant::now() >= deadline;
            if !ready
                && let Ok(Some(ev)) = tokio::time::timeout(
                    deadline.saturating_duration_since(Instant::now()),
                    events.recv(),
                )
                .await
            {
                handle(ev, &mut coordinator, &mut links, &mut refused, on_event)?;
                continue;
            }
            match coordinator.advance(now_ms())? {
                Advance::Continue(next) => {
                    links.deliver(next);
                    deadline = deadline_after(cfg.phase_timeout);
                }
                Advance::Finished(summary, closing) => {
                    links.deliver(closing);
                    save_checkpoint(
                        coordinator.global(),
                        &cfg.state_dir.join("model.safetensors"),
                    )?;
                    let accuracy = match &cfg.evaluation {
                        Some((model, test)) => {
                            Some(evaluate(model, coordinator.global(), test)?.accuracy)
                        }
                        None => None,
                    };
                    break NetRoundReport {
                        round: summary.round.0,
                        included: summary.included.iter().map(ToString::to_string).collect(),
                        accuracy,
                        seconds: t0.elapsed().as_secs_f64(),
                        aborted: None,
                    };
                }
                Advance::Aborted { round, reason, outbox } => {
                    links.deliver(outbox);
                    break NetRoundReport {
                        round: round.0,
                        included: Vec::new(),
                        accuracy: None,
                        seconds: t0.elapsed().as_secs_f64(),
                        aborted: Some(reason),
                    };
                }
            }
        };
        on_event(ServeEvent::Round(report.clone()));
        rounds.push(report);
    }
    for (_, tx) in links.by_partner.values() {
        let _ = tx.send(Downlink::Done {
            reason: format!("{} rounds completed", coordinator.completed().0),
        });
    }
    // Give the writers a moment to flush the goodbyes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    accept.abort();
    drop(coordinator);
    let verified = fl_audit::verify_file(&audit_path, None)?;
    if verified.records == 0 {
        return Err(Error::Malformed("empty audit log".into()));
    }
    Ok(ServeReport { rounds, initial_accuracy, refused })
}

/// How a restarted server picked up its state.
#[derive(Clone, Debug, Serialize)]
pub struct Resumed {
    /// Rounds completed before the restart whose model the checkpoint holds.
    pub completed: u64,
    /// A round the audit log records whose aggregate never reached the checkpoint (the server
    /// stopped between the two writes): it runs again, and its DP charges stand.
    pub rerun_round: Option<u64>,
    /// Open reservations of an interrupted round that were aborted (secure aggregation: the
    /// server never saw an update or a sum from that round).
    pub aborted_reservations: usize,
    /// Open reservations that were committed (plaintext: the server may have seen updates).
    pub committed_reservations: usize,
    /// Bytes of a torn final audit record that were cut.
    pub audit_truncated_bytes: u64,
}

/// A fresh federation, or the one in the state directory resumed from its last checkpoint.
///
/// The audit log decides where a restart resumes: its last round entry names the aggregate the
/// checkpoint must hold ([`crate::state::resume_point`]); the checkpoint must also fit the
/// configured model. A restart is itself logged (`resumed` event, with the digest of the
/// configuration it resumed under).
fn open_state(cfg: &ServeConfig, audit_path: &Path) -> Result<(Coordinator, Option<Resumed>)> {
    let checkpoint_path = cfg.state_dir.join("model.safetensors");
    let config_json =
        serde_json::to_string(&cfg.federation).map_err(|e| Error::Malformed(e.to_string()))?;
    if !audit_path.exists() {
        if checkpoint_path.exists() {
            return Err(Error::State(format!(
                "{} exists but there is no audit log: a federation's checkpoint is never resumed \
                 without the log that accounts for it",
                checkpoint_path.display()
            )));
        }
        let ledger = open_ledger(cfg)?;
        let audit = fl_audit::AuditLog::create(
            audit_path,
            fl_audit::Entry::genesis(cfg.federation.name.clone(), config_json),
            now_ms(),
            fl_audit::Durability::EveryAppend,
        )?;
        let c = Coordinator::new(
            cfg.federation.clone(),
            cfg.initial.clone(),
            Round(0),
            ledger,
            Some(audit),
            fl_dp::csprng()?,
        )?;
        return Ok((c, None));
    }
    // Verified and locked but not yet changed: a torn final record is cut only once the
    // resume is accepted, so a refused state directory is left byte for byte as it was.
    let verified = fl_audit::AuditLog::verify_for_open(audit_path)?;
    let records = verified.records()?;
    let from_checkpoint = checkpoint_path.exists();
    let initial = if from_checkpoint {
        let saved: ModelParams<f32> = fl_core::load_safetensors(&checkpoint_path)?;
        cfg.initial.spec().ensure_same(saved.spec()).map_err(|e| {
            Error::State(format!(
                "{} does not fit the configured model: {e}",
                checkpoint_path.display()
            ))
        })?;
        saved
            .ensure_finite()
            .map_err(|e| Error::State(format!("{}: {e}", checkpoint_path.display())))?;
        saved
    } else {
        cfg.initial.clone()
    };
    let point = crate::state::resume_point(
        crate::state::LoggedRound::last(&records),
        fl_audit::Digest::of_params(&initial),
        from_checkpoint,
    )?;
    // Checked before the ledger is touched: a refused state directory is left as it was.
    let ledger = open_ledger(cfg)?;
    let (mut audit, recovery) = verified.open(fl_audit::Durability::EveryAppend)?;
    let (mut aborted, mut committed) = (0, 0);
    if let Some(l) = &ledger {
        // An interrupted round never finished: under secure aggregation nothing of it was
        // released, so its reservations are aborted; in plaintext the server may have seen
        // updates, so they stand.
        for (r, _, _) in l.open_reservations()? {
            if cfg.federation.privacy.is_secure() {
                l.abort(r)?;
                aborted += 1;
            } else {
                l.commit(r)?;
                committed += 1;
            }
        }
    }
    let resumed = Resumed {
        completed: point.completed(),
        rerun_round: match point {
            crate::state::ResumePoint::Rerun(r) => Some(r),
            crate::state::ResumePoint::After(_) => None,
        },
        aborted_reservations: aborted,
        committed_reservations: committed,
        audit_truncated_bytes: recovery.truncated_bytes,
    };
    audit.append(resumed.audit_entry(&config_json), now_ms())?;
    let c = Coordinator::new(
        cfg.federation.clone(),
        initial,
        Round(resumed.completed),
        ledger,
        Some(audit),
        fl_dp::csprng()?,
    )?;
    Ok((c, Some(resumed)))
}

impl Resumed {
    /// The `resumed` audit event: what the restart found and did, and the digest of the
    /// configuration the federation goes on under (compare with the genesis record's).
    fn audit_entry(&self, config_json: &str) -> fl_audit::Entry {
        use fl_audit::Extension;
        let int = |v: u64| Extension::Int(i64::try_from(v).unwrap_or(i64::MAX));
        let mut fields = BTreeMap::from([
            ("completed".to_owned(), int(self.completed)),
            ("aborted_reservations".to_owned(), int(self.aborted_reservations as u64)),
            ("committed_reservations".to_owned(), int(self.committed_reservations as u64)),
            ("audit_truncated_bytes".to_owned(), int(self.audit_truncated_bytes)),
            (
                "config_digest".to_owned(),
                Extension::Digest(fl_audit::Digest::of(config_json.as_bytes())),
            ),
        ]);
        if let Some(r) = self.rerun_round {
            fields.insert("rerun_round".to_owned(), int(r));
        }
        fl_audit::Entry::Event { kind: "resumed".into(), fields }
    }
}

/// The budget ledger, when the federation uses differential privacy.
fn open_ledger(cfg: &ServeConfig) -> Result<Option<fl_dp::Ledger>> {
    Ok(match cfg.federation.dp {
        crate::DpSetting::Off => None,
        _ => Some(fl_dp::Ledger::open(
            cfg.state_dir.join("budget.ledger"),
            &fl_dp::LedgerConfig::default(),
        )?),
    })
}

/// Client settings.
#[derive(Debug)]
pub struct JoinConfig {
    /// `host:port` of the server.
    pub server: String,
    /// Name the server's certificate must carry (e.g. `localhost`).
    pub server_name: String,
    /// CA (or self-signed server) certificate to trust, PEM.
    pub ca: PathBuf,
    /// Largest frame accepted from the server.
    pub max_frame: u32,
    /// How long to wait for the server's next message before giving up.
    pub idle_timeout: Duration,
}

/// What a client saw.
#[derive(Clone, Debug, Serialize)]
pub struct JoinReport {
    /// Rounds whose aggregate included this client.
    pub rounds_included: u64,
    /// Rounds the client was told it was not selected for, with the reason.
    pub not_selected: Vec<String>,
    /// ε spent by this partner as last reported by the server.
    pub epsilon_spent: Option<f64>,
    /// The server's closing reason.
    pub done: String,
}

/// Joins a federation: connects, authenticates with `identity`, and answers the server's
/// messages with `participant` until the server says it is done.
///
/// # Errors
///
/// Connection, TLS, authentication (the server's reason), timeouts and malformed frames.
pub async fn join(
    cfg: &JoinConfig,
    identity: &Identity,
    participant: &mut Participant,
) -> Result<JoinReport> {
    let tls = timed(
        "connecting",
        Duration::from_secs(10),
        raw_tls(&cfg.server, &cfg.server_name, &cfg.ca),
    )
    .await?;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut dec = FrameDecoder::new(cfg.max_frame);
    macro_rules! next {
        () => {
            timed(
                "waiting for the server",
                cfg.idle_timeout,
                recv_frame::<_, Downlink>(&mut rd, &mut dec),
            )
        };
    }
    let Some(Downlink::Hello { challenge }) = next!().await? else {
        return Err(Error::Auth("the server did not send a challenge".into()));
    };
    send_frame(
        &mut wr,
        &Uplink::Auth(identity.respond(&challenge, participant.num_examples() as u64)),
        HANDSHAKE_MAX_FRAME,
    )
    .await?;
    match next!().await? {
        Some(Downlink::Accepted { .. }) => {}
        Some(Downlink::Rejected { reason }) => {
            return Err(Error::Auth(format!("server refused: {reason}")));
        }
        _ => return Err(Error::Auth("no answer to authentication".into())),
    }
    let mut report = JoinReport {
        rounds_included: 0,
        not_selected: Vec::new(),
        epsilon_spent: None,
        done: String::new(),
    };
    let mut seq = 0u64;
    let mut version = ModelVersion(0);
    loop {
        let msg = match next!().await? {
            Some(Downlink::Protocol(m)) => m,
            Some(Downlink::Done { reason }) => {
                report.done = reason;
                return Ok(report);
            }
            Some(_) => return Err(Error::Malformed("unexpected frame from the server".into())),
            None => {
                return Err(Error::Io(std::io::Error::other("the server closed the connection")));
            }
        };
        match &msg {
            ServerMsg::RoundStart(start) => version = start.model_version,
            ServerMsg::RoundEnd { included, epsilon_spent, .. } => {
                report.rounds_included += u64::from(*included);
                if epsilon_spent.is_some() {
                    report.epsilon_spent = *epsilon_spent;
                }
            }
            ServerMsg::NotSelected { round, reason } => {
                report.not_selected.push(format!("round {}: {reason}", round.0))
            }
            _ => {}
        }
        // Local training is CPU-bound: keep it off the async reactor.
        let replies = tokio::task::block_in_place(|| participant.handle(msg))?;
        for r in replies {
            seq += 1;
            let signed = identity.sign(&challenge, seq, r.round(), version, encode(&r)?);
            send_frame(&mut wr, &Uplink::Signed(signed), cfg.max_frame).await?;
        }
    }
}

/// Opens a connection and completes the TLS handshake (and nothing more): used by [`join`],
/// [`crate::ingest::submit`] and the [`crate::adversary`] clients.
///
/// # Errors
///
/// Connection and TLS failures.
pub async fn raw_tls(
    server: &str,
    server_name: &str,
    ca: &Path,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = client_tls(ca)?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| Error::Tls(format!("server name {server_name:?}: {e}")))?;
    let tcp = TcpStream::connect(server).await?;
    connector.connect(name, tcp).await.map_err(|e| Error::Tls(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_past_the_clock_saturates_instead_of_panicking() {
        let week = Duration::from_secs(7 * 86_400);
        assert!(deadline_after(Duration::MAX) > Instant::now() + week);
        assert!(deadline_after(Duration::from_secs(u64::MAX)) > Instant::now() + week);
        let soon = deadline_after(Duration::from_secs(1));
        assert!(soon <= Instant::now() + Duration::from_secs(1));
    }
}
