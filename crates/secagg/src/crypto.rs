//! Key agreement, key derivation, share encryption and the mask generator.
//!
//! - X25519 (RFC 7748) via x25519-dalek; any non-contributory result is rejected.
//! - HKDF-SHA256 (RFC 5869) derives every key from a raw Diffie–Hellman output, salted with the
//!   session id and labelled by purpose and parties.
//! - ChaCha20-Poly1305 (RFC 8439) encrypts shares; the key is unique to (session, sender,
//!   receiver) and used for exactly one message, so a fixed nonce is safe; the associated data
//!   binds session, sender, receiver and protocol round.
//! - Masks are ChaCha20 keystreams (RFC 8439 block function via `rand`'s `ChaCha20Rng`) read as
//!   little-endian words of 4 bytes (rings up to 2^32) or 8 bytes.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::{ClientId, Error, Result, SessionId};

const SHARE_LABEL: &[u8] = b"mshale-fl/secagg/v1/share-key";
const MASK_LABEL: &[u8] = b"mshale-fl/secagg/v1/pairwise-mask";
const SELF_LABEL: &[u8] = b"mshale-fl/secagg/v1/self-mask";
const KEY_LABEL: &[u8] = b"mshale-fl/secagg/v1/masking-key";
const AD_LABEL: &[u8] = b"mshale-fl/secagg/v1/share-ciphertext";

fn hkdf(session: &SessionId, ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(&session.0), ikm);
    let info: Vec<u8> = info.concat();
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(&info, &mut okm[..]);
    okm
}

/// X25519 of `secret` and `public`, rejecting non-contributory results.
fn agree(secret: &StaticSecret, public: &PublicKey, peer: ClientId) -> Result<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(public);
    if !shared.was_contributory() {
        return Err(Error::NonContributory(peer));
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

/// The 32-byte ChaCha20 seed of the pairwise mask between `a` and `b` (symmetric in a, b).
///
/// # Errors
///
/// [`Error::NonContributory`].
pub fn pairwise_seed(
    session: &SessionId,
    my_secret: &StaticSecret,
    their_public: &PublicKey,
    a: ClientId,
    b: ClientId,
) -> Result<Zeroizing<[u8; 32]>> {
    let dh = agree(my_secret, their_public, b)?;
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    Ok(hkdf(session, &dh[..], &[MASK_LABEL, &lo.0.to_le_bytes(), &hi.0.to_le_bytes()]))
}

/// The ChaCha20 seed of a client's self mask, from its random 16-byte secret `b`.
#[must_use]
pub fn self_mask_seed(session: &SessionId, b: &[u8; 16], owner: ClientId) -> Zeroizing<[u8; 32]> {
    hkdf(session, b, &[SELF_LABEL, &owner.0.to_le_bytes()])
}

/// A client's X25519 masking key `s_u^SK`, derived from its random 16-byte seed — the seed is what
/// gets secret-shared, so reconstructing it (and checking the derived public key against the
/// advertised one) recovers the key.
#[must_use]
pub fn masking_key(session: &SessionId, seed: &[u8; 16], owner: ClientId) -> StaticSecret {
    StaticSecret::from(*hkdf(session, seed, &[KEY_LABEL, &owner.0.to_le_bytes()]))
}

/// The raw X25519 output of the share channel between two clients (the same in both
/// directions; keys per direction are derived from it).
///
/// # Errors
///
/// [`Error::NonContributory`].
pub fn channel_secret(
    my_secret: &StaticSecret,
    their_public: &PublicKey,
    peer: ClientId,
) -> Result<Zeroizing<[u8; 32]>> {
    agree(my_secret, their_public, peer)
}

fn share_cipher(
    session: &SessionId,
    channel: &[u8; 32],
    from: ClientId,
    to: ClientId,
) -> ChaCha20Poly1305 {
    let key = hkdf(session, channel, &[SHARE_LABEL, &from.0.to_le_bytes(), &to.0.to_le_bytes()]);
    ChaCha20Poly1305::new(&Key::from(*key))
}

fn associated_data(session: &SessionId, from: ClientId, to: ClientId) -> Vec<u8> {
    [AD_LABEL, &session.0[..], &from.0.to_le_bytes(), &to.0.to_le_bytes(), &[1u8]].concat()
}

/// Encrypts `plaintext` from `from` to `to` under their channel secret.
///
/// # Errors
///
/// [`Error::Internal`] if the AEAD refuses (it does not for these sizes).
pub fn seal(
    session: &SessionId,
    channel: &[u8; 32],
    from: ClientId,
    to: ClientId,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let cipher = share_cipher(session, channel, from, to);
    let ad = associated_data(session, from, to);
    cipher
        .encrypt(&Nonce::default(), Payload { msg: plaintext, aad: &ad })
        .map_err(|_| Error::Internal("aead encrypt"))
}

/// Decrypts a ciphertext sent from `from` to `to`.
///
/// # Errors
///
/// [`Error::Decryption`] (opaque) for any tampering, misrouting or replay.
pub fn open(
    session: &SessionId,
    channel: &[u8; 32],
    from: ClientId,
    to: ClientId,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = share_cipher(session, channel, from, to);
    let ad = associated_data(session, from, to);
    cipher
        .decrypt(&Nonce::default(), Payload { msg: ciphertext, aad: &ad })
        .map(Zeroizing::new)
        .map_err(|_| Error::Decryption)
}

/// The sum of many masks: `jobs` are split evenly over the available threads, and `seed_of`
/// (which may do the key agreement) runs inside the parallel part. Returns `Σ ±mask` wrapping
/// mod 2^64.
///
/// # Errors
///
/// The first error `seed_of` returns.
pub fn sum_masks<J: Sync>(
    jobs: &[J],
    dimension: usize,
    ring_bits: u8,
    seed_of: impl Fn(&J) -> Result<(Zeroizing<[u8; 32]>, bool)> + Sync,
) -> Result<Vec<u64>> {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads().max(1);
    let per = jobs.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<u64>>> = jobs
        .par_chunks(per)
        .map(|chunk| {
            let mut acc = vec![0u64; dimension];
            for job in chunk {
                let (seed, negate) = seed_of(job)?;
                apply_mask(&seed, ring_bits, negate, &mut acc);
            }
            Ok(acc)
        })
        .collect();
    let mut total = vec![0u64; dimension];
    for part in parts {
        for (t, v) in total.iter_mut().zip(part?) {
            *t = t.wrapping_add(v);
        }
    }
    Ok(total)
}

/// Adds (`negate = false`) or subtracts (`negate = true`) the mask expanded from `seed` into
/// `acc`, wrapping mod 2^64 (callers reduce mod 2^b at the end; 2^b divides 2^64). The mask is the
/// ChaCha20 keystream (RFC 8439) under key `seed` and the all-zero nonce, read as little-endian
/// 32-bit words for rings up to 2^32 and 64-bit words above; `seed` is used for no other stream.
pub fn apply_mask(seed: &[u8; 32], ring_bits: u8, negate: bool, acc: &mut [u64]) {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    let mut cipher = chacha20::ChaCha20::new(seed.into(), &[0u8; 12].into());
    // 4 KiB stays in L1 between writing the keystream and adding it.
    let mut buf = Zeroizing::new([0u8; 4096]);
    let word = if ring_bits <= 32 { 4 } else { 8 };
    for chunk in acc.chunks_mut(4096 / word) {
        let bytes = &mut buf[..chunk.len() * word];
        cipher.write_keystream(bytes);
        if word == 4 {
            let words = bytes
                .chunks_exact(4)
                .map(|w| u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
            add_words(chunk, words, negate);
        } else {
            let words = bytes
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
            add_words(chunk, words, negate);
        }
    }
}

#[inline]
fn add_words(acc: &mut [u64], words: impl Iterator<Item = u64>, negate: bool) {
    // Two loops rather than a branch per element, so each vectorizes.
    if negate {
        acc.iter_mut().zip(words).for_each(|(a, m)| *a = a.wrapping_sub(m));
    } else {
        acc.iter_mut().zip(words).for_each(|(a, m)| *a = a.wrapping_add(m));
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    fn keys(seed: u64) -> (StaticSecret, PublicKey) {
        let s = StaticSecret::random_from_rng(&mut ChaCha20Rng::seed_from_u64(seed));
        let p = PublicKey::from(&s);
        (s, p)
    }

    #[test]
    fn masks_are_the_rfc_8439_keystream() {
        // RFC 8439 Appendix A.1, test vector #1: all-zero key and nonce, block counter 0; the
        // keystream starts 76 b8 e0 ad a0 f1 3d 90.
        let mut acc = vec![0u64; 2];
        apply_mask(&[0; 32], 32, false, &mut acc);
        assert_eq!(acc, [0xade0_b876, 0x903d_f1a0]);
        let mut wide = vec![0u64; 1];
        apply_mask(&[0; 32], 64, false, &mut wide);
        assert_eq!(wide, [0x903d_f1a0_ade0_b876]);
        apply_mask(&[0; 32], 64, true, &mut wide);
        assert_eq!(wide, [0]);
    }

    #[test]
    fn seal_open_and_binding() -> Result<()> {
        let session = SessionId([3; 32]);
        let (sa, pa) = keys(1);
        let (sb, pb) = keys(2);
        let (a, b) = (ClientId(1), ClientId(2));
        let ca = channel_secret(&sa, &pb, b)?;
        let cb = channel_secret(&sb, &pa, a)?;
        assert_eq!(*ca, *cb);
        let ct = seal(&session, &ca, a, b, b"share")?;
        assert_eq!(&open(&session, &cb, a, b, &ct)?[..], b"share");
        // Wrong direction, wrong session, tampering: all opaque failures.
        assert!(matches!(open(&session, &cb, b, a, &ct), Err(Error::Decryption)));
        assert!(matches!(open(&SessionId([4; 32]), &cb, a, b, &ct), Err(Error::Decryption)));
        let mut t = ct.clone();
        t[0] ^= 1;
        assert!(matches!(open(&session, &cb, a, b, &t), Err(Error::Decryption)));
        Ok(())
    }

    #[test]
    fn pairwise_seeds_agree_and_masks_cancel() -> Result<()> {
        let session = SessionId([5; 32]);
        let (sa, pa) = keys(1);
        let (sb, pb) = keys(2);
        let s1 = pairwise_seed(&session, &sa, &pb, ClientId(1), ClientId(2))?;
        let s2 = pairwise_seed(&session, &sb, &pa, ClientId(2), ClientId(1))?;
        assert_eq!(*s1, *s2);
        for bits in [20u8, 32, 64] {
            let mut acc = vec![7u64; 10_000];
            apply_mask(&s1, bits, false, &mut acc);
            assert!(acc.iter().any(|&x| x != 7));
            apply_mask(&s2, bits, true, &mut acc);
            assert!(acc.iter().all(|&x| x == 7));
        }
        // A low-order public key (all zeros) is refused.
        let zero = PublicKey::from([0u8; 32]);
        assert!(matches!(
            pairwise_seed(&session, &sa, &zero, ClientId(1), ClientId(9)),
            Err(Error::NonContributory(_))
        ));
        Ok(())
    }
}
