//! The fault lab: break the path between a client and a server on command,
//! in your own tests.
//!
//! * [`FaultProxy`] (TCP) listens on a loopback port and forwards every
//!   accepted connection to an upstream address.
//! * [`UdpFaultProxy`] (UDP) forwards datagrams between clients and an
//!   upstream, with one upstream socket per client (a mapping, as in a NAT).
//! * [`netns`] (Linux, root) builds a private two-host network in network
//!   namespaces and pulls its cable with nftables, so that the *kernel's*
//!   liveness (keepalive, TCP_USER_TIMEOUT) can be tested for real.
//!
//! Both proxies share one set of modes and one shaping mechanism, so a
//! fault means the same thing on either:
//!
//! | fault | TCP ([`FaultProxy`]) | UDP ([`UdpFaultProxy`]) |
//! |---|---|---|
//! | [`Fault::BlackHole`] | bytes, FIN and RST dropped both ways, sockets stay open; new connections parked | every datagram dropped |
//! | [`Fault::Cut`] | one direction dropped (with its FIN/RST) | one direction dropped |
//! | [`Fault::Delay`] | latency + jitter per chunk, order kept | latency + jitter per datagram, order kept |
//! | loss ([`UdpFaultProxy::set_loss`]) | not offered: a byte stream has no loss to emulate (real TCP turns loss into retransmission delay: use `Delay`; a dropped chunk would corrupt the stream instead) | each datagram lost with a seeded probability, combines with any fault |
//! | pause / resume | bytes wait in the kernels' buffers, none lost; new connections parked | datagrams buffered (256 KiB per direction per mapping, beyond that dropped), delivered in order on resume |
//! | one-shot ends | [`FaultProxy::reset_all`] (RST), [`FaultProxy::close_all`] (FIN) | [`UdpFaultProxy::forget_clients`] (a restarted NAT: new source port, replies to old mappings dropped) |
//! | moved upstream | [`FaultProxy::set_upstream`] (new connections) | [`UdpFaultProxy::set_upstream`] (new mappings) |
//!
//! Random draws (jitter, loss) replay exactly after `set_seed`.
//!
//! What each side sees is what a real network would show it: a reset
//! arrives as `ECONNRESET`, a close as end-of-stream, a black hole as
//! nothing at all. Being userspace proxies they cannot fake the client's own
//! TCP handshake or acknowledgements: a TCP client always *connects* to the
//! proxy (an upstream that refuses shows up as a reset right after), and the
//! client's kernel sees its bytes acknowledged by the proxy even inside a
//! black hole. Kernel-level liveness therefore needs [`netns`] (Linux only).
//!
//! A TCP example (see [`UdpFaultProxy`] for UDP and [`netns`] for the
//! kernel):
//!
//! ```
//! use std::time::Duration;
//! use tether_transports::fault::{Fault, FaultProxy};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::io::Result<()> {
//!     // An echo server stands in for the real upstream.
//!     let server = TcpListener::bind("127.0.0.1:0").await?;
//!     let upstream = server.local_addr()?;
//!     tokio::spawn(async move {
//!         while let Ok((mut conn, _)) = server.accept().await {
//!             tokio::spawn(async move {
//!                 let (mut rx, mut tx) = conn.split();
//!                 let _ = tokio::io::copy(&mut rx, &mut tx).await;
//!             });
//!         }
//!     });
//!
//!     let proxy = FaultProxy::start(upstream).await?;
//!     let mut client = TcpStream::connect(proxy.local_addr()).await?;
//!     let mut buf = [0u8; 4];
//!     client.write_all(b"ping").await?;
//!     client.read_exact(&mut buf).await?;
//!     assert_eq!(&buf, b"ping");
//!
//!     // Black hole: the bytes vanish and the connection stays open.
//!     proxy.set_fault(Fault::BlackHole);
//!     client.write_all(b"lost").await?;
//!     let read = tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await;
//!     assert!(read.is_err(), "no reply and no close: silence");
//!
//!     // Reset: every open connection gets an RST.
//!     proxy.set_fault(Fault::Pass);
//!     assert_eq!(proxy.reset_all(), 1);
//!     let err = client.read(&mut buf).await.unwrap_err();
//!     assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
//!     Ok(())
//! }
//! ```

mod conn;
mod lane;
mod mode;
#[cfg(target_os = "linux")]
pub mod netns;
mod stats;
mod switch;
mod tcp;
#[cfg(test)]
mod tests;
mod udp;
#[cfg(test)]
mod udp_tests;

pub use mode::{Direction, Fault};
pub use stats::{FaultStats, UdpFaultStats};
pub use tcp::FaultProxy;
pub use udp::UdpFaultProxy;
