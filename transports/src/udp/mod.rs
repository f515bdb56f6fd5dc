//! UDP: plain datagrams with a small authenticated session header.
//!
//! Every datagram is one packet:
//!
//! | bytes        | field       | meaning |
//! |--------------|-------------|---------|
//! | 0            | version     | 1 |
//! | 1            | type        | 1 hello, 2 welcome, 3 data, 4 close, 5 unknown-session |
//! | 2..10        | session id  | u64, big-endian, random, chosen by the client |
//! | 10..18       | sequence    | u64, big-endian; 0 in the handshake, then per direction from 1 |
//! | 18..n-16     | body        | depends on the type (below) |
//! | n-16..n      | MAC         | HMAC-SHA256 over bytes 0..n-16, truncated to 16 bytes |
//!
//! | type            | body | MAC key |
//! |-----------------|------|---------|
//! | hello           | client nonce (32 bytes) | hello key, derived from the PSK |
//! | welcome         | server nonce (32) + reset token XOR a session-derived mask (16) | server-to-client session key |
//! | data            | one [`tether_core::codec`] frame: kind (1) + length (4) + payload; data, ping or pong | the sender's direction key |
//! | close           | empty | the sender's direction key |
//! | unknown-session | the reset token (16), *instead of* a MAC: 34 bytes in all | none: the token is the proof |
//!
//! Session keys come from HKDF-SHA256 over the PSK with both nonces as salt,
//! one key per direction, so every data, ping, pong and close packet is
//! bound to its session, direction and sequence number. A receiver checks
//! the MAC, then a 1024-packet sliding replay window (as IPsec and
//! WireGuard do); forged and replayed packets are dropped silently and
//! counted in [`UdpStats`]. Nobody without the PSK can therefore keep a dead
//! session alive by spoofing heartbeats, nor replay old ones.
//!
//! **Restart detection.** A server that receives data for a session it does
//! not know (it restarted, or already dropped the session) answers with an
//! "unknown session" packet carrying the token
//! `HMAC(static key, session id)[..16]`, as QUIC's stateless reset does. The
//! client learnt that token, masked, in the welcome; a matching token ends
//! its link at once with [`DisconnectReason::Reset`](tether_core::DisconnectReason::Reset),
//! a wrong one is ignored, so an attacker cannot kill sessions. Replies are
//! rate-limited ([`UdpOptions::reset_rate`]) and always smaller than the
//! packet that caused them. A restart is detectable only if the server comes
//! back with the same static key: by default it is derived from the PSK
//! (nothing to store; see [`StaticKey`] for a key file instead). Otherwise
//! detection falls back to the heartbeat timeout.
//!
//! **Handshake.** The client sends an authenticated hello, retransmitted
//! (100 ms, doubling to 1 s) until a verified welcome arrives. A server
//! never answers what it cannot authenticate, so a wrong PSK fails the
//! attempt with `ConnectTimeout`; an ICMP "port unreachable" during the
//! handshake fails it with `ConnectRefused`. On an established link ICMP
//! errors are unauthenticated and only counted.
//!
//! **Sizes.** One message is one datagram: at most
//! [`UdpOptions::max_payload`] bytes (default [`DEFAULT_MAX_PAYLOAD`], so
//! that a datagram crosses any IPv6 path unfragmented; up to 65000 on
//! loopback). Larger messages are refused one by one
//! ([`UdpLink::send_frame`] returns [`UdpSendError::TooLarge`]).
//!
//! **Liveness.** UDP has no connection for the kernel to watch: the
//! application heartbeat is the only detector, and it also keeps NAT
//! bindings alive. Use [`recommended_heartbeat`] (a ping after at most 15 s
//! of silence) or anything with an interval of 30 s or less.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tether_transports::driver::{Client, ClientConfig, Server, ServerConfig};
//! use tether_transports::udp::{self, UdpAcceptor, UdpConnector, UdpOptions};
//!
//! let options = UdpOptions::with_psk(*b"0123456789abcdef0123456789abcdef");
//! let acceptor = UdpAcceptor::bind("127.0.0.1:7000".parse()?, options.clone()).await?;
//! let _server = Server::spawn(acceptor, ServerConfig::default())?;
//!
//! let connector = UdpConnector::new("127.0.0.1", 7000, options)?;
//! let config = ClientConfig { heartbeat: udp::recommended_heartbeat(), ..Default::default() };
//! let client = Client::spawn(connector, config)?;
//! client.handle().send("hello".into()).await?;
//! # Ok(()) }
//! ```

mod acceptor;
mod connector;
mod keys;
mod link;
mod options;
mod replay;
mod stats;
mod wire;

pub use acceptor::UdpAcceptor;
pub use connector::UdpConnector;
pub use link::{UdpLink, UdpSendError};
pub use options::{StaticKey, UdpOptions, DEFAULT_MAX_PAYLOAD, MAX_PAYLOAD_LIMIT, MIN_PSK_LEN};
pub use stats::UdpStats;

use std::time::Duration;
use tether_core::liveness::HeartbeatConfig;

/// A heartbeat suited to UDP through NATs: ping after 15 s of silence,
/// 5 s per reply, 3 misses, so dead within 30 s.
///
/// NATs drop idle UDP mappings after as little as 30 s in practice (RFC
/// 4787 asks for at least 2 minutes; RFC 9000 10.1.2 advises QUIC to send
/// something every 30 s or less for this reason). An outgoing ping at most
/// every 15 s refreshes the mapping with margin, even if one is lost.
pub fn recommended_heartbeat() -> HeartbeatConfig {
    HeartbeatConfig::new(Duration::from_secs(15), Duration::from_secs(5), 3)
}
