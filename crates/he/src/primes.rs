//! Prime generation through crypto-primes (RustCrypto-style, maintained): a small-factor sieve,
//! then Miller–Rabin to base 2 and a strong Lucas test — the Baillie–PSW test (Baillie and
//! Wagstaff, "Lucas Pseudoprimes", Math. Comp. 1980; Pomerance, Selfridge and Wagstaff, "The
//! pseudoprimes to 25·10⁹", Math. Comp. 1980), with no known counterexample — for ordinary or
//! safe primes (`(p − 1)/2` also prime).

use crypto_bigint::BoxedUint;
use crypto_primes::{Flavor, random_prime as cp_random_prime};
use num_bigint::BigUint;
use rand::CryptoRng;

/// A random prime of exactly `bits` bits (top bit set); a safe prime when `safe`.
pub(crate) fn random_prime(bits: u32, safe: bool, rng: &mut (impl CryptoRng + ?Sized)) -> BigUint {
    let flavor = if safe { Flavor::Safe } else { Flavor::Any };
    let p: BoxedUint = cp_random_prime(rng, flavor, bits);
    BigUint::from_bytes_be(&p.to_be_bytes())
}
