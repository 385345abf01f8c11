//! The wire envelope for model parameters and client updates.
//!
//! ```text
//! offset  size  field
//!      0     4  magic b"MSFL"
//!      4     2  format version, u16 little-endian (currently 1)
//!      6     1  kind: 1 = model parameters, 2 = client update
//!      7     1  element type: 1 = f32, 2 = f64
//!      8     4  header length H, u32 little-endian
//!     12     8  payload length P, u64 little-endian
//!     20     H  header: postcard, canonical (layer names and shapes; update metadata)
//!   20+H     P  payload: every parameter, little-endian, layer after layer
//! ```
//!
//! The frame is exactly `20 + H + P` bytes. Metadata is small and structured, so it goes through
//! postcard; parameters are large and flat, so they are raw little-endian words that decode at
//! memory speed. Decoding checks every length against [`DecodeOptions`] *before* allocating, so
//! untrusted bytes can make it fail but never make it allocate beyond the declared limit or panic.
//! The header must be postcard's canonical encoding, so one value has exactly one frame — digests
//! and signatures over frames are well defined.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    ClientUpdate, Error, LayerSpec, ModelParams, ModelSpec, ModelVersion, PartnerId, Result, Round,
    Scalar, scalar::DType,
};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"MSFL";
/// The format version this library writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes before the header.
pub const PREFIX_LEN: usize = 20;
/// Highest tensor rank accepted on the wire.
pub const MAX_RANK: usize = 64;
/// Hard cap on layers per frame, whatever the options say.
const HARD_MAX_LAYERS: usize = 1 << 20;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// A [`ModelParams`].
    Params,
    /// A [`ClientUpdate`].
    Update,
}

impl FrameKind {
    const fn tag(self) -> u8 {
        match self {
            Self::Params => 1,
            Self::Update => 2,
        }
    }

    const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Self::Params),
            2 => Some(Self::Update),
            _ => None,
        }
    }
}

/// Why bytes are not a valid frame. Each malformation has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Fewer bytes than the prefix or the declared lengths require.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the frame needs.
        needed: u64,
        /// Bytes supplied.
        available: u64,
    },
    /// The frame does not start with `MSFL`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A format version this library does not read.
    #[error("unsupported format version {found} (this library reads {supported})")]
    UnsupportedVersion {
        /// Version in the frame.
        found: u16,
        /// Version supported.
        supported: u16,
    },
    /// An unknown kind tag.
    #[error("unknown frame kind tag {0}")]
    UnknownKind(u8),
    /// A valid kind, but not the one the caller asked for.
    #[error("frame carries {found:?}, expected {expected:?}")]
    WrongKind {
        /// Kind requested.
        expected: FrameKind,
        /// Kind in the frame.
        found: FrameKind,
    },
    /// An unknown element-type tag.
    #[error("unknown element type tag {0}")]
    UnknownDType(u8),
    /// A valid element type, but not the one the caller asked for.
    #[error("frame holds {found} elements, expected {expected}")]
    WrongDType {
        /// Element type requested.
        expected: DType,
        /// Element type in the frame.
        found: DType,
    },
    /// The declared header exceeds the caller's limit.
    #[error("header of {declared} bytes exceeds the limit of {limit}")]
    HeaderTooLarge {
        /// Declared header length.
        declared: u64,
        /// Limit.
        limit: u64,
    },
    /// The declared frame exceeds the caller's limit (or overflows).
    #[error("frame of {declared} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// Declared frame length (saturated at `u64::MAX` on overflow).
        declared: u64,
        /// Limit.
        limit: u64,
    },
    /// Bytes after the declared end of the frame.
    #[error("{extra} bytes after the end of the frame")]
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The header is not valid postcard for its kind.
    #[error("malformed header: {0}")]
    MalformedHeader(String),
    /// The header parsed but did not use all of its declared bytes.
    #[error("{0} unused bytes at the end of the header")]
    HeaderTrailingBytes(usize),
    /// The header is valid but not in canonical form (e.g. an overlong varint).
    #[error("header is not canonically encoded")]
    NonCanonicalHeader,
    /// More layers than the caller's limit.
    #[error("{declared} layers exceed the limit of {limit}")]
    TooManyLayers {
        /// Layers in the header.
        declared: usize,
        /// Limit.
        limit: usize,
    },
    /// The payload length disagrees with the shapes in the header.
    #[error("payload is {declared} bytes but the shapes need {expected}")]
    PayloadSizeMismatch {
        /// Bytes the shapes require.
        expected: u64,
        /// Bytes the prefix declares.
        declared: u64,
    },
}

/// Limits and checks applied while decoding untrusted frames.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Largest whole frame accepted, in bytes. Default 1 GiB.
    pub max_frame_bytes: u64,
    /// Largest header accepted, in bytes. Default 16 MiB.
    pub max_header_bytes: u64,
    /// Most layers accepted. Default 100,000.
    pub max_layers: usize,
    /// Accept NaN and infinities in the payload. Default `false`.
    pub allow_non_finite: bool,
    /// If set, the frame's layout must equal this one, and the decoded parameters share it.
    pub expected_spec: Option<Arc<ModelSpec>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 30,
            max_header_bytes: 16 << 20,
            max_layers: 100_000,
            allow_non_finite: false,
            expected_spec: None,
        }
    }
}

impl DecodeOptions {
    /// Default options requiring the layout `spec`.
    #[must_use]
    pub fn expecting(spec: Arc<ModelSpec>) -> Self {
        Self { expected_spec: Some(spec), ..Self::default() }
    }

    /// Sets [`max_frame_bytes`](Self::max_frame_bytes).
    #[must_use]
    pub fn with_max_frame_bytes(mut self, limit: u64) -> Self {
        self.max_frame_bytes = limit;
        self
    }

    /// Sets [`allow_non_finite`](Self::allow_non_finite).
    #[must_use]
    pub fn with_allow_non_finite(mut self, allow: bool) -> Self {
        self.allow_non_finite = allow;
        self
    }
}

/// The fixed 20-byte prefix of a frame, parsed and checked against limits. A transport reads the
/// prefix first, then knows exactly how many more bytes to read — and can refuse before reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramePrefix {
    /// What the frame carries.
    pub kind: FrameKind,
    /// Element type of the payload.
    pub dtype: DType,
    /// Header length.
    pub header_len: u32,
    /// Payload length.
    pub payload_len: u64,
}

impl FramePrefix {
    /// Parses the first [`PREFIX_LEN`] bytes of `bytes`.
    ///
    /// # Errors
    ///
    /// [`CodecError::Truncated`] if fewer than 20 bytes are given; [`CodecError::BadMagic`],
    /// [`CodecError::UnsupportedVersion`], [`CodecError::UnknownKind`],
    /// [`CodecError::UnknownDType`] for a bad field; [`CodecError::HeaderTooLarge`] and
    /// [`CodecError::FrameTooLarge`] if the declared lengths exceed `options`.
    pub fn parse(bytes: &[u8], options: &DecodeOptions) -> Result<Self, CodecError> {
        let Some(prefix) = bytes.first_chunk::<PREFIX_LEN>() else {
            return Err(CodecError::Truncated {
                needed: PREFIX_LEN as u64,
                available: len64(bytes),
            });
        };
        let (magic, rest) = prefix.split_at(4);
        if magic != MAGIC {
            return Err(CodecError::BadMagic([magic[0], magic[1], magic[2], magic[3]]));
        }
        let version = u16::from_le_bytes([rest[0], rest[1]]);
        if version != FORMAT_VERSION {
            return Err(CodecError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let kind = FrameKind::from_tag(rest[2]).ok_or(CodecError::UnknownKind(rest[2]))?;
        let dtype = DType::from_tag(rest[3]).ok_or(CodecError::UnknownDType(rest[3]))?;
        let header_len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let mut p = [0u8; 8];
        p.copy_from_slice(&rest[8..16]);
        let payload_len = u64::from_le_bytes(p);
        if u64::from(header_len) > options.max_header_bytes {
            return Err(CodecError::HeaderTooLarge {
                declared: header_len.into(),
                limit: options.max_header_bytes,
            });
        }
        let this = Self { kind, dtype, header_len, payload_len };
        let declared = this.frame_len().unwrap_or(u64::MAX);
        if declared > options.max_frame_bytes {
            return Err(CodecError::FrameTooLarge { declared, limit: options.max_frame_bytes });
        }
        Ok(this)
    }

    /// Total frame length, prefix included; `None` on overflow.
    #[must_use]
    pub fn frame_len(&self) -> Option<u64> {
        (PREFIX_LEN as u64).checked_add(self.header_len.into())?.checked_add(self.payload_len)
    }
}

fn len64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

// ---- header types -------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct WireLayer {
    name: String,
    #[serde(deserialize_with = "bounded_vec::<_, u64, MAX_RANK>")]
    shape: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct ParamsHeader {
    #[serde(deserialize_with = "bounded_vec::<_, WireLayer, HARD_MAX_LAYERS>")]
    layers: Vec<WireLayer>,
}

#[derive(Serialize, Deserialize)]
struct UpdateHeader {
    partner_id: String,
    round: u64,
    model_version: u64,
    num_examples: u64,
    #[serde(deserialize_with = "bounded_vec::<_, WireLayer, HARD_MAX_LAYERS>")]
    layers: Vec<WireLayer>,
}

/// Deserializes a sequence without trusting its declared length for preallocation: memory grows
/// only with elements actually present in the input, and at most `MAX` are accepted.
fn bounded_vec<'de, D, T, const MAX: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const MAX: usize>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for Bounded<T, MAX> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a sequence of at most {MAX} elements")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            if seq.size_hint().is_some_and(|n| n > MAX) {
                return Err(de::Error::custom(format!("more than {MAX} elements")));
            }
            let mut out = Vec::new();
            while let Some(x) = seq.next_element()? {
                out.push(x);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Bounded::<T, MAX>(PhantomData))
}

fn to_wire(spec: &ModelSpec) -> Vec<WireLayer> {
    spec.layers()
        .iter()
        .map(|l| WireLayer {
            name: l.name().to_owned(),
            shape: l.shape().iter().map(|&d| d as u64).collect(),
        })
        .collect()
}

fn from_wire(layers: Vec<WireLayer>, options: &DecodeOptions) -> Result<Arc<ModelSpec>> {
    if layers.len() > options.max_layers {
        return Err(CodecError::TooManyLayers {
            declared: layers.len(),
            limit: options.max_layers,
        }
        .into());
    }
    let specs = layers
        .into_iter()
        .map(|l| {
            let shape = l
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| Error::TooLarge { reason: format!("layer `{}` dimension", l.name) })?;
            Ok(LayerSpec::new(l.name, shape))
        })
        .collect::<Result<Vec<_>>>()?;
    let spec = ModelSpec::new(specs)?;
    match &options.expected_spec {
        Some(expected) => {
            expected.ensure_same(&spec)?;
            Ok(Arc::clone(expected))
        }
        None => Ok(Arc::new(spec)),
    }
}

// ---- encoding -----------------------------------------------------------------------------

fn encode_frame<T: Scalar, H: Serialize>(
    kind: FrameKind,
    header: &H,
    data: &[T],
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_frame_into(kind, header, data, &mut out)?;
    Ok(out)
}

fn encode_frame_into<T: Scalar, H: Serialize>(
    kind: FrameKind,
    header: &H,
    data: &[T],
    out: &mut Vec<u8>,
) -> Result<()> {
    let header = postcard::to_allocvec(header)
        .map_err(|e| CodecError::MalformedHeader(format!("encoding: {e}")))?;
    let header_len = u32::try_from(header.len())
        .map_err(|_| Error::TooLarge { reason: "header longer than 4 GiB".into() })?;
    let payload_len = data.len() * T::DTYPE.size();
    out.clear();
    out.reserve(PREFIX_LEN + header.len() + payload_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind.tag());
    out.push(T::DTYPE.tag());
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&(payload_len as u64).to_le_bytes());
    out.extend_from_slice(&header);
    let start = out.len();
    out.resize(start + payload_len, 0);
    let dst = &mut out[start..];
    if data.len() >= crate::ops::PAR_THRESHOLD {
        use rayon::prelude::*;
        dst.par_chunks_mut(PAYLOAD_BLOCK * T::DTYPE.size())
            .zip(data.par_chunks(PAYLOAD_BLOCK))
            .for_each(|(d, s)| T::write_le_into(s, d));
    } else {
        T::write_le_into(data, dst);
    }
    Ok(())
}

/// Encodes model parameters as one frame.
///
/// # Errors
///
/// [`Error::TooLarge`] if the header would exceed 4 GiB.
pub fn encode_params<T: Scalar>(params: &ModelParams<T>) -> Result<Vec<u8>> {
    encode_frame(
        FrameKind::Params,
        &ParamsHeader { layers: to_wire(params.spec()) },
        params.as_slice(),
    )
}

/// Encodes model parameters into `out`, replacing its contents and reusing its allocation.
///
/// # Errors
///
/// [`Error::TooLarge`] if the header would exceed 4 GiB.
pub fn encode_params_into<T: Scalar>(params: &ModelParams<T>, out: &mut Vec<u8>) -> Result<()> {
    encode_frame_into(
        FrameKind::Params,
        &ParamsHeader { layers: to_wire(params.spec()) },
        params.as_slice(),
        out,
    )
}

/// Encodes a client update as one frame.
///
/// # Errors
///
/// [`Error::TooLarge`] if the header would exceed 4 GiB.
pub fn encode_update<T: Scalar>(update: &ClientUpdate<T>) -> Result<Vec<u8>> {
    let header = UpdateHeader {
        partner_id: update.partner_id.as_str().to_owned(),
        round: update.round.0,
        model_version: update.model_version.0,
        num_examples: update.num_examples,
        layers: to_wire(update.params.spec()),
    };
    encode_frame(FrameKind::Update, &header, update.params.as_slice())
}

// ---- decoding -----------------------------------------------------------------------------

struct Parsed<'a, H> {
    header: H,
    payload: &'a [u8],
}

fn parse_frame<'a, T: Scalar, H>(
    bytes: &'a [u8],
    kind: FrameKind,
    options: &DecodeOptions,
) -> Result<Parsed<'a, H>>
where
    H: Serialize + for<'de> Deserialize<'de>,
{
    let prefix = FramePrefix::parse(bytes, options)?;
    if prefix.kind != kind {
        return Err(CodecError::WrongKind { expected: kind, found: prefix.kind }.into());
    }
    if prefix.dtype != T::DTYPE {
        return Err(CodecError::WrongDType { expected: T::DTYPE, found: prefix.dtype }.into());
    }
    // FramePrefix::parse bounded the frame by max_frame_bytes, so it fits in memory terms; compare
    // in u64 so a 32-bit target cannot wrap.
    let declared = prefix.frame_len().unwrap_or(u64::MAX);
    let available = len64(bytes);
    if available < declared {
        return Err(CodecError::Truncated { needed: declared, available }.into());
    }
    if available > declared {
        return Err(CodecError::TrailingBytes { extra: available - declared }.into());
    }
    let header_end = PREFIX_LEN + prefix.header_len as usize;
    let header_bytes = &bytes[PREFIX_LEN..header_end];
    let (header, unused): (H, &[u8]) = postcard::take_from_bytes(header_bytes)
        .map_err(|e| CodecError::MalformedHeader(e.to_string()))?;
    if !unused.is_empty() {
        return Err(CodecError::HeaderTrailingBytes(unused.len()).into());
    }
    let canonical = postcard::to_allocvec(&header)
        .map_err(|e| CodecError::MalformedHeader(format!("re-encoding: {e}")))?;
    if canonical != header_bytes {
        return Err(CodecError::NonCanonicalHeader.into());
    }
    Ok(Parsed { header, payload: &bytes[header_end..] })
}

/// Elements per task of the payload kernels: 64 KiB of f32, comfortably inside L2.
const PAYLOAD_BLOCK: usize = 1 << 14;

/// Converts `payload` into `dst` (same element count, checked by the caller) and, if asked,
/// returns the flat index of the first non-finite value. Each block is converted and then checked
/// while it is still in cache; blocks run in parallel for large payloads.
fn fill_from_payload<T: Scalar>(
    payload: &[u8],
    dst: &mut [T],
    check_finite: bool,
) -> Option<usize> {
    let size = T::DTYPE.size();
    let kernel = |(block, (d, p)): (usize, (&mut [T], &[u8]))| {
        T::read_le_into(p, d);
        if check_finite && !d.iter().fold(true, |ok, x| ok & x.is_finite()) {
            d.iter().position(|x| !x.is_finite()).map(|i| block * PAYLOAD_BLOCK + i)
        } else {
            None
        }
    };
    if dst.len() >= crate::ops::PAR_THRESHOLD {
        use rayon::prelude::*;
        dst.par_chunks_mut(PAYLOAD_BLOCK)
            .zip(payload.par_chunks(PAYLOAD_BLOCK * size))
            .enumerate()
            .filter_map(kernel)
            .min()
    } else {
        dst.chunks_mut(PAYLOAD_BLOCK)
            .zip(payload.chunks(PAYLOAD_BLOCK * size))
            .enumerate()
            .find_map(kernel)
    }
}

fn check_payload_len<T: Scalar>(spec: &ModelSpec, payload: &[u8]) -> Result<()> {
    let expected = (spec.num_params() as u64).saturating_mul(T::DTYPE.size() as u64);
    if expected != len64(payload) {
        return Err(CodecError::PayloadSizeMismatch { expected, declared: len64(payload) }.into());
    }
    Ok(())
}

fn decode_payload<T: Scalar>(
    spec: Arc<ModelSpec>,
    payload: &[u8],
    options: &DecodeOptions,
) -> Result<ModelParams<T>> {
    check_payload_len::<T>(&spec, payload)?;
    let mut params = ModelParams::zeros(spec);
    if let Some(flat) = fill_from_payload(payload, params.as_mut_slice(), !options.allow_non_finite)
    {
        return Err(params.non_finite_error(flat));
    }
    Ok(params)
}

/// Decodes a frame produced by [`encode_params`].
///
/// # Errors
///
/// [`Error::Codec`] for any framing fault (see [`CodecError`]); the [`ModelSpec::new`] errors for
/// an invalid layout; [`Error::LayerCountMismatch`]/[`Error::LayerNameMismatch`]/
/// [`Error::ShapeMismatch`] against [`DecodeOptions::expected_spec`]; [`Error::NonFinite`] unless
/// non-finite values are allowed.
pub fn decode_params<T: Scalar>(bytes: &[u8], options: &DecodeOptions) -> Result<ModelParams<T>> {
    let Parsed { header, payload } =
        parse_frame::<T, ParamsHeader>(bytes, FrameKind::Params, options)?;
    let spec = from_wire(header.layers, options)?;
    decode_payload(spec, payload, options)
}

/// Decodes a frame produced by [`encode_params`] into existing parameters of the same layout,
/// reusing their buffer: no allocation for the payload, so a server that keeps one buffer per
/// client slot decodes at memory speed.
///
/// On error, `out` may hold part of the payload; its layout is unchanged.
///
/// # Errors
///
/// As [`decode_params`]; the frame's layout must equal `out`'s.
pub fn decode_params_into<T: Scalar>(
    bytes: &[u8],
    options: &DecodeOptions,
    out: &mut ModelParams<T>,
) -> Result<()> {
    let Parsed { header, payload } =
        parse_frame::<T, ParamsHeader>(bytes, FrameKind::Params, options)?;
    let options =
        DecodeOptions { expected_spec: Some(Arc::clone(out.shared_spec())), ..options.clone() };
    let spec = from_wire(header.layers, &options)?;
    check_payload_len::<T>(&spec, payload)?;
    if let Some(flat) = fill_from_payload(payload, out.as_mut_slice(), !options.allow_non_finite) {
        return Err(out.non_finite_error(flat));
    }
    Ok(())
}

/// Decodes a frame produced by [`encode_update`] into an existing update of the same layout,
/// reusing its parameter buffer (see [`decode_params_into`]).
///
/// On error, `out`'s parameters may hold part of the payload and its metadata is unchanged.
///
/// # Errors
///
/// As [`decode_update`]; the frame's layout must equal `out`'s.
pub fn decode_update_into<T: Scalar>(
    bytes: &[u8],
    options: &DecodeOptions,
    out: &mut ClientUpdate<T>,
) -> Result<()> {
    let Parsed { header, payload } =
        parse_frame::<T, UpdateHeader>(bytes, FrameKind::Update, options)?;
    let partner_id = PartnerId::new(header.partner_id)?;
    let options = DecodeOptions {
        expected_spec: Some(Arc::clone(out.params.shared_spec())),
        ..options.clone()
    };
    let spec = from_wire(header.layers, &options)?;
    check_payload_len::<T>(&spec, payload)?;
    if let Some(flat) =
        fill_from_payload(payload, out.params.as_mut_slice(), !options.allow_non_finite)
    {
        return Err(out.params.non_finite_error(flat));
    }
    out.partner_id = partner_id;
    out.round = Round(header.round);
    out.model_version = ModelVersion(header.model_version);
    out.num_examples = header.num_examples;
    Ok(())
}

/// Decodes a frame produced by [`encode_update`].
///
/// # Errors
///
/// As [`decode_params`], plus [`Error::InvalidPartnerId`].
pub fn decode_update<T: Scalar>(bytes: &[u8], options: &DecodeOptions) -> Result<ClientUpdate<T>> {
    let Parsed { header, payload } =
        parse_frame::<T, UpdateHeader>(bytes, FrameKind::Update, options)?;
    let partner_id = PartnerId::new(header.partner_id)?;
    let spec = from_wire(header.layers, options)?;
    let params = decode_payload(spec, payload, options)?;
    Ok(ClientUpdate {
        partner_id,
        round: Round(header.round),
        model_version: ModelVersion(header.model_version),
        num_examples: header.num_examples,
        params,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> ModelParams<f32> {
        let spec = ModelSpec::from_pairs([("w", vec![2, 3]), ("b", vec![3])]).unwrap();
        ModelParams::from_flat(spec, (0..9u8).map(|i| f32::from(i) - 4.5).collect()).unwrap()
    }

    /// A params/f32 frame with the given raw header and payload bytes.
    fn raw_frame(header: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&[1, 1]);
        b.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
        b.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        b.extend_from_slice(header);
        b.extend_from_slice(payload);
        b
    }

    fn codec_err(r: Result<ModelParams<f32>>) -> CodecError {
        match r {
            Err(Error::Codec(e)) => e,
            other => panic!("expected a codec error, got {other:?}"),
        }
    }

    #[test]
    fn params_round_trip() -> Result<()> {
        let p = sample();
        let bytes = encode_params(&p)?;
        assert_eq!(&bytes[..4], b"MSFL");
        assert_eq!(decode_params::<f32>(&bytes, &DecodeOptions::default())?, p);
        Ok(())
    }

    #[test]
    fn update_round_trip() -> Result<()> {
        let u = ClientUpdate::new(
            PartnerId::new("lab-1")?,
            Round(7),
            ModelVersion(3),
            120,
            sample().cast::<f64>(),
        );
        let bytes = encode_update(&u)?;
        assert_eq!(decode_update::<f64>(&bytes, &DecodeOptions::default())?, u);
        Ok(())
    }

    #[test]
    fn each_malformation_has_its_own_error() -> Result<()> {
        let good = encode_params(&sample())?;
        let opts = DecodeOptions::default();
        let d = |b: &[u8]| decode_params::<f32>(b, &opts);

        assert!(matches!(codec_err(d(&good[..10])), CodecError::Truncated { needed: 20, .. }));
        assert!(matches!(codec_err(d(&good[..good.len() - 1])), CodecError::Truncated { .. }));
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(codec_err(d(&extra)), CodecError::TrailingBytes { extra: 1 });

        let mut b = good.clone();
        b[0] = b'X';
        assert!(matches!(codec_err(d(&b)), CodecError::BadMagic(_)));
        let mut b = good.clone();
        b[4] = 9;
        assert!(matches!(codec_err(d(&b)), CodecError::UnsupportedVersion { found: 9, .. }));
        let mut b = good.clone();
        b[6] = 7;
        assert_eq!(codec_err(d(&b)), CodecError::UnknownKind(7));
        let mut b = good.clone();
        b[6] = 2;
        assert!(matches!(codec_err(d(&b)), CodecError::WrongKind { .. }));
        let mut b = good.clone();
        b[7] = 9;
        assert_eq!(codec_err(d(&b)), CodecError::UnknownDType(9));
        assert!(matches!(
            decode_params::<f64>(&good, &opts),
            Err(Error::Codec(CodecError::WrongDType { .. }))
        ));

        // Declared lengths beyond the limits are refused before anything is read or allocated.
        let mut b = good.clone();
        b[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(codec_err(d(&b)), CodecError::FrameTooLarge { declared: u64::MAX, .. }));
        let mut b = good.clone();
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(codec_err(d(&b)), CodecError::HeaderTooLarge { .. }));
        let small = DecodeOptions::default().with_max_frame_bytes(30);
        assert!(matches!(
            decode_params::<f32>(&good, &small),
            Err(Error::Codec(CodecError::FrameTooLarge { .. }))
        ));

        // Payload length that disagrees with the shapes (moving one word from payload to header
        // keeps the frame length consistent).
        let mut b = good.clone();
        let hl = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        b[8..12].copy_from_slice(&(hl + 4).to_le_bytes());
        b[12..20].copy_from_slice(&(9u64 * 4 - 4).to_le_bytes());
        assert!(matches!(codec_err(d(&b)), CodecError::HeaderTrailingBytes(4)));

        // A header that parses but declares a different element count than the payload carries.
        let wrong = ParamsHeader { layers: vec![WireLayer { name: "w".into(), shape: vec![10] }] };
        let b = encode_frame::<f32, _>(FrameKind::Params, &wrong, &[0.0; 9])?;
        assert_eq!(
            codec_err(d(&b)),
            CodecError::PayloadSizeMismatch { expected: 40, declared: 36 }
        );

        // Garbage header.
        let mut b = good.clone();
        for x in &mut b[PREFIX_LEN..PREFIX_LEN + 3] {
            *x = 0xff;
        }
        assert!(matches!(codec_err(d(&b)), CodecError::MalformedHeader(_)));
        Ok(())
    }

    #[test]
    fn invalid_layouts_and_values_are_typed_errors() -> Result<()> {
        let opts = DecodeOptions::default();
        let dup = ParamsHeader {
            layers: vec![
                WireLayer { name: "w".into(), shape: vec![1] },
                WireLayer { name: "w".into(), shape: vec![1] },
            ],
        };
        let b = encode_frame::<f32, _>(FrameKind::Params, &dup, &[0.0; 2])?;
        assert!(matches!(decode_params::<f32>(&b, &opts), Err(Error::DuplicateLayer { .. })));

        let empty = ParamsHeader { layers: vec![] };
        let b = encode_frame::<f32, _>(FrameKind::Params, &empty, &[])?;
        assert!(matches!(decode_params::<f32>(&b, &opts), Err(Error::EmptyModel)));

        let mut p = sample();
        p.as_mut_slice()[7] = f32::NEG_INFINITY;
        let b = encode_params(&p)?;
        assert!(matches!(
            decode_params::<f32>(&b, &opts),
            Err(Error::NonFinite { layer, index, .. }) if layer == "b" && index == [1]
        ));
        let lenient = DecodeOptions::default().with_allow_non_finite(true);
        assert_eq!(decode_params::<f32>(&b, &lenient)?.as_slice()[7], f32::NEG_INFINITY);

        let u = ClientUpdate::new(PartnerId::new("ok")?, Round(1), ModelVersion(1), 1, sample());
        let mut b = encode_update(&u)?;
        // partner id "ok" sits right after its length byte at the start of the header.
        b[PREFIX_LEN + 1] = b'/';
        assert!(matches!(decode_update::<f32>(&b, &opts), Err(Error::InvalidPartnerId { .. })));
        Ok(())
    }

    #[test]
    fn expected_spec_is_enforced_and_shared() -> Result<()> {
        let p = sample();
        let bytes = encode_params(&p)?;
        let spec = Arc::clone(p.shared_spec());
        let got = decode_params::<f32>(&bytes, &DecodeOptions::expecting(Arc::clone(&spec)))?;
        assert!(Arc::ptr_eq(got.shared_spec(), &spec));
        let other = Arc::new(ModelSpec::from_pairs([("w", vec![3, 2]), ("b", vec![3])])?);
        assert!(matches!(
            decode_params::<f32>(&bytes, &DecodeOptions::expecting(other)),
            Err(Error::ShapeMismatch { .. })
        ));
        let few = DecodeOptions { max_layers: 1, ..DecodeOptions::default() };
        assert!(matches!(
            decode_params::<f32>(&bytes, &few),
            Err(Error::Codec(CodecError::TooManyLayers { declared: 2, limit: 1 }))
        ));
        Ok(())
    }

    #[test]
    fn decode_into_reuses_the_buffer() -> Result<()> {
        // Large enough for the parallel kernels.
        let spec = ModelSpec::from_pairs([("w", vec![300, 250]), ("b", vec![250])])?;
        let n = spec.num_params();
        let p = ModelParams::<f32>::from_flat(spec, (0..n).map(|i| (i as f32).sin()).collect())?;
        let mut bytes = Vec::with_capacity(7);
        encode_params_into(&p, &mut bytes)?;
        assert_eq!(bytes, encode_params(&p)?);
        let mut out = ModelParams::<f32>::zeros(Arc::clone(p.shared_spec()));
        let ptr = out.as_slice().as_ptr();
        decode_params_into(&bytes, &DecodeOptions::default(), &mut out)?;
        assert_eq!(out, p);
        assert_eq!(out.as_slice().as_ptr(), ptr);

        let mut bad = p.clone();
        bad.as_mut_slice()[70_000] = f32::NAN;
        bad.as_mut_slice()[60_001] = f32::INFINITY;
        let r = decode_params_into(&encode_params(&bad)?, &DecodeOptions::default(), &mut out);
        assert!(
            matches!(r, Err(Error::NonFinite { layer, index, .. }) if layer == "w" && index == [240, 1])
        );

        let mut other = sample();
        assert!(matches!(
            decode_params_into(&bytes, &DecodeOptions::default(), &mut other),
            Err(Error::ShapeMismatch { .. })
        ));
        Ok(())
    }

    #[test]
    fn decode_update_into_reuses_and_validates() -> Result<()> {
        let u =
            ClientUpdate::new(PartnerId::new("lab-9")?, Round(4), ModelVersion(2), 77, sample());
        let bytes = encode_update(&u)?;
        let mut slot = ClientUpdate::new(
            PartnerId::new("old")?,
            Round(0),
            ModelVersion(0),
            0,
            ModelParams::zeros(Arc::clone(u.params.shared_spec())),
        );
        decode_update_into(&bytes, &DecodeOptions::default(), &mut slot)?;
        assert_eq!(slot, u);
        let other = ClientUpdate::new(
            PartnerId::new("x")?,
            Round(0),
            ModelVersion(0),
            0,
            ModelParams::<f32>::zeros(Arc::new(ModelSpec::from_pairs([("w", vec![9])])?)),
        );
        let mut wrong = other.clone();
        assert!(decode_update_into(&bytes, &DecodeOptions::default(), &mut wrong).is_err());
        assert_eq!(wrong, other, "metadata untouched on error");
        Ok(())
    }

    #[test]
    fn overlong_varint_is_non_canonical() -> Result<()> {
        // Header of one layer "a" with shape [1]: [layers=1][len=1]['a'][rank=1][dim=1].
        let canonical = [1u8, 1, b'a', 1, 1];
        let overlong = [1u8, 1, b'a', 1, 0x81, 0x00];
        let frame = |h: &[u8]| raw_frame(h, &1.5f32.to_le_bytes());
        let opts = DecodeOptions::default();
        assert_eq!(decode_params::<f32>(&frame(&canonical), &opts)?.as_slice(), &[1.5]);
        let r = decode_params::<f32>(&frame(&overlong), &opts);
        assert!(
            matches!(
                r,
                Err(Error::Codec(CodecError::NonCanonicalHeader | CodecError::MalformedHeader(_)))
            ),
            "{r:?}"
        );
        Ok(())
    }

    #[test]
    fn huge_declared_sequence_does_not_preallocate() {
        // layers = u32::MAX-ish varint then nothing: must fail without allocating gigabytes.
        let b = raw_frame(&[0xff, 0xff, 0xff, 0xff, 0x0f], &[]);
        assert!(matches!(
            decode_params::<f32>(&b, &DecodeOptions::default()),
            Err(Error::Codec(CodecError::MalformedHeader(_)))
        ));
    }

    fn arb_params() -> impl Strategy<Value = ModelParams<f32>> {
        prop::collection::vec(prop::collection::vec(1usize..5, 0..4), 1..5).prop_flat_map(
            |shapes| {
                let spec = ModelSpec::from_pairs(
                    shapes.iter().enumerate().map(|(i, s)| (format!("layer.{i}"), s.clone())),
                )
                .unwrap();
                let n = spec.num_params();
                prop::collection::vec(any::<f32>(), n)
                    .prop_map(move |d| ModelParams::from_flat(spec.clone(), d).unwrap())
            },
        )
    }

    proptest! {
        #[test]
        fn encode_decode_is_identity(p in arb_params(), id in "[a-z0-9]{1,20}", round: u64, version: u64, n: u64) {
            let opts = DecodeOptions::default().with_allow_non_finite(true);
            let bytes = encode_params(&p).unwrap();
            let back = decode_params::<f32>(&bytes, &opts).unwrap();
            // Compare bits so NaN payloads count as preserved.
            prop_assert_eq!(back.spec(), p.spec());
            let bits = |x: &ModelParams<f32>| x.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back), bits(&p));
            prop_assert_eq!(encode_params(&back).unwrap(), bytes);

            let u = ClientUpdate::new(PartnerId::new(id).unwrap(), Round(round), ModelVersion(version), n, p);
            let bytes = encode_update(&u).unwrap();
            let back = decode_update::<f32>(&bytes, &opts).unwrap();
            prop_assert_eq!(encode_update(&back).unwrap(), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_params::<f32>(&bytes, &DecodeOptions::default());
            let _ = decode_update::<f64>(&bytes, &DecodeOptions::default());
        }

        #[test]
        fn mutated_frames_never_panic(p in arb_params(), pos: prop::sample::Index, byte: u8) {
            let mut bytes = encode_params(&p).unwrap();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            if let Ok(back) = decode_params::<f32>(&bytes, &DecodeOptions::default().with_allow_non_finite(true)) {
                prop_assert_eq!(encode_params(&back).unwrap(), bytes);
            }
        }
    }
}
