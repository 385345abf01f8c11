//! [`ModelParams`]: named layers of any rank on one contiguous buffer.

use std::fmt;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};

use crate::{Error, ModelSpec, Result, Scalar, ops};

/// Model parameters: an ordered list of named layers stored back to back in one flat buffer.
///
/// Aggregators and crypto work on [`as_slice`](Self::as_slice) without copying; training code
/// works on per-layer `ndarray` views. The [`ModelSpec`] sits behind an [`Arc`], so a server holding
/// a hundred updates of one model keeps one copy of it and compares specs by pointer first.
///
/// ```
/// use fl_core::{ModelParams, ModelSpec};
///
/// let spec = ModelSpec::from_pairs([("fc.weight", vec![2, 3]), ("fc.bias", vec![2])])?;
/// let mut global = ModelParams::<f32>::zeros(spec);
/// global.layer_mut(1)?.fill(0.5);
/// assert_eq!(global.as_slice(), &[0., 0., 0., 0., 0., 0., 0.5, 0.5]);
///
/// let mut update = global.clone();
/// update.as_mut_slice()[0] = 3.0;
/// update.as_mut_slice()[1] = 4.0;
/// let delta = update.sub(&global)?;
/// assert_eq!(delta.l2_norm(), 5.0);
/// assert_eq!(delta.layer_by_name("fc.weight")?.shape(), &[2, 3]);
/// # Ok::<(), fl_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ModelParams<T: Scalar = f32> {
    spec: Arc<ModelSpec>,
    data: Vec<T>,
}

impl<T: Scalar> ModelParams<T> {
    /// All-zero parameters of `spec`.
    #[must_use]
    pub fn zeros(spec: impl Into<Arc<ModelSpec>>) -> Self {
        let spec = spec.into();
        let data = vec![T::zero(); spec.num_params()];
        Self { spec, data }
    }

    /// Wraps a flat buffer laid out as `spec` describes. Values are not checked for finiteness;
    /// call [`ensure_finite`](Self::ensure_finite) on untrusted data.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] if `data.len()` differs from `spec.num_params()`.
    pub fn from_flat(spec: impl Into<Arc<ModelSpec>>, data: Vec<T>) -> Result<Self> {
        let spec = spec.into();
        if data.len() != spec.num_params() {
            return Err(Error::LengthMismatch { expected: spec.num_params(), found: data.len() });
        }
        Ok(Self { spec, data })
    }

    /// Builds parameters from named arrays, copied in row-major order.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::new`] for the resulting names and shapes.
    pub fn from_layers<N: Into<String>>(
        layers: impl IntoIterator<Item = (N, ArrayD<T>)>,
    ) -> Result<Self> {
        let mut specs = Vec::new();
        let mut data = Vec::new();
        for (name, array) in layers {
            specs.push(crate::LayerSpec::new(name, array.shape().to_vec()));
            data.extend(array.iter().copied());
        }
        Self::from_flat(ModelSpec::new(specs)?, data)
    }

    /// The layer layout.
    #[must_use]
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The shared layer layout, for building more parameters of the same model cheaply.
    #[must_use]
    pub fn shared_spec(&self) -> &Arc<ModelSpec> {
        &self.spec
    }

    /// Number of parameters (never zero).
    #[must_use]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Always `false`: a valid model holds at least one parameter.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// All parameters, layer after layer.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// All parameters, mutably.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Gives up the flat buffer.
    #[must_use]
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    fn range(&self, position: usize) -> Result<std::ops::Range<usize>> {
        self.spec.range(position).ok_or_else(|| {
            Error::invalid_argument(
                "position",
                format!("layer {position} requested of a {}-layer model", self.spec.num_layers()),
            )
        })
    }

    /// The flat slice of layer `position`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `position` is out of range.
    pub fn layer_slice(&self, position: usize) -> Result<&[T]> {
        let r = self.range(position)?;
        Ok(&self.data[r])
    }

    /// An `ndarray` view of layer `position` with its declared shape.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `position` is out of range.
    pub fn layer(&self, position: usize) -> Result<ArrayViewD<'_, T>> {
        let r = self.range(position)?;
        let shape = IxDyn(self.spec.layers()[position].shape());
        ArrayViewD::from_shape(shape, &self.data[r])
            .map_err(|e| Error::invalid_argument("layer", e.to_string()))
    }

    /// A mutable `ndarray` view of layer `position`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `position` is out of range.
    pub fn layer_mut(&mut self, position: usize) -> Result<ArrayViewMutD<'_, T>> {
        let r = self.range(position)?;
        let shape = IxDyn(self.spec.layers()[position].shape());
        ArrayViewMutD::from_shape(shape, &mut self.data[r])
            .map_err(|e| Error::invalid_argument("layer", e.to_string()))
    }

    /// A view of the layer called `name`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownLayer`] if the model has no such layer.
    pub fn layer_by_name(&self, name: &str) -> Result<ArrayViewD<'_, T>> {
        let p = self.spec.position(name).ok_or_else(|| Error::UnknownLayer(name.to_owned()))?;
        self.layer(p)
    }

    /// A mutable view of the layer called `name`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownLayer`] if the model has no such layer.
    pub fn layer_by_name_mut(&mut self, name: &str) -> Result<ArrayViewMutD<'_, T>> {
        let p = self.spec.position(name).ok_or_else(|| Error::UnknownLayer(name.to_owned()))?;
        self.layer_mut(p)
    }

    /// Iterates over `(name, flat slice)` pairs in order.
    pub fn layer_slices(&self) -> impl Iterator<Item = (&str, &[T])> + '_ {
        (0..self.spec.num_layers()).map(move |p| {
            let r = self.spec.range(p).unwrap_or(0..0);
            (self.spec.layers()[p].name(), &self.data[r])
        })
    }

    /// Checks every value is finite.
    ///
    /// # Errors
    ///
    /// [`Error::NonFinite`] naming the layer and index of the first NaN or infinity.
    pub fn ensure_finite(&self) -> Result<()> {
        match ops::first_non_finite(&self.data) {
            None => Ok(()),
            Some(flat) => Err(self.non_finite_error(flat)),
        }
    }

    pub(crate) fn non_finite_error(&self, flat: usize) -> Error {
        let value = self.data[flat].as_f64();
        match self.spec.locate(flat) {
            Some((layer, index)) => {
                Error::NonFinite { layer: layer.name().to_owned(), index, value }
            }
            None => Error::NonFinite { layer: String::new(), index: vec![flat], value },
        }
    }

    /// Checks that `other` has the same layout.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`].
    pub fn ensure_same_spec<U: Scalar>(&self, other: &ModelParams<U>) -> Result<()> {
        if Arc::ptr_eq(&self.spec, &other.spec) {
            return Ok(());
        }
        self.spec.ensure_same(&other.spec)
    }

    /// `self += other`.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`].
    pub fn add_assign(&mut self, other: &Self) -> Result<()> {
        self.ensure_same_spec(other)?;
        ops::add_assign(&mut self.data, &other.data)
    }

    /// `self -= other`.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`].
    pub fn sub_assign(&mut self, other: &Self) -> Result<()> {
        self.ensure_same_spec(other)?;
        ops::sub_assign(&mut self.data, &other.data)
    }

    /// `self += alpha * x`.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`].
    pub fn axpy(&mut self, alpha: T, x: &Self) -> Result<()> {
        self.ensure_same_spec(x)?;
        ops::axpy(&mut self.data, alpha, &x.data)
    }

    /// `self *= alpha`.
    pub fn scale(&mut self, alpha: T) {
        ops::scale(&mut self.data, alpha);
    }

    /// A new `self − other`, e.g. a client's delta from the global model.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`].
    pub fn sub(&self, other: &Self) -> Result<Self> {
        let mut out = self.clone();
        out.sub_assign(other)?;
        Ok(out)
    }

    /// Inner product over all parameters, accumulated in `f64`.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`].
    pub fn dot(&self, other: &Self) -> Result<f64> {
        self.ensure_same_spec(other)?;
        ops::dot(&self.data, &other.data)
    }

    /// L2 norm over all parameters.
    #[must_use]
    pub fn l2_norm(&self) -> f64 {
        ops::l2_norm(&self.data)
    }

    /// Cosine similarity over all parameters (0 if either is zero; see [`ops::cosine`]).
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::ensure_same`].
    pub fn cosine(&self, other: &Self) -> Result<f64> {
        self.ensure_same_spec(other)?;
        ops::cosine(&self.data, &other.data)
    }

    /// Converts every element to another precision (`f32` ↔ `f64`), rounding to nearest.
    #[must_use]
    pub fn cast<U: Scalar>(&self) -> ModelParams<U> {
        ModelParams {
            spec: Arc::clone(&self.spec),
            data: self.data.iter().map(|x| U::from_f64(x.as_f64())).collect(),
        }
    }
}

impl<T: Scalar> PartialEq for ModelParams<T> {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.spec, &other.spec) || self.spec == other.spec) && self.data == other.data
    }
}

impl<T: Scalar> fmt::Debug for ModelParams<T> {
    // Parameters may be huge; print the layout, not the values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelParams")
            .field("dtype", &T::DTYPE)
            .field("layers", &self.spec.layers())
            .field("num_params", &self.data.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::ArrayD;
    use proptest::prelude::*;

    use super::*;

    fn spec() -> ModelSpec {
        ModelSpec::from_pairs([("conv", vec![2, 1, 2, 2]), ("bias", vec![2]), ("scale", vec![])])
            .unwrap()
    }

    #[test]
    fn layers_are_views_of_the_flat_buffer() -> Result<()> {
        let data: Vec<f32> = (0..11u8).map(f32::from).collect();
        let mut p = ModelParams::from_flat(spec(), data)?;
        assert_eq!(p.layer(0)?[[1, 0, 1, 1]], 7.0);
        assert_eq!(p.layer_by_name("bias")?.as_slice(), Some(&[8.0f32, 9.0][..]));
        assert_eq!(p.layer(2)?.ndim(), 0);
        p.layer_by_name_mut("scale")?.fill(-1.0);
        assert_eq!(p.as_slice()[10], -1.0);
        assert!(matches!(p.layer_by_name("nope"), Err(Error::UnknownLayer(_))));
        assert!(p.layer(3).is_err());
        let names: Vec<_> = p.layer_slices().map(|(n, s)| (n, s.len())).collect();
        assert_eq!(names, [("conv", 8), ("bias", 2), ("scale", 1)]);
        Ok(())
    }

    #[test]
    fn from_layers_round_trips() -> Result<()> {
        let w = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f64, 2., 3., 4., 5., 6.]).unwrap();
        let b = ArrayD::from_shape_vec(IxDyn(&[3]), vec![7.0f64, 8., 9.]).unwrap();
        let p = ModelParams::from_layers([("w", w.clone()), ("b", b)])?;
        assert_eq!(p.layer(0)?, w.view());
        assert_eq!(p.len(), 9);
        Ok(())
    }

    #[test]
    fn non_finite_names_layer_and_index() -> Result<()> {
        let mut p = ModelParams::<f32>::zeros(spec());
        p.ensure_finite()?;
        p.as_mut_slice()[6] = f32::NAN;
        p.as_mut_slice()[9] = f32::INFINITY;
        match p.ensure_finite() {
            Err(Error::NonFinite { layer, index, value }) => {
                assert_eq!(layer, "conv");
                assert_eq!(index, vec![1, 0, 1, 0]);
                assert!(value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        p.as_mut_slice()[6] = 0.0;
        assert!(
            matches!(p.ensure_finite(), Err(Error::NonFinite { layer, .. }) if layer == "bias")
        );
        Ok(())
    }

    #[test]
    fn wrong_length_and_spec_are_errors() {
        assert!(matches!(
            ModelParams::<f32>::from_flat(spec(), vec![0.0; 10]),
            Err(Error::LengthMismatch { expected: 11, found: 10 })
        ));
        let mut a = ModelParams::<f32>::zeros(spec());
        let other = ModelSpec::from_pairs([("conv", vec![2, 1, 2, 2]), ("bias", vec![3])]).unwrap();
        let b = ModelParams::<f32>::zeros(other);
        assert!(matches!(a.add_assign(&b), Err(Error::LayerCountMismatch { .. })));
        assert!(a.dot(&b).is_err());
    }

    #[test]
    fn debug_does_not_dump_values() {
        let p = ModelParams::<f32>::zeros(spec());
        let s = format!("{p:?}");
        assert!(s.contains("num_params: 11") && s.contains("conv"));
    }

    #[test]
    fn cast_round_trips_f32_through_f64() {
        let data: Vec<f32> = (0..11u8).map(|i| f32::from(i) / 3.0).collect();
        let p = ModelParams::from_flat(spec(), data).unwrap();
        assert_eq!(p.cast::<f64>().cast::<f32>(), p);
    }

    proptest! {
        #[test]
        fn arithmetic_laws(a in prop::collection::vec(-1e3..1e3f64, 11), b in prop::collection::vec(-1e3..1e3f64, 11), alpha in -5.0..5.0f64) {
            let pa = ModelParams::from_flat(spec(), a.clone()).unwrap();
            let pb = ModelParams::from_flat(spec(), b.clone()).unwrap();
            // (a − b) + b ≈ a
            let mut back = pa.sub(&pb).unwrap();
            back.add_assign(&pb).unwrap();
            for (x, y) in back.as_slice().iter().zip(&a) {
                prop_assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()));
            }
            // dot is symmetric and ‖a‖² = a·a
            prop_assert_eq!(pa.dot(&pb).unwrap(), pb.dot(&pa).unwrap());
            prop_assert!((pa.dot(&pa).unwrap() - pa.l2_norm().powi(2)).abs() <= 1e-9 * (1.0 + pa.dot(&pa).unwrap()));
            // ‖αa‖ = |α|‖a‖
            let mut s = pa.clone();
            s.scale(alpha);
            prop_assert!((s.l2_norm() - alpha.abs() * pa.l2_norm()).abs() <= 1e-9 * (1.0 + pa.l2_norm()));
            // Cauchy–Schwarz
            prop_assert!(pa.dot(&pb).unwrap().abs() <= pa.l2_norm() * pb.l2_norm() * (1.0 + 1e-12) + 1e-12);
        }
    }
}
