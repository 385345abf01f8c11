//! The federation settings the fl-net integration tests start from.

use fl_net::{AggregatorKind, DpSetting, FederationConfig, PrivacyMode};

/// Plaintext FedAvg without DP: `rounds` rounds, up to 100 partners a round, a quorum of
/// `min_clients`, update clip 4, learning rate 0.1 with momentum 0.9, batches of 32, one local
/// epoch. Each test changes what it exercises with struct update syntax.
pub fn federation_config(name: &str, rounds: u64, min_clients: usize) -> FederationConfig {
    FederationConfig {
        name: name.into(),
        rounds,
        clients_per_round: 100,
        min_clients,
        aggregator: AggregatorKind::FedAvg,
        privacy: PrivacyMode::None,
        dp: DpSetting::Off,
        update_clip: Some(4.0),
        quantization_bits: 16,
        learning_rate: 0.1,
        momentum: 0.9,
        batch_size: 32,
        local_epochs: 1,
        model_version: 0,
    }
}
