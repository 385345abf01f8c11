//! The shared error vocabulary: every crate of the workspace wraps [`Error`] for model-shape and
//! value problems, so an integrator sees the same variant whichever layer found the fault.

use crate::codec::CodecError;

/// Result alias for fl-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with model parameters, updates and their encodings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model specification lists no layers.
    #[error("model has no layers")]
    EmptyModel,

    /// A layer has a zero-sized dimension, so it holds no parameters.
    #[error("layer `{layer}` holds no elements (shape {shape:?})")]
    EmptyLayer {
        /// Name of the layer.
        layer: String,
        /// Its declared shape.
        shape: Vec<usize>,
    },

    /// A layer name is empty, too long or contains a control character.
    #[error("invalid layer name {name:?}: {reason}")]
    InvalidLayerName {
        /// The offending name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Two layers share a name.
    #[error("duplicate layer name `{name}`")]
    DuplicateLayer {
        /// The repeated name.
        name: String,
    },

    /// The element count overflows the address space or the declared limit.
    #[error("model too large: {reason}")]
    TooLarge {
        /// Which bound was exceeded.
        reason: String,
    },

    /// Two models have a different number of layers.
    #[error("layer count mismatch: expected {expected}, found {found}")]
    LayerCountMismatch {
        /// Layers in the reference model.
        expected: usize,
        /// Layers in the model being checked.
        found: usize,
    },

    /// Two models name the layer at the same position differently.
    #[error("layer {position}: expected `{expected}`, found `{found}`")]
    LayerNameMismatch {
        /// Position of the layer in the ordered list.
        position: usize,
        /// Name in the reference model.
        expected: String,
        /// Name in the model being checked.
        found: String,
    },

    /// Two models give the same layer different shapes.
    #[error("layer `{layer}`: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Name of the layer.
        layer: String,
        /// Shape in the reference model.
        expected: Vec<usize>,
        /// Shape in the model being checked.
        found: Vec<usize>,
    },

    /// A flat buffer or vector has the wrong number of elements.
    #[error("length mismatch: expected {expected} elements, found {found}")]
    LengthMismatch {
        /// Required number of elements.
        expected: usize,
        /// Number supplied.
        found: usize,
    },

    /// A parameter is NaN or infinite.
    #[error("layer `{layer}`: non-finite value {value} at index {index:?}")]
    NonFinite {
        /// Name of the layer holding the value.
        layer: String,
        /// Multi-dimensional index of the value within the layer.
        index: Vec<usize>,
        /// The value itself (NaN, +inf or -inf).
        value: f64,
    },

    /// A layer name that the model does not have.
    #[error("unknown layer `{0}`")]
    UnknownLayer(String),

    /// A partner identifier that is empty, too long or has characters outside `[A-Za-z0-9._:@-]`.
    #[error("invalid partner id {id:?}: {reason}")]
    InvalidPartnerId {
        /// The offending identifier.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A caller-supplied argument is outside its domain.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// Name of the argument.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Bytes from the wire do not form a valid envelope.
    #[error("wire codec: {0}")]
    Codec(#[from] CodecError),

    /// A safetensors file could not be read or written.
    #[error("safetensors: {0}")]
    Safetensors(String),

    /// Reading or writing a file failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Builds [`Error::InvalidArgument`].
    #[must_use]
    pub fn invalid_argument(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { name, reason: reason.into() }
    }
}

/// `error: cause: cause …` on one line, for command-line reports: each cause in the
/// [`source`](std::error::Error::source) chain is appended unless the message so far already
/// ends with it (the workspace's error types print their cause in their own message *and*
/// return it as the source, as `thiserror`'s `#[from]` does, so a plain chain walk would print
/// it twice).
#[must_use]
pub fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod chain_tests {
    use super::display_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("reading model.bin: {0}")]
    struct Repeats(#[from] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("loading the federation state")]
    struct Wraps(#[source] Repeats);

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(display_chain(&Repeats(io())), "reading model.bin: no such file");
        assert_eq!(
            display_chain(&Wraps(Repeats(io()))),
            "loading the federation state: reading model.bin: no such file"
        );
    }
}
