//! Reading a protocol file as text, as extraction does: bounded in size, in the encodings lab
//! documents come in, and refusing files that are not text at all.
//!
//! UTF-8 is read as is (a byte-order mark is dropped, so a protocol hashes and tags the same
//! with or without one). A UTF-16 byte-order mark (what word processors write for "Unicode
//! text") selects UTF-16. Any other file that is not UTF-8 is read as Windows-1252, the usual
//! encoding of text exported on Windows (`37 °C` is the byte `0xB0` there, and invalid UTF-8).
//! A file whose text holds a NUL, or in which more than one character in ten is another control
//! character (other than tab, line feed, form feed and carriage return), is not a protocol (a
//! binary file named `.txt`) and is refused, as git and grep refuse files with a NUL as binary.
//! A few stray control characters in real text (exports from editors and protocol sites leave
//! U+0001 where a bullet was) are each replaced by a space, which keeps character offsets (brat
//! annotations count characters) and splits words where the control character did.

use std::io::Read;
use std::path::Path;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use crate::{Error, Result};

/// Largest protocol file read: WLP's largest protocol is 14 KB, so a file this large is not
/// one, and a corpus batch of them still fits in memory.
pub const MAX_PROTOCOL_BYTES: u64 = 8 << 20;

/// The encoding a protocol file was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TextEncoding {
    /// UTF-8, with or without a byte-order mark.
    Utf8,
    /// UTF-16, little-endian, from its byte-order mark.
    Utf16Le,
    /// UTF-16, big-endian, from its byte-order mark.
    Utf16Be,
    /// Windows-1252, for a file without a byte-order mark that is not UTF-8.
    Windows1252,
}

impl TextEncoding {
    /// The encoding's name as the WHATWG Encoding Standard spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Utf16Le => "UTF-16LE",
            Self::Utf16Be => "UTF-16BE",
            Self::Windows1252 => "windows-1252",
        }
    }
}

/// Decodes a protocol file's bytes (see the module documentation).
///
/// # Errors
///
/// [`Error::InvalidParameter`] naming `protocol text` when UTF-16 after a byte-order mark is
/// malformed or the text holds a control character.
pub fn decode_protocol(bytes: &[u8]) -> Result<(String, TextEncoding)> {
    decode(bytes).map_err(|reason| Error::param("protocol text", reason))
}

/// [`decode_protocol`] with the reason alone, for callers that name the file themselves.
fn decode(bytes: &[u8]) -> std::result::Result<(String, TextEncoding), String> {
    let (text, encoding) = match Encoding::for_bom(bytes) {
        Some((encoding, bom)) => {
            let text = encoding
                .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
                .ok_or_else(|| {
                    format!("malformed {} after its byte-order mark", encoding.name())
                })?;
            let kind = if encoding == UTF_8 {
                TextEncoding::Utf8
            } else if encoding == encoding_rs::UTF_16LE {
                TextEncoding::Utf16Le
            } else {
                TextEncoding::Utf16Be
            };
            (text.into_owned(), kind)
        }
        None => match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), TextEncoding::Utf8),
            Err(_) => {
                let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
                (text.into_owned(), TextEncoding::Windows1252)
            }
        },
    };
    // One pass finds a NUL and counts characters and stray controls.
    let (mut chars, mut strays) = (0usize, 0usize);
    for c in text.chars() {
        if c == '\0' {
            return Err(format!("not text: NUL at character {chars}"));
        }
        strays += usize::from(is_stray_control(c));
        chars += 1;
    }
    if strays == 0 {
        return Ok((text, encoding));
    }
    if strays.saturating_mul(10) > chars {
        return Err(format!("not text: {strays} control characters in {chars}"));
    }
    let text = text.chars().map(|c| if is_stray_control(c) { ' ' } else { c }).collect();
    Ok((text, encoding))
}

/// C0 controls other than tab, line feed, form feed and carriage return, and DEL (all in
/// `is_ascii_control`).
fn is_stray_control(c: char) -> bool {
    c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\x0c' | '\r')
}

/// An [`Error::Io`] naming `path` for content that cannot be used.
pub(crate) fn invalid_data(path: &Path, reason: impl Into<String>) -> Error {
    let reason: String = reason.into();
    Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, reason))
}

/// The bytes of `path`, reading at most `limit` (enforced while reading, not taken from the
/// size the file reports, so a growing file or a FIFO cannot make it read more).
///
/// # Errors
///
/// [`Error::Io`] naming the file when it cannot be read or holds more than `limit` bytes
/// (`what` names the kind of file in the message).
pub(crate) fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(invalid_data(path, format!("larger than the {limit}-byte limit for {what}")));
    }
    Ok(bytes)
}

/// Reads one protocol file of at most [`MAX_PROTOCOL_BYTES`] and decodes it
/// ([`decode_protocol`]).
///
/// # Errors
///
/// [`Error::Io`] naming the file when it cannot be read, is larger than the limit or is not
/// text.
pub fn read_protocol(path: &Path) -> Result<(String, TextEncoding)> {
    let bytes = read_bounded(path, MAX_PROTOCOL_BYTES, "a protocol")?;
    decode(&bytes).map_err(|reason| invalid_data(path, reason))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_encodings_protocols_come_in() {
        let want = "Título\nIncubate at 37 °C for 1 h.\n";
        let utf8 = want.as_bytes().to_vec();
        let mut bom8 = b"\xef\xbb\xbf".to_vec();
        bom8.extend(&utf8);
        let mut le = b"\xff\xfe".to_vec();
        le.extend(want.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = b"\xfe\xff".to_vec();
        be.extend(want.encode_utf16().flat_map(u16::to_be_bytes));
        let cp1252 = b"T\xedtulo\nIncubate at 37 \xb0C for 1 h.\n".to_vec();
        for (bytes, encoding) in [
            (utf8, TextEncoding::Utf8),
            (bom8, TextEncoding::Utf8),
            (le, TextEncoding::Utf16Le),
            (be, TextEncoding::Utf16Be),
            (cp1252, TextEncoding::Windows1252),
        ] {
            assert_eq!(
                decode_protocol(&bytes).unwrap(),
                (want.to_owned(), encoding),
                "{encoding:?}"
            );
        }
        // Windows-1252's own characters beyond Latin-1: curly quotes, en dash, µ.
        let (text, _) = decode_protocol(b"\x93wash\x94 5\x9610 \xb5l").unwrap();
        assert_eq!(text, "\u{201c}wash\u{201d} 5\u{2013}10 µl");
    }

    #[test]
    fn refuses_what_is_not_text() {
        for bytes in [
            &b"\x7fELF\x02\x01\x01\x00"[..],
            b"PK\x03\x04\x14\x00\x06\x00",
            b"%PDF-1.7\n\x00\x01",
            b"ok\x00",
            b"\xff\xfe\x00\xd8", // a lone UTF-16 surrogate after the mark
        ] {
            let e = decode_protocol(bytes).unwrap_err().to_string();
            assert!(e.contains("protocol text"), "{e}");
        }
        assert!(decode_protocol(b"tabs\tand\r\nform\x0cfeeds").is_ok());
        // One character in ten may be a stray control character; one more is binary.
        let e = decode_protocol(b"\x01\x01bcdefghijklmnopqr").unwrap_err().to_string();
        assert!(e.contains("not text: 2 control characters in 19"), "{e}");
        assert!(decode_protocol(b"\x01\x01bcdefghijklmnopqrs").is_ok());
        let e = decode_protocol(b"a much longer text\0").unwrap_err().to_string();
        assert!(e.contains("not text: NUL at character 18"), "{e}");
        assert_eq!(decode_protocol(b"").unwrap(), (String::new(), TextEncoding::Utf8));
    }

    #[test]
    fn stray_control_characters_become_spaces_in_place() {
        // As in a protocols.io export: U+0001 where a list bullet was.
        let (text, encoding) =
            decode_protocol(b"Flow Cytometry\n1. \x01 Inoculate\x03a colony at 37 \xb0C.").unwrap();
        assert_eq!(text, "Flow Cytometry\n1.   Inoculate a colony at 37 °C.");
        assert_eq!(encoding, TextEncoding::Windows1252);
        let raw = "Add 5 µl\x7fof buffer\x1f(1×).";
        let (text, _) = decode_protocol(raw.as_bytes()).unwrap();
        assert_eq!(text, "Add 5 µl of buffer (1×).");
        assert_eq!(text.chars().count(), raw.chars().count(), "offsets kept");
    }

    #[test]
    fn reads_at_most_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let limit = usize::try_from(MAX_PROTOCOL_BYTES).unwrap();
        let at = dir.path().join("at.txt");
        let over = dir.path().join("over.txt");
        std::fs::write(&at, "a".repeat(limit)).unwrap();
        std::fs::write(&over, "a".repeat(limit + 1)).unwrap();
        assert_eq!(read_protocol(&at).unwrap().0.len(), limit);
        let e = read_protocol(&over).unwrap_err().to_string();
        assert!(e.contains("over.txt") && e.contains("8388608-byte limit"), "{e}");
        let e = read_protocol(&dir.path().join("missing.txt")).unwrap_err().to_string();
        assert!(e.contains("missing.txt"), "{e}");
    }
}
