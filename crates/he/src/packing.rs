//! Packing many quantized values into one plaintext, so a 10,000-float update needs ≈ 110
//! ciphertexts under a 2048-bit key instead of 10,000.
//!
//! Each value in `[−c, c]` is quantized with unbiased stochastic rounding to `q` bits
//! (`[0, 2^q − 1]`); a slot holds `q + ⌈log₂ T⌉` bits so that the sum of up to `T` vectors never
//! carries into the next slot; `⌊(bits(n) − 1)/slot⌋` slots fit below n. Ciphertexts of packed
//! vectors add slot-wise; after decryption every slot holds the exact integer sum, which
//! dequantizes to the float sum.

use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Ciphertext, Error, Obfuscator, PrivateKey, PublicKey, Result};

/// A packing layout for a key.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Packing {
    range: f64,
    value_bits: u32,
    slot_bits: u32,
    slots: usize,
    max_terms: u64,
}

/// An encrypted packed vector and how many vectors it sums.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedVector {
    /// Ciphertexts, `slots` values each (the last one partly filled).
    pub ciphertexts: Vec<Ciphertext>,
    /// Number of values.
    pub len: usize,
    /// Number of vectors summed into it (1 when fresh).
    pub terms: u64,
}

impl Packing {
    /// A layout for values in `[−range, range]` quantized to `value_bits` bits, for sums of up
    /// to `max_terms` vectors, under `pk`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a non-positive range, `value_bits` outside 1..=52,
    /// `max_terms` = 0, or a slot wider than the key.
    pub fn new(pk: &PublicKey, range: f64, value_bits: u32, max_terms: u64) -> Result<Self> {
        if !(range.is_finite() && range > 0.0) {
            return Err(Error::param("range", format!("{range} is not finite and positive")));
        }
        if !(1..=52).contains(&value_bits) || max_terms == 0 {
            return Err(Error::param(
                "value_bits, max_terms",
                "1 ≤ value_bits ≤ 52 and max_terms ≥ 1",
            ));
        }
        let headroom = u64::BITS - (max_terms - 1).leading_zeros();
        let slot_bits = value_bits + headroom;
        let usable = pk.bits().saturating_sub(1);
        let slots = usize::try_from(usable / u64::from(slot_bits)).unwrap_or(0);
        if slots == 0 || slot_bits > 63 {
            return Err(Error::param("value_bits", "slots do not fit the key"));
        }
        Ok(Self { range, value_bits, slot_bits, slots, max_terms })
    }

    /// Values per ciphertext.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bits per slot.
    #[must_use]
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    /// Ciphertexts needed for `len` values.
    #[must_use]
    pub fn ciphertexts_for(&self, len: usize) -> usize {
        len.div_ceil(self.slots)
    }

    fn levels(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "value_bits ≤ 52: exact")]
        let l = ((1u64 << self.value_bits) - 1) as f64;
        l
    }

    /// Quantizes with unbiased stochastic rounding; values outside the range are clamped (clip
    /// first). NaN is refused.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a non-finite value.
    pub fn quantize(&self, values: &[f32], rng: &mut impl Rng) -> Result<Vec<u64>> {
        let levels = self.levels();
        values
            .iter()
            .map(|&v| {
                if !v.is_finite() {
                    return Err(Error::param("value", format!("{v} is not finite")));
                }
                let x = (f64::from(v).clamp(-self.range, self.range) + self.range)
                    / (2.0 * self.range)
                    * levels;
                let lo = x.floor();
                let up = rng.random::<f64>() < x - lo;
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "0 ≤ x ≤ levels < 2^52"
                )]
                Ok(lo as u64 + u64::from(up))
            })
            .collect()
    }

    /// Packs quantized values into plaintexts (slot j of a plaintext at bit `j·slot_bits`).
    #[must_use]
    pub fn pack(&self, q: &[u64]) -> Vec<BigUint> {
        q.chunks(self.slots)
            .map(|chunk| {
                let mut acc = BigUint::zero();
                for &v in chunk.iter().rev() {
                    acc <<= self.slot_bits;
                    acc += v;
                }
                acc
            })
            .collect()
    }

    /// Splits plaintexts back into `len` slot values.
    #[must_use]
    pub fn unpack(&self, plains: &[BigUint], len: usize) -> Vec<u64> {
        let mask = (BigUint::from(1u32) << self.slot_bits) - 1u32;
        let mut out = Vec::with_capacity(len);
        for p in plains {
            let mut x = p.clone();
            for _ in 0..self.slots {
                if out.len() == len {
                    break;
                }
                out.push((&x & &mask).to_u64().unwrap_or(u64::MAX));
                x >>= self.slot_bits;
            }
        }
        out
    }

    /// The float sum of `terms` vectors from their slot-wise integer sum.
    #[must_use]
    pub fn dequantize_sum(&self, sums: &[u64], terms: u64) -> Vec<f64> {
        let step = 2.0 * self.range / self.levels();
        #[allow(clippy::cast_precision_loss, reason = "sums < 2^63 and term counts are small")]
        sums.iter().map(|&s| s as f64 * step - terms as f64 * self.range).collect()
    }

    /// Quantizes, packs and encrypts `values`, ciphertexts in parallel (each worker with its own
    /// ChaCha20 stream seeded from `rng`). Uses `obfuscator` if given (see its security note),
    /// else fresh `rⁿ`.
    ///
    /// # Errors
    ///
    /// As [`Self::quantize`].
    pub fn encrypt(
        &self,
        pk: &PublicKey,
        obfuscator: Option<&Obfuscator>,
        values: &[f32],
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<PackedVector> {
        let mut qrng = ChaCha20Rng::from_rng(rng);
        let q = self.quantize(values, &mut qrng)?;
        let plains = self.pack(&q);
        let seeds: Vec<[u8; 32]> = plains.iter().map(|_| qrng.random()).collect();
        let ciphertexts = plains
            .par_iter()
            .zip(seeds)
            .map(|(m, seed)| {
                let mut r = ChaCha20Rng::from_seed(seed);
                match obfuscator {
                    Some(o) => o.encrypt(pk, m, &mut r),
                    None => pk.encrypt_raw(m, &mut r),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PackedVector { ciphertexts, len: values.len(), terms: 1 })
    }

    /// Adds packed vectors slot-wise.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for different lengths or more than `max_terms` terms (a slot
    /// could carry into its neighbour).
    pub fn add(&self, pk: &PublicKey, a: &PackedVector, b: &PackedVector) -> Result<PackedVector> {
        if a.len != b.len || a.ciphertexts.len() != b.ciphertexts.len() {
            return Err(Error::param("vectors", "different lengths"));
        }
        let terms = a.terms + b.terms;
        if terms > self.max_terms {
            return Err(Error::param(
                "terms",
                format!("{terms} exceeds the layout's headroom for {}", self.max_terms),
            ));
        }
        let ciphertexts =
            a.ciphertexts.par_iter().zip(&b.ciphertexts).map(|(x, y)| pk.add(x, y)).collect();
        Ok(PackedVector { ciphertexts, len: a.len, terms })
    }

    /// Decrypts (in parallel) and dequantizes a packed sum.
    ///
    /// # Errors
    ///
    /// Invalid ciphertexts.
    pub fn decrypt(&self, sk: &PrivateKey, v: &PackedVector) -> Result<Vec<f64>> {
        let plains =
            v.ciphertexts.par_iter().map(|c| sk.decrypt_raw(c)).collect::<Result<Vec<_>>>()?;
        Ok(self.dequantize_sum(&self.unpack(&plains, v.len), v.terms))
    }
}
