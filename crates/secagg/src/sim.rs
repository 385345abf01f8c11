//! An in-memory driver: runs a whole round between one server and n clients in this process, with
//! clients dropping out at chosen phases, timing client and server work separately. Tests,
//! benchmarks and fl-net's in-memory federation use it; production transports drive the same
//! state machines over the network.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use crate::messages::{ClientMessage, ServerMessage};
use crate::{Aggregate, ClientId, Params, Result, SecAggClient, SecAggServer};

/// The last phase a client takes part in before it disappears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DropAt {
    /// Never answers.
    AdvertiseKeys,
    /// Advertises keys, then disappears.
    ShareKeys,
    /// Shares keys, then disappears (its pairwise masks must be removed).
    MaskedInput,
    /// Sends its masked input, then disappears before the consistency check.
    ConsistencyCheck,
    /// Disappears before unmasking (its input is still in the sum).
    Unmasking,
}

/// Timings of a simulated round.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Total time spent in client state machines, over all clients.
    pub clients_total: Duration,
    /// The slowest single client's total time.
    pub client_max: Duration,
    /// Time spent in the server state machine.
    pub server: Duration,
}

/// Runs one round. `inputs[i]` is client `i + 1`'s input; `seed` derives every client's RNG
/// (deterministic for tests — real clients seed from the OS).
///
/// # Errors
///
/// Whatever the state machines return, e.g. [`crate::Error::TooFewClients`].
pub fn run_round(
    params: &Params,
    inputs: Vec<Vec<u64>>,
    drops: &HashMap<ClientId, DropAt>,
    seed: u64,
) -> Result<(Aggregate, Timings)> {
    let mut timings = Timings::default();
    let mut identities = HashMap::new();
    let mut signing = HashMap::new();
    if params.malicious {
        for u in 1..=params.num_clients {
            let mut rng = ChaCha20Rng::seed_from_u64(seed ^ (u64::from(u) << 32) ^ 0x5eed);
            let sk = SigningKey::generate(&mut rng);
            identities.insert(ClientId(u), VerifyingKey::from(&sk));
            signing.insert(ClientId(u), sk);
        }
    }
    let mut clients: BTreeMap<ClientId, (SecAggClient, Duration)> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            let id = ClientId(u32::try_from(i + 1).unwrap_or(u32::MAX));
            let mut c = SecAggClient::new(
                id,
                x,
                ChaCha20Rng::seed_from_u64(seed.wrapping_add(i as u64 + 1)),
            );
            if let Some(sk) = signing.remove(&id) {
                c = c.with_identities(sk, identities.clone());
            }
            (id, (c, Duration::ZERO))
        })
        .collect();
    let t0 = Instant::now();
    let mut server = SecAggServer::new(params.clone())?.with_identities(identities);
    let mut outbox = server.start();
    timings.server += t0.elapsed();
    let phases = [DropAt::AdvertiseKeys, DropAt::ShareKeys, DropAt::MaskedInput];
    let mut stage = 0usize;
    loop {
        // The phase the delivered messages ask the clients to answer.
        let answering = match outbox.first().map(|(_, m)| m) {
            Some(ServerMessage::Start(_)) => DropAt::AdvertiseKeys,
            Some(ServerMessage::Keys { .. }) => DropAt::ShareKeys,
            Some(ServerMessage::Shares { .. }) => DropAt::MaskedInput,
            Some(ServerMessage::ConsistencyCheck { .. }) => DropAt::ConsistencyCheck,
            Some(ServerMessage::Unmask { .. }) => DropAt::Unmasking,
            None => phases.get(stage).copied().unwrap_or(DropAt::Unmasking),
        };
        // Clients take turns, each using every core as a real client machine would, and each
        // timed on its own.
        let inbox: BTreeMap<ClientId, ServerMessage> = outbox
            .into_iter()
            .filter(|(to, _)| drops.get(to).is_none_or(|&d| d > answering))
            .collect();
        let results: Vec<(ClientId, Result<Option<ClientMessage>>)> = clients
            .iter_mut()
            .filter_map(|(id, (client, spent))| {
                let msg = inbox.get(id)?.clone();
                let t = Instant::now();
                let reply = client.handle(msg);
                *spent += t.elapsed();
                Some((*id, reply))
            })
            .collect();
        let mut replies: Vec<(ClientId, ClientMessage)> = Vec::new();
        for (id, r) in results {
            if let Some(m) = r? {
                replies.push((id, m));
            }
        }
        let t = Instant::now();
        for (from, r) in replies {
            server.receive(from, r)?;
        }
        if answering == DropAt::Unmasking {
            let agg = server.finish();
            timings.server += t.elapsed();
            let agg = agg?;
            for (_, spent) in clients.values() {
                timings.clients_total += *spent;
                timings.client_max = timings.client_max.max(*spent);
            }
            return Ok((agg, timings));
        }
        outbox = server.advance()?;
        timings.server += t.elapsed();
        stage += 1;
    }
}
