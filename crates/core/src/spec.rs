//! Model specifications: the ordered layer names and shapes that every update must match.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Longest accepted layer name, in bytes.
pub const MAX_LAYER_NAME_BYTES: usize = 1024;

/// Name and shape of one layer. Shapes are row-major (C order), as in PyTorch and safetensors.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerSpec {
    name: String,
    shape: Vec<usize>,
}

impl LayerSpec {
    /// A layer called `name` of the given `shape`; a rank-0 (scalar) layer has `shape = []`.
    /// Validity is checked when the layer joins a [`ModelSpec`].
    #[must_use]
    pub fn new(name: impl Into<String>, shape: impl Into<Vec<usize>>) -> Self {
        Self { name: name.into(), shape: shape.into() }
    }

    /// The layer name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The layer shape.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements, or `None` if the product overflows `usize`.
    #[must_use]
    pub fn checked_numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
}

/// An ordered list of uniquely named, non-empty layers with their offsets in a flat buffer.
///
/// A `ModelSpec` is always valid: the only constructors validate. Deserialization validates too.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "Vec<LayerSpec>", into = "Vec<LayerSpec>")]
pub struct ModelSpec {
    layers: Vec<LayerSpec>,
    /// `offsets[i]..offsets[i + 1]` is layer `i` in the flat buffer; `offsets.len() == layers.len() + 1`.
    offsets: Vec<usize>,
    by_name: HashMap<String, usize>,
}

impl ModelSpec {
    /// Largest number of parameters a model may hold: the flat buffer must stay addressable even
    /// as `f64` bytes.
    pub const MAX_PARAMS: usize = (isize::MAX as usize) / 8;

    /// Validates `layers` and computes their offsets.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyModel`] if `layers` is empty; [`Error::InvalidLayerName`] for an empty, overlong
    /// or control-character name; [`Error::DuplicateLayer`] for a repeated name;
    /// [`Error::EmptyLayer`] for a layer with a zero dimension; [`Error::TooLarge`] if the element
    /// count exceeds [`ModelSpec::MAX_PARAMS`].
    pub fn new(layers: Vec<LayerSpec>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::EmptyModel);
        }
        let mut offsets = Vec::with_capacity(layers.len() + 1);
        let mut by_name = HashMap::with_capacity(layers.len());
        let mut total = 0usize;
        offsets.push(0);
        for (position, layer) in layers.iter().enumerate() {
            validate_name(&layer.name)?;
            if by_name.insert(layer.name.clone(), position).is_some() {
                return Err(Error::DuplicateLayer { name: layer.name.clone() });
            }
            let numel = layer.checked_numel().ok_or_else(|| Error::TooLarge {
                reason: format!("layer `{}` shape {:?} overflows", layer.name, layer.shape),
            })?;
            if numel == 0 {
                return Err(Error::EmptyLayer {
                    layer: layer.name.clone(),
                    shape: layer.shape.clone(),
                });
            }
            total =
                total.checked_add(numel).filter(|&t| t <= Self::MAX_PARAMS).ok_or_else(|| {
                    Error::TooLarge { reason: "total parameter count overflows".into() }
                })?;
            offsets.push(total);
        }
        Ok(Self { layers, offsets, by_name })
    }

    /// Convenience constructor from `(name, shape)` pairs.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::new`].
    pub fn from_pairs<N, S>(pairs: impl IntoIterator<Item = (N, S)>) -> Result<Self>
    where
        N: Into<String>,
        S: Into<Vec<usize>>,
    {
        Self::new(pairs.into_iter().map(|(n, s)| LayerSpec::new(n, s)).collect())
    }

    /// The layers in order.
    #[must_use]
    pub fn layers(&self) -> &[LayerSpec] {
        &self.layers
    }

    /// Number of layers (never zero).
    #[must_use]
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Total number of parameters (never zero).
    #[must_use]
    pub fn num_params(&self) -> usize {
        self.offsets[self.layers.len()]
    }

    /// The flat range of layer `position`, or `None` if out of range.
    #[must_use]
    pub fn range(&self, position: usize) -> Option<std::ops::Range<usize>> {
        (position < self.layers.len()).then(|| self.offsets[position]..self.offsets[position + 1])
    }

    /// Position of the layer called `name`.
    #[must_use]
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Which layer holds flat index `flat`, and the multi-dimensional index within it.
    #[must_use]
    pub fn locate(&self, flat: usize) -> Option<(&LayerSpec, Vec<usize>)> {
        if flat >= self.num_params() {
            return None;
        }
        // offsets is sorted; the layer is the last offset <= flat.
        let position = self.offsets.partition_point(|&o| o <= flat) - 1;
        let layer = &self.layers[position];
        let mut rest = flat - self.offsets[position];
        let mut index = vec![0; layer.shape.len()];
        for (slot, &dim) in index.iter_mut().zip(&layer.shape).rev() {
            *slot = rest % dim;
            rest /= dim;
        }
        Some((layer, index))
    }

    /// Checks that `other` has the same layers, in the same order, with the same shapes.
    ///
    /// # Errors
    ///
    /// The first difference found: [`Error::LayerCountMismatch`], [`Error::LayerNameMismatch`] or
    /// [`Error::ShapeMismatch`], with `self` as the expected side.
    pub fn ensure_same(&self, other: &Self) -> Result<()> {
        if std::ptr::eq(self, other) {
            return Ok(());
        }
        if self.layers.len() != other.layers.len() {
            return Err(Error::LayerCountMismatch {
                expected: self.layers.len(),
                found: other.layers.len(),
            });
        }
        for (position, (a, b)) in self.layers.iter().zip(&other.layers).enumerate() {
            if a.name != b.name {
                return Err(Error::LayerNameMismatch {
                    position,
                    expected: a.name.clone(),
                    found: b.name.clone(),
                });
            }
            if a.shape != b.shape {
                return Err(Error::ShapeMismatch {
                    layer: a.name.clone(),
                    expected: a.shape.clone(),
                    found: b.shape.clone(),
                });
            }
        }
        Ok(())
    }
}

impl PartialEq for ModelSpec {
    fn eq(&self, other: &Self) -> bool {
        self.layers == other.layers
    }
}

impl Eq for ModelSpec {}

impl TryFrom<Vec<LayerSpec>> for ModelSpec {
    type Error = Error;
    fn try_from(layers: Vec<LayerSpec>) -> Result<Self> {
        Self::new(layers)
    }
}

impl From<ModelSpec> for Vec<LayerSpec> {
    fn from(spec: ModelSpec) -> Self {
        spec.layers
    }
}

fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_LAYER_NAME_BYTES {
        "longer than 1024 bytes"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidLayerName { name: name.chars().take(64).collect(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_invalid_specs() {
        assert!(matches!(ModelSpec::new(vec![]), Err(Error::EmptyModel)));
        let dup = ModelSpec::from_pairs([("w", vec![2]), ("w", vec![3])]);
        assert!(matches!(dup, Err(Error::DuplicateLayer { name }) if name == "w"));
        let empty = ModelSpec::from_pairs([("w", vec![2, 0])]);
        assert!(matches!(empty, Err(Error::EmptyLayer { .. })));
        let huge = ModelSpec::from_pairs([("w", vec![usize::MAX, 2])]);
        assert!(matches!(huge, Err(Error::TooLarge { .. })));
        let sum_huge = ModelSpec::from_pairs([("a", vec![ModelSpec::MAX_PARAMS]), ("b", vec![1])]);
        assert!(matches!(sum_huge, Err(Error::TooLarge { .. })));
        assert!(matches!(
            ModelSpec::from_pairs([("", vec![1])]),
            Err(Error::InvalidLayerName { .. })
        ));
        assert!(matches!(
            ModelSpec::from_pairs([("a\nb", vec![1])]),
            Err(Error::InvalidLayerName { .. })
        ));
    }

    #[test]
    fn offsets_and_locate() -> Result<()> {
        let spec = ModelSpec::from_pairs([("w", vec![2, 3]), ("b", vec![3]), ("s", vec![])])?;
        assert_eq!(spec.num_params(), 10);
        assert_eq!(spec.range(0), Some(0..6));
        assert_eq!(spec.range(1), Some(6..9));
        assert_eq!(spec.range(2), Some(9..10));
        assert_eq!(spec.range(3), None);
        let (layer, index) = spec.locate(5).ok_or(Error::EmptyModel)?;
        assert_eq!((layer.name(), index), ("w", vec![1, 2]));
        let (layer, index) = spec.locate(9).ok_or(Error::EmptyModel)?;
        assert_eq!((layer.name(), index), ("s", vec![]));
        assert!(spec.locate(10).is_none());
        assert_eq!(spec.position("b"), Some(1));
        Ok(())
    }

    #[test]
    fn ensure_same_reports_first_difference() -> Result<()> {
        let a = ModelSpec::from_pairs([("w", vec![2, 3]), ("b", vec![3])])?;
        let b = ModelSpec::from_pairs([("w", vec![3, 2]), ("b", vec![3])])?;
        let c = ModelSpec::from_pairs([("w", vec![2, 3]), ("c", vec![3])])?;
        let d = ModelSpec::from_pairs([("w", vec![2, 3])])?;
        assert!(
            matches!(a.ensure_same(&b), Err(Error::ShapeMismatch { layer, .. }) if layer == "w")
        );
        assert!(matches!(a.ensure_same(&c), Err(Error::LayerNameMismatch { position: 1, .. })));
        assert!(matches!(
            a.ensure_same(&d),
            Err(Error::LayerCountMismatch { expected: 2, found: 1 })
        ));
        a.ensure_same(&a.clone())
    }

    #[test]
    fn serde_validates() {
        let bad = r#"[{"name":"w","shape":[2]},{"name":"w","shape":[1]}]"#;
        assert!(serde_json::from_str::<ModelSpec>(bad).is_err());
        let good = r#"[{"name":"w","shape":[2]}]"#;
        assert!(serde_json::from_str::<ModelSpec>(good).is_ok());
    }
}
