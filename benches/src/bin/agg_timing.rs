//! Times fl-agg's rules on the configurations of `../shared/anchors/bench_flower.py` (f32, four
//! layers splitting d, standard normal values, `num_examples` in 1..=100, Krum f = N/5,
//! Multi-Krum m = N/2, Bulyan f = (N − 3)/4, trimmed mean 0.1) and writes the same CSV columns,
//! median of `--reps` wall-clock runs after one warm-up. `cargo xtask bench-compare agg` runs it
//! next to Flower and prints the ratios.
//!
//! `agg_timing [--reps R] [--only N:d,...] [--rule NAME] [--out FILE]`

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports to the terminal"
)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use fl_agg::{Aggregator, Bulyan, FedAvg, FedAvgOrder, GeometricMedian, Krum, Median, TrimmedMean};
use fl_core::{
    ClientUpdate, DecodeOptions, ModelParams, ModelSpec, ModelVersion, PartnerId, Round,
    decode_update, decode_update_into, encode_update,
};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

const DEFAULT_CONFIGS: &[(usize, usize)] = &[(100, 100_000), (100, 1_000_000)];

fn clients(
    n: usize,
    d: usize,
    seed: u64,
) -> anyhow::Result<(ModelParams<f32>, Vec<ClientUpdate<f32>>)> {
    let q = d / 4;
    let spec = Arc::new(ModelSpec::from_pairs([
        ("l0", vec![q]),
        ("l1", vec![q]),
        ("l2", vec![q]),
        ("l3", vec![d - 3 * q]),
    ])?);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut ups = Vec::with_capacity(n);
    for i in 0..n {
        let data: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let params = ModelParams::from_flat(Arc::clone(&spec), data)?;
        let examples = 1 + (rand::Rng::next_u32(&mut rng) % 100);
        ups.push(ClientUpdate::new(
            PartnerId::new(format!("c{i}"))?,
            Round(1),
            ModelVersion(0),
            examples.into(),
            params,
        ));
    }
    Ok((ModelParams::zeros(spec), ups))
}

fn time(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
    f()?;
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        ts.push(t0.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = 5usize;
    let mut configs = DEFAULT_CONFIGS.to_vec();
    let mut out: Option<String> = None;
    let mut rule_filter: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reps" => reps = it.next().context("--reps needs a value")?.parse()?,
            "--out" => out = Some(it.next().context("--out needs a value")?.clone()),
            "--rule" => rule_filter = Some(it.next().context("--rule needs a name")?.clone()),
            "--only" => {
                configs = it
                    .next()
                    .context("--only needs N:d,...")?
                    .split(',')
                    .map(|p| {
                        let (n, d) = p.split_once(':').context("N:d")?;
                        Ok((n.parse()?, d.parse()?))
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            other => bail!(
                "unknown argument {other}; usage: agg_timing [--reps R] [--only N:d,...] [--rule NAME] [--out FILE]"
            ),
        }
    }
    let mut csv = String::from("aggregator,n_clients,d,dtype,reps,median_s,min_s,max_s\n");
    for &(n, d) in &configs {
        let (global, ups) = clients(n, d, 2024)?;
        let frames: Vec<Vec<u8>> = ups.iter().map(encode_update).collect::<Result<_, _>>()?;
        let decode_opts = DecodeOptions::expecting(Arc::clone(global.shared_spec()));
        let (fk, mk, fb) = (n / 5, n / 2, (n - 3) / 4);
        let wanted = |name: &str| rule_filter.as_deref().is_none_or(|r| r == name);
        let mut run = |name: &str,
                       agg: &mut dyn Aggregator<f32, Error = fl_agg::Error>|
         -> anyhow::Result<()> {
            if !wanted(name) {
                return Ok(());
            }
            let ts = time(reps, || {
                std::hint::black_box(agg.aggregate(&global, &ups)?);
                Ok(())
            })?;
            report(&mut csv, name, n, d, reps, &ts);
            Ok(())
        };
        run("fedavg", &mut FedAvg::with_order(FedAvgOrder::Reference))?;
        run("fedavg_inplace_no_decode", &mut FedAvg::with_order(FedAvgOrder::InPlace))?;
        run("krum", &mut Krum::new(fk))?;
        run("multikrum", &mut Krum::multi(fk, mk))?;
        if d <= 100_000 || n <= 10 {
            run("bulyan", &mut Bulyan::new(fb))?;
        }
        run("trimmed_mean", &mut TrimmedMean::new(0.1)?)?;
        run("median", &mut Median)?;
        run("geometric_median", &mut GeometricMedian::default())?;
        // Flower's in-place path deserialises every update (np.load) inside the call; the
        // counterpart decodes every frame too: into reused buffers, as a server keeps one per
        // client slot ("fedavg_inplace"), and into fresh allocations ("..._fresh_alloc").
        if wanted("fedavg_inplace") {
            let mut slots: Vec<ClientUpdate<f32>> = ups.clone();
            let ts = time(reps, || {
                slots
                    .par_iter_mut()
                    .zip(&frames)
                    .try_for_each(|(slot, f)| decode_update_into(f, &decode_opts, slot))?;
                std::hint::black_box(FedAvg::default().aggregate(&global, &slots)?);
                Ok(())
            })?;
            report(&mut csv, "fedavg_inplace", n, d, reps, &ts);
            let ts = time(reps, || {
                let decoded: Vec<ClientUpdate<f32>> = frames
                    .par_iter()
                    .map(|f| decode_update(f, &decode_opts))
                    .collect::<Result<_, _>>()?;
                std::hint::black_box(FedAvg::default().aggregate(&global, &decoded)?);
                Ok(())
            })?;
            report(&mut csv, "fedavg_inplace_fresh_alloc", n, d, reps, &ts);
        }
    }
    if let Some(path) = out {
        std::fs::File::create(&path)?.write_all(csv.as_bytes())?;
    }
    Ok(())
}

fn report(csv: &mut String, name: &str, n: usize, d: usize, reps: usize, ts: &[f64]) {
    let med = ts[ts.len() / 2];
    let (min, max) = (ts[0], ts[ts.len() - 1]);
    println!("{name:26} N={n:4} d={d:9} median={med:10.5}s min={min:.5} max={max:.5}");
    csv.push_str(&format!("{name},{n},{d},float32,{reps},{med:.6},{min:.6},{max:.6}\n"));
}
