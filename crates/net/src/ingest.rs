//! Tier-1/2 ingestion: partners `submit` policy-checked artifacts ([`fl_tiers::policy::Outbound`])
//! with an API key; the server checks the key, re-applies the sensitivity policy itself, and
//! stores each artifact durably (written, fsynced, renamed, directory fsynced) under
//! `STATE/submissions/<partner>/<kind>-<sha256>.json`. Resubmitting the same artifact is
//! idempotent.
//!
//! API keys are 32 random bytes shown once (hex); the server keeps only their SHA-256 and
//! compares digests in constant time against every stored key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fl_core::PartnerId;
use fl_tiers::policy::{Agreement, Artifact, Outbound, Sensitivity, authorize};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::frame::FrameDecoder;
use crate::network::{
    HANDSHAKE_TIMEOUT, TlsFiles, accept_next, raw_tls, recv_frame, send_frame, server_acceptor,
    timed,
};
use crate::state::{hex, unhex, write_atomic, write_json_atomic};
use crate::{Error, Result};

/// Largest submission frame.
pub const MAX_SUBMISSION: u32 = 4 << 20;

/// What travels: the artifact (as its JSON, the format tier-1 specs are defined in) with the
/// level and agreements it was authorized under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The artifact as JSON ([`Artifact`]).
    pub artifact_json: String,
    /// Its sensitivity level.
    pub level: Sensitivity,
    /// The agreements that allowed it.
    pub agreements: Vec<Agreement>,
}

impl Submission {
    /// The submission of an authorized artifact.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] if the artifact does not serialize (it always does).
    pub fn new(o: &Outbound) -> Result<Self> {
        Ok(Self {
            artifact_json: serde_json::to_string(o.artifact())
                .map_err(|e| Error::Malformed(e.to_string()))?,
            level: o.level(),
            agreements: o.agreements().to_vec(),
        })
    }
}

/// Client → server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IngestRequest {
    /// Store one artifact.
    Submit {
        /// The partner's API key (hex).
        api_key: String,
        /// The artifact.
        submission: Box<Submission>,
    },
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IngestReply {
    /// Stored (or already stored) under this digest.
    Stored {
        /// SHA-256 of the stored JSON, hex.
        sha256: String,
    },
    /// Refused, with the reason.
    Refused {
        /// Why.
        reason: String,
    },
}

/// The server's API keys: partner → SHA-256 of the key (`apikeys.json`).
#[derive(Debug, Default)]
pub struct ApiKeys {
    path: PathBuf,
    hashes: BTreeMap<PartnerId, [u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct ApiKeyFile {
    sha256: BTreeMap<String, String>,
}

impl ApiKeys {
    /// Opens (or starts) the key store.
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; [`Error::Auth`] for a malformed file.
    pub fn open(path: &Path) -> Result<Self> {
        let hashes = match std::fs::read_to_string(path) {
            Ok(text) => {
                let f: ApiKeyFile = serde_json::from_str(&text)
                    .map_err(|e| Error::Auth(format!("{}: {e}", path.display())))?;
                f.sha256
                    .into_iter()
                    .map(|(p, h)| {
                        let hash = unhex::<32>(&h)
                            .ok_or_else(|| Error::Auth(format!("bad key hash for {p}")))?;
                        Ok((PartnerId::new(p)?, hash))
                    })
                    .collect::<Result<_>>()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self { path: path.to_owned(), hashes })
    }

    /// Issues a new key for `partner` (replacing any old one) and returns it; only its hash is
    /// stored. If saving fails, the old key stays valid and nothing changes.
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; entropy failures.
    pub fn issue(&mut self, partner: PartnerId) -> Result<Zeroizing<String>> {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::Rng::fill_bytes(&mut fl_dp::csprng()?, raw.as_mut());
        let key = Zeroizing::new(hex(raw.as_ref()));
        let mut hashes = self.hashes.clone();
        hashes.insert(partner, Sha256::digest(key.as_bytes()).into());
        let file = ApiKeyFile {
            sha256: hashes.iter().map(|(p, h)| (p.as_str().to_owned(), hex(h))).collect(),
        };
        write_json_atomic(&self.path, &file)?;
        self.hashes = hashes;
        Ok(key)
    }

    /// The partner holding `key`, comparing its digest with every stored digest in constant
    /// time.
    #[must_use]
    pub fn verify(&self, key: &str) -> Option<PartnerId> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (p, h) in &self.hashes {
            if bool::from(h.ct_eq(&digest)) {
                found = Some(p.clone());
            }
        }
        found
    }
}

/// Checks and stores one request; returns the reply to send.
///
/// # Errors
///
/// Storage failures only; policy and key failures are [`IngestReply::Refused`].
pub fn handle(keys: &ApiKeys, root: &Path, req: IngestRequest) -> Result<IngestReply> {
    let IngestRequest::Submit { api_key, submission } = req;
    let api_key = Zeroizing::new(api_key);
    let Some(partner) = keys.verify(&api_key) else {
        return Ok(IngestReply::Refused { reason: "unknown API key".into() });
    };
    let Submission { artifact_json, level, agreements } = *submission;
    let artifact: Artifact = match serde_json::from_str(&artifact_json) {
        Ok(a) => a,
        Err(e) => return Ok(IngestReply::Refused { reason: format!("malformed artifact: {e}") }),
    };
    if matches!(artifact, Artifact::Update(_)) {
        return Ok(IngestReply::Refused {
            reason: "DP updates go through a federation round, not submit".into(),
        });
    }
    // The server applies the policy itself: a client cannot skip it.
    let outbound = match authorize(artifact, level, &agreements) {
        Ok(o) => o,
        Err(e) => return Ok(IngestReply::Refused { reason: e.to_string() }),
    };
    let json = serde_json::to_vec_pretty(&outbound).map_err(|e| Error::Malformed(e.to_string()))?;
    let sha256 = hex(&Sha256::digest(&json));
    let dir = root.join(partner.as_str());
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{sha256}.json", outbound.artifact().kind()));
    if !path.exists() {
        write_atomic(&path, &json)?;
    }
    Ok(IngestReply::Stored { sha256 })
}

/// Serves submissions on `listen` until the task is dropped; `on_event` sees each outcome
/// (`partner-or-peer: reply`).
///
/// # Errors
///
/// TLS setup, key store and bind failures.
pub async fn serve_ingest(
    listen: SocketAddr,
    state: &Path,
    tls: &TlsFiles,
    on_event: Arc<dyn Fn(String) + Send + Sync>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    let keys = Arc::new(ApiKeys::open(&state.join("apikeys.json"))?);
    let root = Arc::new(state.join("submissions"));
    let acceptor = server_acceptor(tls)?;
    let listener = TcpListener::bind(listen).await?;
    on_listening(listener.local_addr()?);
    loop {
        let (tcp, peer) =
            accept_next(&listener, |e| on_event(format!("accept failed, retrying: {e}"))).await;
        let (acceptor, keys, root, on_event) =
            (acceptor.clone(), Arc::clone(&keys), Arc::clone(&root), Arc::clone(&on_event));
        tokio::spawn(async move {
            let session = async {
                let tls = timed("TLS handshake", HANDSHAKE_TIMEOUT, async {
                    acceptor.accept(tcp).await.map_err(|e| Error::Tls(e.to_string()))
                })
                .await?;
                let (mut rd, mut wr) = tokio::io::split(tls);
                let mut dec = FrameDecoder::new(MAX_SUBMISSION);
                while let Some(req) = tokio::time::timeout(
                    Duration::from_secs(60),
                    recv_frame::<_, IngestRequest>(&mut rd, &mut dec),
                )
                .await
                .map_err(|_| Error::Timeout("idle submit connection".into()))??
                {
                    let reply = tokio::task::block_in_place(|| handle(&keys, &root, req))?;
                    on_event(format!("{peer}: {reply:?}"));
                    send_frame(&mut wr, &reply, MAX_SUBMISSION).await?;
                }
                Ok::<(), Error>(())
            };
            if let Err(e) = session.await {
                on_event(format!("{peer}: refused: {e}"));
            }
        });
    }
}

/// Submits artifacts over one connection; returns each reply in order.
///
/// # Errors
///
/// Connection, TLS and framing failures.
pub async fn submit(
    server: &str,
    server_name: &str,
    ca: &Path,
    api_key: &str,
    items: &[Outbound],
) -> Result<Vec<IngestReply>> {
    let tls = raw_tls(server, server_name, ca).await?;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut dec = FrameDecoder::new(MAX_SUBMISSION);
    let mut out = Vec::with_capacity(items.len());
    for o in items {
        let req = IngestRequest::Submit {
            api_key: api_key.to_owned(),
            submission: Box::new(Submission::new(o)?),
        };
        send_frame(&mut wr, &req, MAX_SUBMISSION).await?;
        let reply = recv_frame::<_, IngestReply>(&mut rd, &mut dec)
            .await?
            .ok_or_else(|| Error::Io(std::io::Error::other("the server closed the connection")))?;
        out.push(reply);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use fl_tiers::policy::AgreementKind;

    use super::*;

    #[test]
    fn keys_policy_and_durable_idempotent_storage() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = ApiKeys::open(&dir.path().join("apikeys.json")).unwrap();
        let key = keys.issue(PartnerId::new("lab-a").unwrap()).unwrap();
        let keys = ApiKeys::open(&dir.path().join("apikeys.json")).unwrap();
        assert_eq!(keys.verify(&key).unwrap().as_str(), "lab-a");
        assert!(keys.verify("0".repeat(64).as_str()).is_none());
        assert!(
            !std::fs::read_to_string(dir.path().join("apikeys.json"))
                .unwrap()
                .contains(key.as_str())
        );
        // A reissue that cannot be saved leaves the old key valid.
        let gone = dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let mut moved = ApiKeys::open(&gone.join("apikeys.json")).unwrap();
        let old = moved.issue(PartnerId::new("lab-b").unwrap()).unwrap();
        std::fs::remove_dir_all(&gone).unwrap();
        assert!(moved.issue(PartnerId::new("lab-b").unwrap()).is_err());
        assert_eq!(moved.verify(&old).unwrap().as_str(), "lab-b");

        let spec = fl_tiers::spec::extract("T\nAdd 5 ml water.").unwrap();
        let root = dir.path().join("submissions");
        let ok = authorize(Artifact::Spec(spec.clone()), Sensitivity::Public, &[]).unwrap();
        let req = || IngestRequest::Submit {
            api_key: key.to_string(),
            submission: Box::new(Submission::new(&ok).unwrap()),
        };
        let IngestReply::Stored { sha256 } = handle(&keys, &root, req()).unwrap() else { panic!() };
        assert_eq!(
            handle(&keys, &root, req()).unwrap(),
            IngestReply::Stored { sha256: sha256.clone() }
        );
        let stored = root.join("lab-a").join(format!("ProtocolSpec-{sha256}.json"));
        assert!(stored.exists());
        // A client that skipped its own policy check is still checked by the server.
        let forged = Submission {
            artifact_json: serde_json::to_string(&Artifact::Spec(spec)).unwrap(),
            level: Sensitivity::Proprietary,
            agreements: vec![Agreement::new(AgreementKind::Dpa, "x").unwrap()],
        };
        let r = handle(
            &keys,
            &root,
            IngestRequest::Submit { api_key: key.to_string(), submission: Box::new(forged) },
        )
        .unwrap();
        assert!(matches!(r, IngestReply::Refused { .. }), "{r:?}");
        let r = handle(
            &keys,
            &root,
            IngestRequest::Submit {
                api_key: "wrong".into(),
                submission: Box::new(Submission::new(&ok).unwrap()),
            },
        )
        .unwrap();
        assert_eq!(r, IngestReply::Refused { reason: "unknown API key".into() });
        let junk = Submission {
            artifact_json: "{\"Text\": \"raw protocol\"}".into(),
            level: Sensitivity::Public,
            agreements: vec![],
        };
        let r = handle(
            &keys,
            &root,
            IngestRequest::Submit { api_key: key.to_string(), submission: Box::new(junk) },
        )
        .unwrap();
        assert!(matches!(r, IngestReply::Refused { .. }), "{r:?}");
        // Through the wire encoding too.
        let wire = crate::messages::encode(&req()).unwrap();
        let back: IngestRequest = crate::messages::decode(&wire).unwrap();
        assert!(matches!(handle(&keys, &root, back).unwrap(), IngestReply::Stored { .. }));
        assert_eq!(std::fs::read_dir(root.join("lab-a")).unwrap().count(), 1);
    }

    /// A connection that never starts TLS is dropped after [`HANDSHAKE_TIMEOUT`] (it was held
    /// for as long as the peer liked, so idle connections could use up the descriptors).
    #[test]
    fn a_connection_that_never_completes_tls_is_dropped() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&events);
        rt.block_on(async move {
            let tls = crate::network::self_signed(dir.path()).unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let state = dir.path().to_path_buf();
            tokio::spawn(async move {
                let on_event = Arc::new(move |e: String| seen.lock().unwrap().push(e));
                let listen = "127.0.0.1:0".parse().unwrap();
                let _ = serve_ingest(listen, &state, &tls, on_event, |a| {
                    let _ = tx.send(a);
                })
                .await;
            });
            let addr = rx.await.unwrap();
            let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
            let started = std::time::Instant::now();
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(2 * HANDSHAKE_TIMEOUT, idle.read(&mut byte)).await;
            assert!(matches!(read, Ok(Ok(0) | Err(_))), "still open: {read:?}");
            assert!(started.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(100));
        });
        let events = events.lock().unwrap();
        assert!(events.iter().any(|e| e.contains("TLS handshake")), "{events:?}");
    }
}
