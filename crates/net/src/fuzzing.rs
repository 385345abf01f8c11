//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use std::sync::OnceLock;

use fl_core::{ModelVersion, PartnerId, Round};
use rand::SeedableRng;

use crate::auth::{Identity, Session};
use crate::frame::FrameDecoder;
use crate::ingest::{ApiKeys, IngestRequest, handle};
use crate::messages::{ClientMsg, decode};
use crate::network::{Downlink, Uplink};

/// Everything a server reads from an untrusted connection: the byte stream is split into frames
/// (1 MiB limit); each frame is decoded as an uplink frame, a client message, a downlink frame
/// and a submission; signed messages are checked by a session, submissions by the ingestion
/// handler (with no API keys, so nothing is stored). UTF-8 input is also parsed as tier-1/2
/// artifacts. Bad input must fail quietly: only a panic is a finding.
///
/// # Panics
///
/// When a freshly signed message is refused or its replay accepted: the bugs being hunted.
pub fn network_frames(data: &[u8]) {
    static SIGNER: OnceLock<Identity> = OnceLock::new();
    let signer = SIGNER.get_or_init(|| {
        let mut seed = rand::rngs::ChaCha20Rng::from_seed([7; 32]);
        Identity::generate(PartnerId::new("fuzz").unwrap_or_else(|_| unreachable!()), &mut seed)
    });
    let challenge = [1u8; 32];
    let key = crate::auth::parse_public_key(&signer.public_key_hex()).ok();
    let mut session = key.map(|k| Session::new(signer.partner().clone(), k, challenge));
    let mut dec = FrameDecoder::new(1 << 20);
    dec.push(data);
    let keys = ApiKeys::default();
    let root = std::env::temp_dir().join("fl-net-fuzz-never-written");
    while let Ok(Some(frame)) = dec.next_frame() {
        if let Ok(Uplink::Signed(m)) = decode::<Uplink>(&frame)
            && let Some(s) = session.as_mut()
        {
            let _ = s.open(&m).map(decode::<ClientMsg>);
        }
        let _ = decode::<ClientMsg>(&frame);
        let _ = decode::<Downlink>(&frame);
        if let Ok(req) = decode::<IngestRequest>(&frame) {
            let _ = handle(&keys, &root, req);
        }
    }
    // A valid signature over fuzzed content must verify exactly once.
    if let Some(s) = session.as_mut() {
        let m = signer.sign(&challenge, u64::MAX, Round(1), ModelVersion(0), data.to_vec());
        assert!(s.open(&m).is_ok(), "a fresh valid signature was refused");
        assert!(s.open(&m).is_err(), "a replay was accepted");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fl_tiers::spec::ProtocolSpec::from_json(text);
        let _ = serde_json::from_str::<fl_tiers::policy::Artifact>(text);
    }
}
