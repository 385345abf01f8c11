//! Fast public-key encryption: a precomputed obfuscator in the style of Damgård, Jurik and Nielsen
//! ("A generalization of Paillier's public-key system with applications to electronic voting",
//! Int. J. Inf. Secur. 9(6), 2010, the efficient variant of encryption). Instead of a fresh `rⁿ`
//! with a 2048-bit exponent, pick once `h = −x² mod n` for a random unit x, publish `hₛ = hⁿ mod
//! n²`, and use `hₛ^α` with a random α of ⌈k/2⌉ bits. With a fixed-base table of
//! `hₛ^{j·2^{w·i}}` an encryption costs ⌈k/(2w)⌉ modular multiplications instead of ≈ 1.2·k.
//!
//! **Assumption.** Ciphertexts are indistinguishable under DCR *plus* the assumption that
//! `hₛ^α` for short α is indistinguishable from a uniform n-th residue (the "small exponent"
//! assumption DJN make for this variant). Use [`crate::PublicKey::encrypt_raw`] when only DCR
//! may be assumed. The obfuscator holds no secret (`hₛ` may be published), but α must come from
//! a CSPRNG.

use num_bigint::BigUint;
use num_traits::One;
use rand::CryptoRng;
use rayon::prelude::*;

use crate::bigint::{random_bits, random_unit};
use crate::{Ciphertext, PublicKey, Result};

/// A fixed-base table for `hₛ^α mod n²`.
pub struct Obfuscator {
    n_sq: BigUint,
    window: u32,
    alpha_bits: u64,
    /// `table[i·2^w + j] = hₛ^{j·2^{w·i}}`.
    table: Vec<BigUint>,
}

impl std::fmt::Debug for Obfuscator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Obfuscator")
            .field("window", &self.window)
            .field("alpha_bits", &self.alpha_bits)
            .finish_non_exhaustive()
    }
}

impl Obfuscator {
    /// Builds the table for `pk` with `window`-bit digits (6–8 is a good trade: a 2048-bit key
    /// with w = 8 needs 128 multiplications per encryption and a 16 MiB table).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidParameter`] unless `1 ≤ window ≤ 8`.
    pub fn new(pk: &PublicKey, window: u32, rng: &mut (impl CryptoRng + ?Sized)) -> Result<Self> {
        if !(1..=8).contains(&window) {
            return Err(crate::Error::param("window", format!("{window} not in 1..=8")));
        }
        let n = pk.n();
        let n_sq = pk.n_squared().clone();
        let x = random_unit(n, rng);
        let h = n - (&x * &x % n);
        let hs = h.modpow(n, &n_sq);
        let alpha_bits = n.bits().div_ceil(2);
        let rows = usize::try_from(alpha_bits.div_ceil(u64::from(window))).unwrap_or(usize::MAX);
        let cols = 1usize << window;
        // Row bases hₛ^{2^{w·i}}, then each row's powers, rows in parallel.
        let mut bases = Vec::with_capacity(rows);
        let mut b = hs;
        for _ in 0..rows {
            bases.push(b.clone());
            for _ in 0..window {
                b = &b * &b % &n_sq;
            }
        }
        let table: Vec<BigUint> = bases
            .par_iter()
            .flat_map_iter(|base| {
                let mut row = Vec::with_capacity(cols);
                let mut acc = BigUint::one();
                for _ in 0..cols {
                    row.push(acc.clone());
                    acc = &acc * base % &n_sq;
                }
                row
            })
            .collect();
        Ok(Self { n_sq, window, alpha_bits, table })
    }

    /// A fresh obfuscation factor `hₛ^α mod n²`.
    #[must_use]
    pub fn factor(&self, rng: &mut (impl CryptoRng + ?Sized)) -> BigUint {
        let alpha = random_bits(self.alpha_bits, rng);
        let cols = 1usize << self.window;
        let mut acc = BigUint::one();
        let digits = alpha.to_radix_le(1 << self.window);
        for (i, d) in digits.iter().enumerate() {
            if *d != 0 {
                acc = acc * &self.table[i * cols + usize::from(*d)] % &self.n_sq;
            }
        }
        acc
    }

    /// Encrypts `m ∈ [0, n)`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::OutOfRange`] for `m ≥ n`.
    pub fn encrypt(
        &self,
        pk: &PublicKey,
        m: &BigUint,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Ciphertext> {
        pk.encrypt_with_factor(m, &self.factor(rng))
    }
}
