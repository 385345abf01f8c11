//! Splitting a dataset across clients, seeded and reproducible.
//!
//! - [`iid`]: shuffle and deal out equal parts.
//! - [`dirichlet`]: label skew (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data
//!   Distribution for Federated Visual Classification", 2019, §3): for each class, the fraction
//!   going to each client is drawn from Dirichlet(α); small α gives few classes per client.
//! - [`shards`]: pathological non-IID (McMahan et al., AISTATS 2017, §3): sort by label, cut into
//!   `clients × shards_per_client` shards, give each client that many random shards.

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Gamma};

use crate::{Dataset, Error, Result};

fn check_clients(data: &Dataset, clients: usize) -> Result<()> {
    if clients == 0 {
        return Err(Error::config("clients", "at least one client"));
    }
    if data.len() < clients {
        return Err(Error::config(
            "clients",
            format!("{clients} clients for {} examples", data.len()),
        ));
    }
    Ok(())
}

/// Equal-sized random parts (sizes differ by at most one).
///
/// # Errors
///
/// [`Error::InvalidConfig`] for zero clients or more clients than examples.
pub fn iid(data: &Dataset, clients: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    check_clients(data, clients)?;
    let mut idx: Vec<usize> = (0..data.len()).collect();
    idx.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
    Ok((0..clients).map(|c| idx.iter().skip(c).step_by(clients).copied().collect()).collect())
}

/// Dirichlet(α) label skew. Every client receives at least `min_size` examples: the draw is
/// repeated (with the next seed) until it does, as in Hsu et al.'s reference code.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for α ≤ 0, zero clients, or an unattainable `min_size`.
pub fn dirichlet(
    data: &Dataset,
    clients: usize,
    alpha: f64,
    min_size: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    check_clients(data, clients)?;
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::config("alpha", format!("{alpha} is not finite and positive")));
    }
    if min_size.saturating_mul(clients) > data.len() {
        return Err(Error::config("min_size", "more than the data can give every client"));
    }
    let gamma = Gamma::new(alpha, 1.0).map_err(|e| Error::config("alpha", e.to_string()))?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.num_classes];
    for (i, &l) in data.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    for attempt in 0..1000u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed.wrapping_add(attempt));
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); clients];
        for members in &by_class {
            let mut members = members.clone();
            members.shuffle(&mut rng);
            let w: Vec<f64> = (0..clients).map(|_| gamma.sample(&mut rng)).collect();
            let total: f64 = w.iter().sum();
            let mut start = 0usize;
            let mut acc = 0.0;
            for (c, wc) in w.iter().enumerate() {
                acc += wc / total;
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss,
                    reason = "a fraction of a class size"
                )]
                let end = if c + 1 == clients {
                    members.len()
                } else {
                    ((acc * members.len() as f64).round() as usize).min(members.len())
                };
                parts[c].extend_from_slice(&members[start..end.max(start)]);
                start = end.max(start);
            }
        }
        if parts.iter().all(|p| p.len() >= min_size) {
            for p in &mut parts {
                p.shuffle(&mut rng);
            }
            return Ok(parts);
        }
    }
    Err(Error::config(
        "min_size",
        "no Dirichlet draw gave every client enough examples in 1000 tries",
    ))
}

/// Pathological shards: each client gets `shards_per_client` label-sorted shards.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for zero clients/shards or more shards than examples.
pub fn shards(
    data: &Dataset,
    clients: usize,
    shards_per_client: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    check_clients(data, clients)?;
    let n_shards = clients
        .checked_mul(shards_per_client)
        .filter(|&s| s > 0 && s <= data.len())
        .ok_or_else(|| Error::config("shards_per_client", "zero, or more shards than examples"))?;
    let mut idx: Vec<usize> = (0..data.len()).collect();
    idx.sort_by_key(|&i| (data.labels[i], i));
    let size = data.len() / n_shards;
    let mut order: Vec<usize> = (0..n_shards).collect();
    order.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
    Ok(order
        .chunks(shards_per_client)
        .map(|mine| {
            mine.iter().flat_map(|&s| idx[s * size..(s + 1) * size].iter().copied()).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    fn data(n: usize, k: u32) -> Dataset {
        Dataset::new(Array2::zeros((n, 2)), (0..n).map(|i| i as u32 % k).collect(), k as usize)
            .unwrap()
    }

    fn is_partition(parts: &[Vec<usize>], n: usize) -> bool {
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort_unstable();
        all == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn every_partitioner_partitions_and_is_reproducible() -> Result<()> {
        let d = data(1000, 10);
        let a = iid(&d, 7, 1)?;
        assert!(is_partition(&a, 1000) && a.iter().all(|p| p.len() >= 142));
        assert_eq!(a, iid(&d, 7, 1)?);
        let b = dirichlet(&d, 10, 0.5, 10, 2)?;
        assert!(is_partition(&b, 1000) && b.iter().all(|p| p.len() >= 10));
        assert_eq!(b, dirichlet(&d, 10, 0.5, 10, 2)?);
        let s = shards(&d, 10, 2, 3)?;
        assert!(s.iter().all(|p| p.len() == 100));
        // Each shard is one label here, so a client sees at most 2 labels.
        for p in &s {
            let mut labels: Vec<u32> = p.iter().map(|&i| d.labels[i]).collect();
            labels.sort_unstable();
            labels.dedup();
            assert!(labels.len() <= 2);
        }
        assert!(
            iid(&d, 0, 1).is_err()
                && dirichlet(&d, 5, 0.0, 1, 1).is_err()
                && shards(&d, 10, 0, 1).is_err()
        );
        Ok(())
    }

    #[test]
    fn small_alpha_is_more_skewed() -> Result<()> {
        // Mean number of classes holding ≥ 5% of a client's data, for α = 0.1 vs α = 100.
        let d = data(5000, 10);
        let spread = |parts: &[Vec<usize>]| {
            parts
                .iter()
                .map(|p| {
                    let mut c = [0usize; 10];
                    p.iter().for_each(|&i| c[d.labels[i] as usize] += 1);
                    c.iter().filter(|&&x| x * 20 >= p.len()).count() as f64
                })
                .sum::<f64>()
                / parts.len() as f64
        };
        let skewed = spread(&dirichlet(&d, 10, 0.1, 5, 4)?);
        let flat = spread(&dirichlet(&d, 10, 100.0, 5, 4)?);
        assert!(skewed < 5.0 && flat > 9.0, "{skewed} vs {flat}");
        Ok(())
    }
}
