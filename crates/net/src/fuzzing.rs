//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use std::sync::OnceLock;

use fl_core::{ModelVersion, PartnerId, Round};
use rand::SeedableRng;

use crate::auth::{Identity, Session};
use crate::frame::FrameDecoder;
use crate::ingest::{ApiKeys, IngestRequest, handle};
use crate::messages::{ClientMsg, decode};
use crate::network::{Downlink, Uplink};
use crate::paillier::{PaillierSetup, deal_insecure_for_tests};

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

/// A dealt 256-bit 2-of-3 threshold key (toy size, so each run is cheap).
fn fuzz_paillier_key() -> Option<&'static (PaillierSetup, Vec<fl_he::PartyKey>)> {
    static KEY: OnceLock<Option<(PaillierSetup, Vec<fl_he::PartyKey>)>> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = rand::rngs::ChaCha20Rng::from_seed([9; 32]);
        let partners: Vec<PartnerId> =
            ["a", "b", "c"].iter().filter_map(|p| PartnerId::new(*p).ok()).collect();
        let (setup, keys) = deal_insecure_for_tests(&partners, 2, 256, &mut rng).ok()?;
        Some((setup, keys.into_iter().map(|(_, k)| k).collect()))
    })
    .as_ref()
}

/// What the Paillier privacy mode reads from files and peers: the bytes as a big-endian
/// ciphertext under a dealt 2-of-3 key, and UTF-8 input as the server's setup file, a partner's
/// key file, decryption shares, and python-paillier numbers (`EncryptedNumber`,
/// `EncodedNumber`) to add, multiply, re-exponent and decode. Bad input must fail quietly.
///
/// # Panics
///
/// When a ciphertext the key accepts is refused by a share holder, or two sets of shares
/// decrypt it differently; when a dealt party key does not decrypt a valid ciphertext: the bugs
/// being hunted.
pub fn paillier_inputs(data: &[u8]) {
    use fl_he::{Ciphertext, DecryptionShare, EncodedNumber, EncryptedNumber, PartyKey};
    use num_bigint::BigUint;

    let Some((setup, parties)) = fuzz_paillier_key() else { return };
    let key = &setup.key;
    let c = Ciphertext::from_value(BigUint::from_bytes_be(data));
    if key.public.validate(&c).is_ok() {
        let shares: Vec<DecryptionShare> = parties
            .iter()
            .map(|p| p.share.decrypt_share(key, &c).expect("a valid ciphertext is decrypted"))
            .collect();
        let first = key.combine(&shares[..2]).expect("two honest shares combine");
        let second = key.combine(&shares[1..]).expect("two honest shares combine");
        assert_eq!(first, second, "two share sets decrypt one ciphertext differently");
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(other) = serde_json::from_str::<PaillierSetup>(text) {
        let _ = other.validate();
    }
    if let Ok(party) = serde_json::from_str::<PartyKey>(text)
        && party.key.public.bits() <= 1024
    {
        // Any unit works; 2 is one for every odd n.
        let two = Ciphertext::from_value(BigUint::from(2u32));
        assert!(party.share.decrypt_share(&party.key, &two).is_ok(), "a party key refused 2");
    }
    if let Ok(shares) = serde_json::from_str::<Vec<DecryptionShare>>(text) {
        let _ = key.combine(&shares);
    }
    let pk = &key.public;
    if let Ok((a, b, s)) =
        serde_json::from_str::<(EncryptedNumber, EncryptedNumber, EncodedNumber)>(text)
    {
        if pk.validate(&a.ciphertext).is_ok() && pk.validate(&b.ciphertext).is_ok() {
            let _ = a.add(pk, &b);
            let _ = a.mul(pk, &s);
            let _ = a.decrease_exponent_to(pk, b.exponent);
        }
        let _ = s.decode(pk);
        let _ = s.decrease_exponent_to(pk, a.exponent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paillier_seeds_pass() {
        let (setup, parties) = fuzz_paillier_key().unwrap();
        let pk = &setup.key.public;
        let mut rng = rand::rngs::ChaCha20Rng::from_seed([3; 32]);
        let c = pk.encrypt_raw(&num_bigint::BigUint::from(42u32), &mut rng).unwrap();
        paillier_inputs(&c.value().to_bytes_be());
        paillier_inputs(&pk.n().to_bytes_be());
        paillier_inputs(&[]);
        paillier_inputs(serde_json::to_string(setup).unwrap().as_bytes());
        paillier_inputs(serde_json::to_string(&parties[0]).unwrap().as_bytes());
        let share = parties[1].share.decrypt_share(&setup.key, &c).unwrap();
        paillier_inputs(serde_json::to_string(&[&share, &share]).unwrap().as_bytes());
        let e = c.value().to_string();
        // Exponents far apart, a product past i32, a huge exponent to decode.
        paillier_inputs(
            format!(
                r#"[{{"ciphertext":"{e}","exponent":2147483647}},{{"ciphertext":"{e}","exponent":-2147483648}},{{"encoding":"5","exponent":2147483647}}]"#
            )
            .as_bytes(),
        );
        // A party key claiming 2³² − 1 parties.
        let mut party: serde_json::Value = serde_json::to_value(&parties[0]).unwrap();
        party["key"]["parties"] = serde_json::json!(u32::MAX);
        paillier_inputs(party.to_string().as_bytes());
    }
}
