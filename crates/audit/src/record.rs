//! Record types, their canonical encoding, and the chain hash.
//!
//! A record's hash is `SHA-256(DOMAIN ‖ len ‖ canonical(record))` where `canonical` is the
//! postcard encoding of the record — sequence, time, the previous record's hash, and the entry —
//! and `len` its length as u64 little-endian. The domain tag keeps these hashes apart from any
//! other SHA-256 use; including the previous hash chains the records; the genesis record's
//! previous hash is all zeros and its entry binds the federation's configuration digest.

use std::collections::BTreeMap;

use fl_core::{ModelVersion, PartnerId, Round};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Domain separation for record hashes.
pub const RECORD_DOMAIN: &[u8] = b"mshale-fl/audit/v1/record";

/// A SHA-256 digest. Public data (audit digests are meant to be published); equality is still
/// constant-time.
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self::of_parts(&[bytes])
    }

    /// SHA-256 of the concatenation of `parts`.
    #[must_use]
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        let out = h.finalize();
        let mut d = [0u8; 32];
        d.copy_from_slice(out.as_slice());
        Self(d)
    }

    /// SHA-256 of model parameters' flat little-endian bytes (layout excluded: it is fixed by
    /// the federation's configuration).
    #[must_use]
    pub fn of_params<T: fl_core::Scalar>(params: &fl_core::ModelParams<T>) -> Self {
        let mut h = Sha256::new();
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in params.as_slice().chunks(1 << 13) {
            buf.clear();
            T::extend_le_bytes(chunk, &mut buf);
            h.update(&buf);
        }
        let out = h.finalize();
        let mut d = [0u8; 32];
        d.copy_from_slice(out.as_slice());
        Self(d)
    }

    /// Lower-case hex, for export and anchoring.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut d = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            d[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self(d))
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Digest {}

impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One partner's DP charge for a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyCharge {
    /// The partner.
    pub partner: PartnerId,
    /// ε consumed by this round (at `delta`), as reported by the accountant.
    pub epsilon: f64,
    /// δ of the partner's budget.
    pub delta: f64,
    /// The accountant's event, as text (e.g. `PoissonSampledGaussian { q: 0.1, σ: 1.1 } x1`).
    pub event: String,
}

/// A typed extension value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Extension {
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float (stored by bits, so the encoding is canonical).
    Float(f64),
    /// Text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A digest.
    Digest(Digest),
}

/// What happened in one training round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundEntry {
    /// The round.
    pub round: Round,
    /// The model version the round trained from.
    pub model_version: ModelVersion,
    /// Partners whose updates were aggregated.
    pub participants: Vec<PartnerId>,
    /// DP charge per partner.
    pub charges: Vec<PrivacyCharge>,
    /// Aggregation rule (e.g. `fedprox`).
    pub aggregator: String,
    /// Privacy mode (`none`, `secagg`, `secagg+`, `paillier`).
    pub privacy_mode: String,
    /// Digest of the global model the round started from.
    pub incoming_model: Digest,
    /// Digest of the aggregate (the next global model).
    pub aggregate: Digest,
    /// Digests of individual updates where the server could see them (plaintext mode).
    pub update_digests: Vec<(PartnerId, Digest)>,
    /// Free-form typed extensions, ordered by key.
    pub extensions: BTreeMap<String, Extension>,
}

/// The content of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Entry {
    /// First record: binds the federation's configuration.
    Genesis {
        /// Federation identifier.
        federation: String,
        /// The configuration as the server wrote it (e.g. JSON).
        config: String,
        /// SHA-256 of `config`.
        config_digest: Digest,
    },
    /// A training round.
    Round(Box<RoundEntry>),
    /// Any other event worth recording (enrolment, restart, budget pause).
    Event {
        /// Kind, e.g. `enrol` or `restart`.
        kind: String,
        /// Extensions.
        fields: BTreeMap<String, Extension>,
    },
}

impl Entry {
    /// A genesis entry for `config`.
    #[must_use]
    pub fn genesis(federation: impl Into<String>, config: impl Into<String>) -> Self {
        let config = config.into();
        let config_digest = Digest::of(config.as_bytes());
        Self::Genesis { federation: federation.into(), config, config_digest }
    }
}

/// A record as stored: position in the chain, time, link and content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 0 for the genesis record, then consecutive.
    pub sequence: u64,
    /// Milliseconds since the Unix epoch, as supplied by the writer.
    pub time_unix_ms: u64,
    /// Hash of the previous record (zeros for genesis).
    pub prev_hash: Digest,
    /// The content.
    pub entry: Entry,
}

impl Record {
    /// The canonical encoding that is hashed and stored.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Internal`] if postcard cannot encode (it always can for these types).
    pub fn canonical(&self) -> crate::Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(|_| crate::Error::Internal("record encoding"))
    }

    /// The record's chain hash over its canonical encoding.
    #[must_use]
    pub fn hash_of_canonical(canonical: &[u8]) -> Digest {
        let len = (canonical.len() as u64).to_le_bytes();
        Digest::of_parts(&[RECORD_DOMAIN, &len, canonical])
    }
}
