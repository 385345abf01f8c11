//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use crate::messages::{decode_client, decode_server, encode};

/// Decodes `data` as a client and as a server message; whatever decodes must re-encode and decode
/// to the same value.
///
/// # Panics
///
/// On a failed round trip: that is the bug being hunted.
pub fn decode_messages(data: &[u8]) {
    if let Ok(m) = decode_client(data, 1 << 20) {
        let again = decode_client(&encode(&m).unwrap_or_default(), 1 << 20);
        assert!(again.is_ok_and(|a| a == m), "client message round trip");
    }
    if let Ok(m) = decode_server(data, 1 << 20) {
        let again = decode_server(&encode(&m).unwrap_or_default(), 1 << 20);
        assert!(again.is_ok_and(|a| a == m), "server message round trip");
    }
}
