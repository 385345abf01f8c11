//! Vector kernels on flat slices: the arithmetic every aggregator, clipper and masker uses.
//!
//! Element-wise kernels split into rayon tasks above [`PAR_THRESHOLD`] elements. Reductions
//! accumulate in `f64` over fixed blocks and add the block sums in order, so a result is the same
//! bit for bit whatever the thread count — digests and tests depend on that.

use rayon::prelude::*;

use crate::{Error, Result, Scalar};

/// Slices shorter than this run on the calling thread: below it rayon's fork–join costs more than
/// the memory traffic it overlaps.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// Elements per rayon task and per reduction block.
const BLOCK: usize = 1 << 13;

/// Independent accumulators per block, so the compiler can vectorize a floating-point sum.
const LANES: usize = 8;

fn ensure_len(expected: usize, found: usize) -> Result<()> {
    if expected == found { Ok(()) } else { Err(Error::LengthMismatch { expected, found }) }
}

fn zip_apply<T: Scalar>(dst: &mut [T], src: &[T], f: impl Fn(&mut T, T) + Sync) -> Result<()> {
    ensure_len(dst.len(), src.len())?;
    let kernel = |d: &mut [T], s: &[T]| d.iter_mut().zip(s).for_each(|(x, &y)| f(x, y));
    if dst.len() >= PAR_THRESHOLD {
        dst.par_chunks_mut(BLOCK).zip(src.par_chunks(BLOCK)).for_each(|(d, s)| kernel(d, s));
    } else {
        kernel(dst, src);
    }
    Ok(())
}

fn map_apply<T: Scalar>(dst: &mut [T], f: impl Fn(&mut T) + Sync) {
    if dst.len() >= PAR_THRESHOLD {
        dst.par_chunks_mut(BLOCK).for_each(|d| d.iter_mut().for_each(&f));
    } else {
        dst.iter_mut().for_each(f);
    }
}

/// `dst += src`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn add_assign<T: Scalar>(dst: &mut [T], src: &[T]) -> Result<()> {
    zip_apply(dst, src, |x, y| *x = *x + y)
}

/// `dst -= src`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn sub_assign<T: Scalar>(dst: &mut [T], src: &[T]) -> Result<()> {
    zip_apply(dst, src, |x, y| *x = *x - y)
}

/// `dst += alpha * x` (BLAS axpy).
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn axpy<T: Scalar>(dst: &mut [T], alpha: T, x: &[T]) -> Result<()> {
    zip_apply(dst, x, |d, v| *d = *d + alpha * v)
}

/// `dst *= alpha`.
pub fn scale<T: Scalar>(dst: &mut [T], alpha: T) {
    map_apply(dst, |x| *x = *x * alpha);
}

/// Sum of `f(block)` over fixed blocks, added in order (deterministic under any thread count).
fn blocked_sum(len: usize, block_sum: impl Fn(usize, usize) -> f64 + Sync) -> f64 {
    let starts = (0..len).step_by(BLOCK);
    if len >= PAR_THRESHOLD {
        let partials: Vec<f64> = starts
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|s| block_sum(s, (s + BLOCK).min(len)))
            .collect();
        partials.into_iter().sum()
    } else {
        starts.map(|s| block_sum(s, (s + BLOCK).min(len))).sum()
    }
}

fn dot_block<T: Scalar>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i].as_f64() * y[i].as_f64();
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x.as_f64() * y.as_f64()).sum();
    acc.iter().sum::<f64>() + tail
}

/// Inner product `a · b`, accumulated in `f64`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn dot<T: Scalar>(a: &[T], b: &[T]) -> Result<f64> {
    ensure_len(a.len(), b.len())?;
    Ok(blocked_sum(a.len(), |s, e| dot_block(&a[s..e], &b[s..e])))
}

/// Squared L2 norm `‖a‖²`, accumulated in `f64`.
#[must_use]
pub fn norm_sq<T: Scalar>(a: &[T]) -> f64 {
    blocked_sum(a.len(), |s, e| dot_block(&a[s..e], &a[s..e]))
}

/// L2 norm `‖a‖`.
#[must_use]
pub fn l2_norm<T: Scalar>(a: &[T]) -> f64 {
    norm_sq(a).sqrt()
}

/// Squared Euclidean distance `‖a − b‖²`, accumulated in `f64` without forming `a − b`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn dist_sq<T: Scalar>(a: &[T], b: &[T]) -> Result<f64> {
    ensure_len(a.len(), b.len())?;
    Ok(blocked_sum(a.len(), |s, e| {
        let mut acc = [0.0f64; LANES];
        let (ca, cb) = (a[s..e].chunks_exact(LANES), b[s..e].chunks_exact(LANES));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..LANES {
                let d = x[i].as_f64() - y[i].as_f64();
                acc[i] += d * d;
            }
        }
        let tail: f64 = ra
            .iter()
            .zip(rb)
            .map(|(x, y)| {
                let d = x.as_f64() - y.as_f64();
                d * d
            })
            .sum();
        acc.iter().sum::<f64>() + tail
    }))
}

/// Cosine similarity `a·b / (‖a‖‖b‖)`, clamped to `[-1, 1]`.
///
/// Returns 0 when either vector is zero: the similarity is undefined there, and 0 is the neutral
/// value both scikit-learn and FLTrust's ReLU-clipped trust score use.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn cosine<T: Scalar>(a: &[T], b: &[T]) -> Result<f64> {
    let ab = dot(a, b)?;
    let denom = l2_norm(a) * l2_norm(b);
    Ok(if denom > 0.0 { (ab / denom).clamp(-1.0, 1.0) } else { 0.0 })
}

/// Index of the first non-finite element, if any.
#[must_use]
pub fn first_non_finite<T: Scalar>(a: &[T]) -> Option<usize> {
    // The all-finite check is a branch-free pass per block; only a failing block is searched.
    let block_ok = |s: &[T]| s.iter().fold(true, |ok, x| ok & x.is_finite());
    let find = |start: usize, s: &[T]| s.iter().position(|x| !x.is_finite()).map(|i| start + i);
    if a.len() >= PAR_THRESHOLD {
        a.par_chunks(BLOCK)
            .enumerate()
            .filter(|(_, s)| !block_ok(s))
            .min_by_key(|(b, _)| *b)
            .and_then(|(b, s)| find(b * BLOCK, s))
    } else {
        a.chunks(BLOCK)
            .enumerate()
            .find(|(_, s)| !block_ok(s))
            .and_then(|(b, s)| find(b * BLOCK, s))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn naive_dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn vec_pair(max: usize) -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        (0..max).prop_flat_map(|n| {
            (prop::collection::vec(-1e3..1e3f64, n), prop::collection::vec(-1e3..1e3f64, n))
        })
    }

    proptest! {
        #[test]
        fn dot_matches_naive((a, b) in vec_pair(3 * PAR_THRESHOLD)) {
            let ours = dot(&a, &b).unwrap();
            let naive = naive_dot(&a, &b);
            let scale: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum::<f64>() + 1.0;
            prop_assert!((ours - naive).abs() <= 1e-12 * scale);
        }

        #[test]
        fn axpy_is_add_of_scaled((a, b) in vec_pair(PAR_THRESHOLD * 2), alpha in -10.0..10.0f64) {
            let mut x = a.clone();
            axpy(&mut x, alpha, &b).unwrap();
            let mut y = b.clone();
            scale(&mut y, alpha);
            let mut z = a.clone();
            add_assign(&mut z, &y).unwrap();
            prop_assert_eq!(x, z);
        }

        #[test]
        fn add_then_sub_restores((a, b) in vec_pair(1000)) {
            // Exact for integers of modest size: use rounded inputs.
            let a: Vec<f64> = a.iter().map(|x| x.round()).collect();
            let b: Vec<f64> = b.iter().map(|x| x.round()).collect();
            let mut x = a.clone();
            add_assign(&mut x, &b).unwrap();
            sub_assign(&mut x, &b).unwrap();
            prop_assert_eq!(x, a);
        }

        #[test]
        fn dist_is_norm_of_difference((a, b) in vec_pair(5000)) {
            let mut d = a.clone();
            sub_assign(&mut d, &b).unwrap();
            let expect = norm_sq(&d);
            prop_assert!((dist_sq(&a, &b).unwrap() - expect).abs() <= 1e-9 * (1.0 + expect));
        }

        #[test]
        fn cosine_bounded_and_symmetric((a, b) in vec_pair(2000)) {
            let c = cosine(&a, &b).unwrap();
            prop_assert!((-1.0..=1.0).contains(&c));
            prop_assert_eq!(c, cosine(&b, &a).unwrap());
        }

        #[test]
        fn first_non_finite_finds_first(n in 1usize..(3 * PAR_THRESHOLD), pos in any::<prop::sample::Index>(), second in any::<prop::sample::Index>()) {
            let mut v = vec![1.0f32; n];
            prop_assert_eq!(first_non_finite(&v), None);
            let p = pos.index(n);
            let q = second.index(n);
            v[p] = f32::NAN;
            v[q] = f32::INFINITY;
            prop_assert_eq!(first_non_finite(&v), Some(p.min(q)));
        }
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut a = vec![1.0f32; 3];
        assert!(matches!(
            add_assign(&mut a, &[1.0; 4]),
            Err(Error::LengthMismatch { expected: 3, found: 4 })
        ));
        assert!(dot(&a, &[1.0; 2]).is_err());
        assert!(cosine(&a, &[1.0; 2]).is_err());
    }

    #[test]
    fn cosine_of_zero_vector_is_zero() {
        assert_eq!(cosine(&[0.0f32; 4], &[1.0; 4]).unwrap(), 0.0);
        assert!((cosine(&[1.0f32, 0.0], &[-2.0, 0.0]).unwrap() + 1.0).abs() < 1e-15);
    }

    #[test]
    fn f32_reductions_accumulate_in_f64() {
        // 1e6 copies of 0.1f32: an f32 running sum drifts by ~1 %; ours is exact to f64 rounding.
        let v = vec![0.1f32; 1_000_000];
        let ones = vec![1.0f32; 1_000_000];
        let expect = f64::from(0.1f32) * 1e6;
        assert!((dot(&v, &ones).unwrap() - expect).abs() < 1e-6);
        // Squares beyond f32 range do not overflow.
        assert!(norm_sq(&[3e20f32, 4e20]).is_finite());
    }

    #[test]
    fn reductions_are_deterministic() {
        let v: Vec<f32> = (0..200_000u32).map(|i| ((i as f32) * 0.37).sin()).collect();
        let first = norm_sq(&v);
        for _ in 0..5 {
            assert_eq!(norm_sq(&v).to_bits(), first.to_bits());
        }
    }
}
