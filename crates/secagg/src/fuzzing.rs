//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use crate::messages::{decode_client, decode_server, encode};
use crate::{ClientId, Graph, Params, SecAggClient, SecAggServer, SessionId};

/// Decodes `data` as a client and as a server message; whatever decodes must re-encode and decode
/// to the same value, and feeding it to a fresh server (as from its claimed sender) or a fresh
/// client must return, never panic.
///
/// # Panics
///
/// On a failed round trip: that is the bug being hunted.
pub fn decode_messages(data: &[u8]) {
    let params = Params {
        session: SessionId([0; 32]),
        num_clients: 3,
        threshold: 2,
        dimension: 4,
        ring_bits: 16,
        graph: Graph::Complete,
        malicious: false,
    };
    if let Ok(m) = decode_client(data, 1 << 20) {
        let again = decode_client(&encode(&m).unwrap_or_default(), 1 << 20);
        assert!(again.as_ref().is_ok_and(|a| *a == m), "client message round trip");
        if let Ok(mut server) = SecAggServer::new(params.clone()) {
            let _ = server.receive(m.sender(), m);
            let _ = server.advance();
        }
    }
    if let Ok(m) = decode_server(data, 1 << 20) {
        let again = decode_server(&encode(&m).unwrap_or_default(), 1 << 20);
        assert!(again.as_ref().is_ok_and(|a| *a == m), "server message round trip");
        let mut client =
            SecAggClient::new(ClientId(1), vec![1, 2, 3, 4], ChaCha20Rng::seed_from_u64(0));
        let _ = client.handle(m);
    }
}
