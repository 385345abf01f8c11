//! Protocol parameters: identities, the communication graph (complete, or SecAgg+'s random
//! Harary graph), the graph-parameter finder, and quantization into `Z_(2^b)`.

use std::collections::BTreeSet;
use std::fmt;

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

use crate::{Error, Result};

/// A client's index in the round, `1..=n`; it is also its Shamir x-coordinate (never 0).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u32);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A round's random session identifier; bound into every key derivation and ciphertext, so
/// messages from one round are useless in another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 32]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionId({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Who talks to whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Graph {
    /// Bonawitz et al.: every client shares with every other client.
    Complete,
    /// SecAgg+ (Bell et al., CCS 2020, §3): a Harary graph H(n, k) — position i adjacent to the
    /// k/2 positions on either side on a ring — with positions randomly relabelled by a
    /// permutation drawn from `seed` (chosen by the server after keys are advertised).
    Harary {
        /// Degree k (even).
        degree: u32,
        /// Relabelling seed.
        seed: [u8; 32],
    },
}

/// Round parameters, announced by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Session identifier.
    pub session: SessionId,
    /// Number of clients n; ids are `1..=n`.
    pub num_clients: u32,
    /// Shamir threshold t: shares needed to reconstruct (within each neighbourhood for SecAgg+).
    pub threshold: u32,
    /// Vector length d.
    pub dimension: u32,
    /// Sums are exact in `Z_(2^ring_bits)`, `1 ≤ ring_bits ≤ 64`.
    pub ring_bits: u8,
    /// Communication graph.
    pub graph: Graph,
    /// Malicious-server variant: signed keys and the consistency check (Bonawitz et al. §4.2).
    pub malicious: bool,
}

/// Longest vector accepted.
pub const MAX_DIMENSION: u32 = 1 << 26;

/// Most clients in one session (the parameter finder's range). Parameters arrive from the
/// server, so a client must not let them size its allocations without a bound.
pub const MAX_CLIENTS: u32 = 1_000_000;

impl Params {
    /// Checks the parameters are usable.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_CLIENTS).contains(&self.num_clients) {
            return Err(Error::param(
                "num_clients",
                format!("{} not in 2..={MAX_CLIENTS}", self.num_clients),
            ));
        }
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return Err(Error::param(
                "dimension",
                format!("{} not in 1..={MAX_DIMENSION}", self.dimension),
            ));
        }
        if !(1..=64).contains(&self.ring_bits) {
            return Err(Error::param("ring_bits", format!("{} not in 1..=64", self.ring_bits)));
        }
        let max_neighbours = match self.graph {
            Graph::Complete => self.num_clients - 1,
            Graph::Harary { degree, .. } => {
                if degree == 0 || degree % 2 == 1 || degree >= self.num_clients {
                    return Err(Error::param("degree", format!("{degree}: even, ≥ 2 and < n")));
                }
                degree
            }
        };
        if self.threshold < 2 || self.threshold > max_neighbours {
            return Err(Error::param(
                "threshold",
                format!("{} not in 2..={max_neighbours}", self.threshold),
            ));
        }
        Ok(())
    }

    /// The ring modulus mask `2^b − 1`.
    #[must_use]
    pub fn ring_mask(&self) -> u64 {
        if self.ring_bits >= 64 { u64::MAX } else { (1u64 << self.ring_bits) - 1 }
    }

    /// Whether `id` is a valid client id.
    #[must_use]
    pub fn contains(&self, id: ClientId) -> bool {
        id.0 >= 1 && id.0 <= self.num_clients
    }

    /// `u`'s neighbours (never `u` itself), sorted.
    #[must_use]
    pub fn neighbours(&self, u: ClientId) -> BTreeSet<ClientId> {
        let n = self.num_clients;
        match &self.graph {
            Graph::Complete => (1..=n).map(ClientId).filter(|&v| v != u).collect(),
            Graph::Harary { degree, seed } => {
                let perm = harary_permutation(n, seed);
                // perm[pos] = id; invert to find u's position.
                let Some(pos) = perm.iter().position(|&id| id == u.0) else {
                    return BTreeSet::new();
                };
                let half = degree / 2;
                // Positions on the ring, in u64 so that pos + off cannot overflow for any n.
                let (pos, n) = (pos as u64, u64::from(n));
                (1..=u64::from(half))
                    .flat_map(|off| [(pos + off) % n, (pos + n - off) % n])
                    .filter_map(|p| perm.get(usize::try_from(p).ok()?).copied().map(ClientId))
                    .collect()
            }
        }
    }
}

/// The random relabelling of ring positions: `perm[position] = client id`.
fn harary_permutation(n: u32, seed: &[u8; 32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (1..=n).collect();
    ids.shuffle(&mut ChaCha20Rng::from_seed(*seed));
    ids
}

/// Adversary model of the parameter finder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Adversary {
    /// No adversarial clients (requires adversarial rate 0).
    None,
    /// Honest-but-curious clients colluding with the server.
    SemiHonest,
    /// Clients that may also deviate (e.g. lie about dropouts): the threshold must exceed half the
    /// neighbourhood's bad clients.
    SemiMalicious,
}

/// Degree and threshold for SecAgg+.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphParams {
    /// Neighbours per client.
    pub degree: u32,
    /// Shamir threshold within a neighbourhood.
    pub threshold: u32,
}

fn ln_choose(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// `ln Pr[X = x]` for `X ∼ Hypergeometric(population, successes, draws)`.
fn ln_hyper(pop: f64, succ: f64, draws: f64, x: f64) -> f64 {
    if x < 0.0 || x > succ || x > draws || draws - x > pop - succ {
        return f64::NEG_INFINITY;
    }
    ln_choose(succ, x) + ln_choose(pop - succ, draws - x) - ln_choose(pop, draws)
}

fn log_sum_exp(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.filter(|x| x.is_finite()).collect();
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY { m } else { m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln() }
}

/// SecAgg+'s graph-parameter finder, by the method of Google's production finder
/// (`fcp/secagg/server/graph_parameter_finder.cc` in google-parfait/federated-compute; Bell et al.,
/// CCS 2020, Thm 3.6 and §5): with `A = ⌊αn⌋` adversarial and `D = ⌊δn⌋` dropped clients
/// (`B = A + D` bad) and `L = ⌈(1−δ)n⌉` surviving, try `k = 2, 4, 6, …` and return the first `k`
/// for which
/// 1. the graph stays connected after removing the bad clients except with probability below
///    `2^-(security+1)`: `P = n(n−k−1)/2 · B!(n−k)!/(n!(B−k)!)`;
/// 2. with `X` the adversarial and `S` the surviving neighbours of a client (hypergeometric), the
///    smallest `t₁` with `Pr[X > t₁] < 2^-(security+1)/n` (for semi-malicious adversaries
///    `⌈(t₁ + k − 1.25)/2⌉`) is below the largest `t₂` with `Pr[S ≤ t₂] < 2^-correctness/n`;
///
/// and the threshold `max(t₁ + 1, 2)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] for rates outside `[0, 1)`, an adversary class the rates do not
/// allow (`None` needs α = 0; `None`/semi-honest need α + δ ≤ 0.9; semi-malicious α + 2δ ≤ 0.9),
/// `n` outside `1..=1e6`, or no feasible degree (always for n ≤ 3).
pub fn find_graph_params(
    n: u32,
    adversarial_rate: f64,
    dropout_rate: f64,
    adversary: Adversary,
    security_bits: u32,
    correctness_bits: u32,
) -> Result<GraphParams> {
    const EPS: f64 = 1e-14;
    if !(1..=1_000_000).contains(&n) {
        return Err(Error::param("n", format!("{n} not in 1..=1e6")));
    }
    let rate_ok = |r: f64| (0.0..1.0).contains(&r);
    if !rate_ok(adversarial_rate) || !rate_ok(dropout_rate) {
        return Err(Error::param("rates", "adversarial and dropout rates must be in [0, 1)"));
    }
    let ok = match adversary {
        Adversary::None => adversarial_rate == 0.0 && adversarial_rate + dropout_rate <= 0.9,
        Adversary::SemiHonest => adversarial_rate + dropout_rate <= 0.9,
        Adversary::SemiMalicious => adversarial_rate + 2.0 * dropout_rate <= 0.9,
    };
    if !ok {
        return Err(Error::param(
            "adversary",
            format!("{adversary:?} is not allowed with α = {adversarial_rate}, δ = {dropout_rate}"),
        ));
    }
    let nf = f64::from(n);
    let a = ((adversarial_rate + EPS) * nf).floor();
    let d = ((dropout_rate + EPS) * nf).floor();
    let b = a + d;
    let l = ((1.0 - dropout_rate - EPS) * nf).ceil();
    let sec = -f64::from(security_bits + 1) * std::f64::consts::LN_2;
    let cor = -f64::from(correctness_bits) * std::f64::consts::LN_2;
    let mut k = 2u32;
    while k < n.saturating_sub(1) {
        let kf = f64::from(k);
        // (1) Disconnection.
        let connected = if kf > b {
            true
        } else {
            let ln_p = nf.ln() + (nf - kf - 1.0).ln() - std::f64::consts::LN_2
                + ln_gamma(b + 1.0)
                + ln_gamma(nf - kf + 1.0)
                - ln_gamma(nf + 1.0)
                - ln_gamma(b - kf + 1.0);
            ln_p < sec
        };
        if connected {
            // (2) Threshold: t₁ from the adversarial tail, t₂ from the survivors' lower tail.
            let target1 = sec - nf.ln();
            let mut t1 = 0u32;
            while t1 <= k {
                let tail = log_sum_exp(((t1 + 1)..=k).map(|x| ln_hyper(nf, a, kf, f64::from(x))));
                if tail < target1 {
                    break;
                }
                t1 += 1;
            }
            if adversary == Adversary::SemiMalicious {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "small non-negative"
                )]
                let adjusted = ((f64::from(t1) + kf - 1.25) / 2.0).ceil() as u32;
                t1 = adjusted;
            }
            let target2 = cor - nf.ln();
            let mut t2 = 0u32;
            while t2 <= k {
                let cdf = log_sum_exp((0..=t2).map(|x| ln_hyper(nf, l, kf, f64::from(x))));
                if cdf >= target2 {
                    break;
                }
                t2 += 1;
            }
            if t2 > t1 {
                return Ok(GraphParams { degree: k, threshold: (t1 + 1).max(2) });
            }
        }
        k += 2;
    }
    Err(Error::param("n", format!("no degree below n − 1 satisfies the bounds for n = {n}")))
}

/// Stochastic quantization of clipped floats into `[0, 2^q − 1]` so that the sum of up to
/// `max_clients` vectors fits `Z_(2^b)` with `b = q + ⌈log₂ max_clients⌉` and never wraps.
///
/// A value `v ∈ [−c, c]` maps to `(v + c)/(2c)·(2^q − 1)`, rounded down or up with probability
/// equal to the fractional part (stochastic rounding: unbiased, error variance ≤ 1/4 level² per
/// value). Values outside `[−c, c]` are clamped (callers clip first). The dequantized sum is
/// `S·2c/(2^q − 1) − m·c` for `m` summed vectors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantizer {
    clip: f64,
    level_bits: u8,
    max_clients: u32,
}

impl Quantizer {
    /// A quantizer for values in `[−clip, clip]` with `2^level_bits` levels, for sums of up to
    /// `max_clients` vectors.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] unless `clip > 0`, `1 ≤ level_bits`, and the ring fits 64 bits.
    pub fn new(clip: f64, level_bits: u8, max_clients: u32) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0) {
            return Err(Error::param("clip", format!("{clip} not finite and positive")));
        }
        if level_bits == 0 || max_clients == 0 {
            return Err(Error::param("level_bits", "need ≥ 1 level bit and ≥ 1 client"));
        }
        let q = Self { clip, level_bits, max_clients };
        if q.ring_bits_u32() > 64 {
            return Err(Error::param(
                "level_bits",
                format!("{} + ⌈log₂ {max_clients}⌉ exceeds 64 bits", level_bits),
            ));
        }
        Ok(q)
    }

    fn ring_bits_u32(&self) -> u32 {
        u32::from(self.level_bits) + (32 - (self.max_clients - 1).leading_zeros())
    }

    /// The ring size `b` in bits.
    #[must_use]
    pub fn ring_bits(&self) -> u8 {
        u8::try_from(self.ring_bits_u32()).unwrap_or(64)
    }

    fn max_level(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "levels ≤ 2^63")]
        let m = ((1u128 << self.level_bits) - 1) as f64;
        m
    }

    /// Quantizes `values` with stochastic rounding drawn from `rng`.
    pub fn quantize(&self, values: &[f32], rng: &mut impl rand::Rng) -> Vec<u64> {
        let m = self.max_level();
        values
            .iter()
            .map(|&v| {
                let x =
                    (f64::from(v).clamp(-self.clip, self.clip) + self.clip) / (2.0 * self.clip) * m;
                let lo = x.floor();
                let up = rand::RngExt::random_bool(rng, (x - lo).clamp(0.0, 1.0));
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "in [0, 2^q − 1]"
                )]
                let q = (lo + f64::from(u8::from(up))).min(m) as u64;
                q
            })
            .collect()
    }

    /// The float sum of `count` vectors from their integer sum.
    #[must_use]
    pub fn dequantize_sum(&self, sum: &[u64], count: u32) -> Vec<f32> {
        let scale = 2.0 * self.clip / self.max_level();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_precision_loss,
            reason = "back to f32"
        )]
        sum.iter().map(|&s| (s as f64 * scale - f64::from(count) * self.clip) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn params(n: u32, graph: Graph) -> Params {
        Params {
            session: SessionId([1; 32]),
            num_clients: n,
            threshold: 2,
            dimension: 4,
            ring_bits: 32,
            graph,
            malicious: false,
        }
    }

    #[test]
    fn harary_graph_is_regular_and_symmetric() {
        let p = params(20, Graph::Harary { degree: 6, seed: [9; 32] });
        for u in 1..=20 {
            let nb = p.neighbours(ClientId(u));
            assert_eq!(nb.len(), 6);
            assert!(!nb.contains(&ClientId(u)));
            for v in nb {
                assert!(p.neighbours(v).contains(&ClientId(u)), "asymmetric at {u}–{v:?}");
            }
        }
        assert_eq!(params(5, Graph::Complete).neighbours(ClientId(3)).len(), 4);
    }

    #[test]
    fn params_are_validated() {
        assert!(params(2, Graph::Complete).validate().is_err(), "t = 2 needs two neighbours");
        assert!(params(3, Graph::Complete).validate().is_ok());
        let mut p = params(10, Graph::Harary { degree: 3, seed: [0; 32] });
        assert!(p.validate().is_err());
        p.graph = Graph::Harary { degree: 4, seed: [0; 32] };
        assert!(p.validate().is_ok());
        p.ring_bits = 65;
        assert!(p.validate().is_err());
        // A server cannot make a client allocate for billions of peers.
        let mut huge = params(10, Graph::Harary { degree: 4, seed: [0; 32] });
        huge.num_clients = u32::MAX;
        assert!(huge.validate().is_err());
    }

    #[test]
    fn quantization_is_unbiased_and_fits() -> Result<()> {
        let q = Quantizer::new(1.0, 16, 1000)?;
        assert_eq!(q.ring_bits(), 26);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let x = vec![0.123_456f32; 20_000];
        let s: Vec<u64> = q.quantize(&x, &mut rng);
        assert!(s.iter().all(|&v| v < 1 << 16));
        let back = q.dequantize_sum(&[s.iter().sum()], 20_000)[0];
        assert!((back / 20_000.0 - 0.123_456).abs() < 1e-5, "{back}");
        assert!(Quantizer::new(1.0, 60, 100).is_err());
        Ok(())
    }
}
