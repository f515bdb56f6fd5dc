//! The fault proxy in front of the server: the TCP one for stream
//! transports, the UDP one for datagram transports.

use super::transport::is_datagram;
use std::io;
use std::net::SocketAddr;
use tether_transports::fault::{Fault, FaultProxy, UdpFaultProxy};
use tether_transports::Scheme;

pub enum Proxy {
    /// tcp:// and tls://: one proxied TCP connection per client.
    Stream(FaultProxy),
    /// quic:// and udp://: one mapping (upstream socket) per client address.
    Datagram(UdpFaultProxy),
}

impl Proxy {
    /// A proxy on a loopback port picked by the kernel, forwarding to
    /// `upstream`.
    pub async fn start(scheme: Scheme, upstream: SocketAddr) -> io::Result<Self> {
        Ok(if is_datagram(scheme) {
            Self::Datagram(UdpFaultProxy::start(upstream).await?)
        } else {
            Self::Stream(FaultProxy::start(upstream).await?)
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Self::Stream(p) => p.local_addr(),
            Self::Datagram(p) => p.local_addr(),
        }
    }

    pub fn set_fault(&self, fault: Fault) {
        match self {
            Self::Stream(p) => p.set_fault(fault),
            Self::Datagram(p) => p.set_fault(fault),
        }
    }

    pub fn set_seed(&self, seed: u64) {
        match self {
            Self::Stream(p) => p.set_seed(seed),
            Self::Datagram(p) => p.set_seed(seed),
        }
    }
}
