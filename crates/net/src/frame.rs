//! Length-prefixed framing with a hard size limit, sans-IO: bytes go in with
//! [`FrameDecoder::push`], whole frames come out of [`FrameDecoder::next_frame`]. A frame is a
//! 4-byte little-endian length followed by that many bytes. An oversized length is refused as
//! soon as its prefix arrives, before any of the body is buffered, so a peer cannot make the
//! receiver allocate more than the limit.

use crate::{Error, Result};

/// Default largest frame: 256 MiB (a 50M-parameter f32 model plus headers).
pub const DEFAULT_MAX_FRAME: u32 = 256 << 20;

/// Prefixes `payload` with its length.
///
/// # Errors
///
/// [`Error::FrameTooLarge`] if `payload` is longer than `max`.
pub fn encode_frame(payload: &[u8], max: u32) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= max)
        .ok_or(Error::FrameTooLarge { len: payload.len() as u64, limit: u64::from(max) })?;
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Reassembles frames from a byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max: u32,
    failed: bool,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max` bytes.
    #[must_use]
    pub fn new(max: u32) -> Self {
        Self { buf: Vec::new(), start: 0, max, failed: false }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// How many more bytes the next frame needs (at least 1 when incomplete, 0 when a frame is
    /// ready), so a transport can read exactly that much.
    #[must_use]
    pub fn wanted(&self) -> usize {
        let have = self.buffered();
        if have < 4 {
            return 4 - have;
        }
        let len = self.declared().unwrap_or(0) as usize;
        (4 + len).saturating_sub(have)
    }

    fn declared(&self) -> Option<u32> {
        let b = self.buf.get(self.start..self.start + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next complete frame, if one is buffered.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] when a length prefix exceeds the limit; the stream cannot be
    /// resynchronized, so every later call fails too and the connection must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        if self.failed {
            return Err(Error::Malformed("stream abandoned after an oversized frame".into()));
        }
        let Some(len) = self.declared() else { return Ok(None) };
        if len > self.max {
            self.failed = true;
            self.buf = Vec::new();
            self.start = 0;
            return Err(Error::FrameTooLarge { len: u64::from(len), limit: u64::from(self.max) });
        }
        let end = self.start + 4 + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let frame = self.buf[self.start + 4..end].to_vec();
        self.start = end;
        if self.start > (1 << 20) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn frames_survive_any_chunking(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8), cut in 1usize..50) {
            let mut stream = Vec::new();
            for p in &payloads {
                stream.extend(encode_frame(p, 1024).unwrap());
            }
            let mut d = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(got, payloads);
            prop_assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn oversized_frames_are_refused_from_the_prefix() {
        assert!(matches!(
            encode_frame(&[0; 11], 10),
            Err(Error::FrameTooLarge { len: 11, limit: 10 })
        ));
        let mut d = FrameDecoder::new(10);
        d.push(&u32::MAX.to_le_bytes());
        assert!(matches!(d.next_frame(), Err(Error::FrameTooLarge { .. })));
        assert_eq!(d.buffered(), 0);
        // The stream is abandoned: later frames are not trusted.
        d.push(&encode_frame(b"ok", 10).unwrap());
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn wanted_counts_the_missing_bytes() {
        let mut d = FrameDecoder::new(100);
        assert_eq!(d.wanted(), 4);
        d.push(&[5, 0]);
        assert_eq!(d.wanted(), 2);
        d.push(&[0, 0, 1, 2]);
        assert_eq!(d.wanted(), 3);
        d.push(&[3, 4, 5]);
        assert_eq!(d.wanted(), 0);
        assert_eq!(d.next_frame().unwrap().unwrap(), [1, 2, 3, 4, 5]);
    }
}
