//! Misbehaving clients, for testing a server (ours or an integrator's) over the network. Each
//! function opens its own TLS connection, sends one kind of bad input, and returns once the
//! server has reacted; the server must refuse it and keep serving everyone else.

use std::path::Path;

use fl_core::{ModelParams, Round};
use tokio::io::AsyncWriteExt;

use crate::auth::{Challenge, Identity};
use crate::frame::FrameDecoder;
use crate::messages::{ClientMsg, ServerMsg, encode};
use crate::network::{Downlink, Uplink, raw_tls, recv_frame, send_frame};
use crate::{Error, Result};

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn hello(addr: &str, ca: &Path) -> Result<(Tls, FrameDecoder, Challenge)> {
    let mut s = raw_tls(addr, "localhost", ca).await?;
    let mut dec = FrameDecoder::new(64 << 20);
    match recv_frame::<_, Downlink>(&mut s, &mut dec).await? {
        Some(Downlink::Hello { challenge }) => Ok((s, dec, challenge)),
        _ => Err(Error::Auth("no challenge".into())),
    }
}

async fn authenticated(
    addr: &str,
    ca: &Path,
    id: &Identity,
) -> Result<(Tls, FrameDecoder, Challenge)> {
    let (mut s, mut dec, challenge) = hello(addr, ca).await?;
    send_frame(&mut s, &Uplink::Auth(id.respond(&challenge, 100)), 4096).await?;
    match recv_frame::<_, Downlink>(&mut s, &mut dec).await? {
        Some(Downlink::Accepted { .. }) => Ok((s, dec, challenge)),
        other => Err(Error::Auth(format!("not accepted: {other:?}"))),
    }
}

/// Whether the server closed the connection (rather than answering).
async fn closed(s: &mut Tls, dec: &mut FrameDecoder) -> bool {
    !matches!(recv_frame::<_, Downlink>(s, dec).await, Ok(Some(_)))
}

/// Sends `bytes` instead of an authentication response; true if the server closed the
/// connection.
///
/// # Errors
///
/// Connection failures.
pub async fn garbage(addr: &str, ca: &Path, bytes: &[u8]) -> Result<bool> {
    let (mut s, mut dec, _) = hello(addr, ca).await?;
    s.write_all(bytes).await?;
    s.flush().await?;
    Ok(closed(&mut s, &mut dec).await)
}

/// Authenticates, then announces a frame just under 4 GiB; true if the server closed the
/// connection.
///
/// # Errors
///
/// Connection or authentication failures.
pub async fn oversized(addr: &str, ca: &Path, id: &Identity) -> Result<bool> {
    let (mut s, mut dec, _) = authenticated(addr, ca, id).await?;
    s.write_all(&(u32::MAX - 1).to_le_bytes()).await?;
    s.flush().await?;
    Ok(closed(&mut s, &mut dec).await)
}

/// Authenticates and waits for a round; then sends, correctly signed, an update with a NaN,
/// a message whose body is for another round than the one signed, and a replay of the first
/// message. True if the server closed the connection after the replay.
///
/// # Errors
///
/// Connection or authentication failures, or no round starting.
pub async fn in_round(addr: &str, ca: &Path, id: &Identity) -> Result<bool> {
    let (mut s, mut dec, challenge) = authenticated(addr, ca, id).await?;
    let start = loop {
        match recv_frame::<_, Downlink>(&mut s, &mut dec).await? {
            Some(Downlink::Protocol(ServerMsg::RoundStart(st))) => break st,
            Some(_) => {}
            None => return Err(Error::Malformed("closed before a round".into())),
        }
    };
    let mut nan: ModelParams<f32> =
        fl_core::decode_params(&start.global, &fl_core::DecodeOptions::default())?;
    if let Some(x) = nan.as_mut_slice().first_mut() {
        *x = f32::NAN;
    }
    let bad = ClientMsg::Update {
        round: start.round,
        model_version: start.model_version,
        num_examples: 100,
        delta: fl_core::encode_params(&nan)?,
    };
    let m1 = id.sign(&challenge, 1, start.round, start.model_version, encode(&bad)?);
    send_frame(&mut s, &Uplink::Signed(m1.clone()), u32::MAX).await?;
    let wrong = ClientMsg::Decline { round: Round(start.round.0 + 98), reason: "wrong".into() };
    let m2 = id.sign(&challenge, 2, start.round, start.model_version, encode(&wrong)?);
    send_frame(&mut s, &Uplink::Signed(m2), u32::MAX).await?;
    send_frame(&mut s, &Uplink::Signed(m1), u32::MAX).await?;
    loop {
        match recv_frame::<_, Downlink>(&mut s, &mut dec).await {
            // The federation ended without the session being closed: the replay went through.
            Ok(Some(Downlink::Done { .. })) => return Ok(false),
            Ok(Some(_)) => {}
            _ => return Ok(true),
        }
    }
}
