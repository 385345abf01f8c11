//! Cross-crate benchmarks live in `benches/`; per-crate micro benchmarks live in each crate's own
//! `benches/` directory. This library holds the shared model shapes the benchmarks use.

#![cfg_attr(test, allow(clippy::panic_in_result_fn, reason = "tests assert and return Result"))]
use fl_core::{ModelSpec, Result};

/// The layout of an MLP with the given layer widths (`[784, 128, 10]` → two dense layers).
///
/// # Errors
///
/// [`fl_core::Error::EmptyModel`] for fewer than two widths, or the [`ModelSpec::new`] errors for a
/// zero width.
pub fn mlp_spec(widths: &[usize]) -> Result<ModelSpec> {
    ModelSpec::from_pairs(widths.windows(2).enumerate().flat_map(|(i, w)| {
        [
            (format!("fc{}.weight", i + 1), vec![w[1], w[0]]),
            (format!("fc{}.bias", i + 1), vec![w[1]]),
        ]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_layout() -> Result<()> {
        let s = mlp_spec(&[784, 128, 10])?;
        assert_eq!(s.num_params(), 784 * 128 + 128 + 128 * 10 + 10);
        assert_eq!(s.layers()[2].name(), "fc2.weight");
        assert!(mlp_spec(&[5]).is_err());
        Ok(())
    }
}
