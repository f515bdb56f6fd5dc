//! One address syntax for every transport: `tcp://host:port` (and, as they
//! are enabled, `tls://`, `quic://`, `udp://`), used by the Rust builder, the
//! C API, Python and the CLI.

use crate::driver::Acceptor;
use crate::link::BoxLink;
use crate::Reconnect;
use async_trait::async_trait;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use thiserror::Error;

/// A transport scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain TCP with tether framing.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// QUIC datagrams.
    Quic,
    /// UDP datagrams with a session header.
    Udp,
}

impl Scheme {
    /// The scheme's name as written in addresses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Quic => "quic",
            Self::Udp => "udp",
        }
    }
}

/// A parsed `scheme://host:port` address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port; 0 is allowed for listening (the kernel picks one).
    pub port: u16,
}

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// No `scheme://` prefix.
    #[error("address {0:?} has no scheme: write e.g. tcp://127.0.0.1:7000")]
    MissingScheme(String),
    /// A scheme tether does not know.
    #[error("unknown scheme {0:?}: expected tcp, tls, quic or udp")]
    UnknownScheme(String),
    /// A known scheme whose cargo feature is not compiled in.
    #[error("the {0} transport is not compiled into this build")]
    NotEnabled(&'static str),
    /// No host, or a malformed one.
    #[error("address {0:?} has no valid host")]
    BadHost(String),
    /// No port, or not a number in 0..=65535.
    #[error("address {0:?} has no valid port (0..=65535)")]
    BadPort(String),
    /// The transport's options are invalid, e.g. a certificate file that
    /// cannot be read (the message names the option or path).
    #[error("invalid {0} options: {1}")]
    BadOptions(&'static str, String),
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| EndpointError::MissingScheme(s.to_string()))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            "quic" => Scheme::Quic,
            "udp" => Scheme::Udp,
            other => return Err(EndpointError::UnknownScheme(other.to_string())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port, bracketed) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, port) = v6
                .split_once(']')
                .ok_or_else(|| EndpointError::BadHost(s.to_string()))?;
            let port = port
                .strip_prefix(':')
                .ok_or_else(|| EndpointError::BadPort(s.to_string()))?;
            (host, port, true)
        } else {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| EndpointError::BadPort(s.to_string()))?;
            (host, port, false)
        };
        // IPv6 literals must be bracketed, as in URLs: `[::1]:80`.
        let valid_host = !host.is_empty()
            && !host.contains(['/', ' ', '@', '?', '#', '[', ']'])
            && if bracketed {
                host.parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                !host.contains(':')
            };
        if !valid_host {
            return Err(EndpointError::BadHost(s.to_string()));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| EndpointError::BadPort(s.to_string()))?;
        Ok(Self {
            scheme,
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.scheme.as_str(),
                self.host,
                self.port
            )
        } else {
            write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }
}

impl Endpoint {
    /// The socket address for listening; the host must be an IP literal.
    pub fn listen_addr(&self) -> Result<SocketAddr, EndpointError> {
        let ip = self
            .host
            .parse::<std::net::IpAddr>()
            .map_err(|_| EndpointError::BadHost(self.to_string()))?;
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// A dialer chosen at run time.
pub type BoxConnector = Box<dyn Reconnect<Conn = BoxLink>>;

/// An acceptor chosen at run time.
pub type BoxAcceptor = Box<dyn Acceptor>;

#[async_trait]
impl Acceptor for BoxAcceptor {
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)> {
        (**self).accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        (**self).local_addr()
    }

    fn max_message(&self) -> Option<usize> {
        (**self).max_message()
    }
}

/// Transport settings for [`connector`] and [`acceptor`]; each transport
/// reads its own part.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    /// TCP socket options (also used under TLS).
    #[cfg(feature = "tcp")]
    pub tcp: crate::tcp::TcpOptions,
    /// TLS client settings for `tls://` connectors.
    #[cfg(feature = "tls")]
    pub tls_client: crate::tls::TlsClientOptions,
    /// TLS server settings for `tls://` acceptors.
    #[cfg(feature = "tls")]
    pub tls_server: crate::tls::TlsServerOptions,
    /// QUIC client settings for `quic://` connectors.
    #[cfg(feature = "quic")]
    pub quic_client: crate::quic::QuicClientOptions,
    /// QUIC server settings for `quic://` acceptors.
    #[cfg(feature = "quic")]
    pub quic_server: crate::quic::QuicServerOptions,
    /// UDP settings (PSK and more) for `udp://`, both sides.
    #[cfg(feature = "udp")]
    pub udp: crate::udp::UdpOptions,
}

impl TransportOptions {
    /// Ties each transport's own liveness timers to a client's heartbeat,
    /// so that they never disagree with the heartbeat's verdict: QUIC's
    /// keep-alive becomes the heartbeat interval and its idle timeout the
    /// detection bound (`QuicLiveness::from_heartbeat`); UDP retransmits an
    /// unanswered ping at least twice per heartbeat timeout (so a restarted
    /// server hears from the client soon after it is back). TCP and TLS
    /// need nothing. The C API, Python and the CLI apply it for you.
    pub fn follow_heartbeat(self, heartbeat: &tether_core::liveness::HeartbeatConfig) -> Self {
        let _ = heartbeat;
        #[allow(unused_mut)]
        let mut options = self;
        #[cfg(feature = "quic")]
        {
            options.quic_client = options
                .quic_client
                .with_liveness(crate::quic::QuicLiveness::from_heartbeat(heartbeat));
        }
        #[cfg(feature = "udp")]
        {
            options.udp.probe_interval = options
                .udp
                .probe_interval
                .min(heartbeat.timeout / 2)
                .max(std::time::Duration::from_millis(10));
        }
        options
    }

    /// The server side of [`TransportOptions::follow_heartbeat`]: QUIC's
    /// liveness follows `policy` (heartbeat: as for a client; idle timeout:
    /// no keep-alive, the idle timeout is the policy's detection bound).
    pub fn follow_policy(self, policy: &tether_core::liveness::Policy) -> Self {
        let _ = policy;
        #[allow(unused_mut)]
        let mut options = self;
        #[cfg(feature = "quic")]
        {
            use tether_core::liveness::Policy;
            let liveness = match policy {
                Policy::Heartbeat(h) => crate::quic::QuicLiveness::from_heartbeat(h),
                Policy::IdleTimeout(_) => crate::quic::QuicLiveness {
                    keep_alive: None,
                    idle_timeout: policy.detection_bound(),
                },
            };
            options.quic_server = options.quic_server.with_liveness(liveness);
        }
        options
    }
}

/// A dialer for `endpoint`.
pub fn connector(
    endpoint: &Endpoint,
    options: &TransportOptions,
) -> Result<BoxConnector, EndpointError> {
    let _ = options;
    match endpoint.scheme {
        #[cfg(feature = "tcp")]
        Scheme::Tcp => Ok(Box::new(crate::tcp::TcpConnector::new(
            endpoint.host.clone(),
            endpoint.port,
            options.tcp,
        ))),
        #[cfg(feature = "tls")]
        Scheme::Tls => crate::tls::TlsConnector::new(
            endpoint.host.clone(),
            endpoint.port,
            options.tcp,
            &options.tls_client,
        )
        .map(|c| Box::new(c) as BoxConnector)
        .map_err(|e| EndpointError::BadOptions("tls", e.to_string())),
        #[cfg(feature = "quic")]
        Scheme::Quic => crate::quic::QuicConnector::new(
            endpoint.host.clone(),
            endpoint.port,
            &options.quic_client,
        )
        .map(|c| Box::new(c) as BoxConnector)
        .map_err(|e| EndpointError::BadOptions("quic", e.to_string())),
        #[cfg(feature = "udp")]
        Scheme::Udp => {
            crate::udp::UdpConnector::new(endpoint.host.clone(), endpoint.port, options.udp.clone())
                .map(|c| Box::new(c) as BoxConnector)
                .map_err(|e| EndpointError::BadOptions("udp", e.to_string()))
        }
        // Unreachable when every transport is compiled in.
        #[allow(unreachable_patterns)]
        other => Err(EndpointError::NotEnabled(other.as_str())),
    }
}

/// Binds a listener for `endpoint` (the host must be an IP literal; port 0
/// picks a free port).
pub async fn acceptor(endpoint: &Endpoint, options: &TransportOptions) -> io::Result<BoxAcceptor> {
    let _ = options;
    let invalid = |e: EndpointError| io::Error::new(io::ErrorKind::InvalidInput, e);
    match endpoint.scheme {
        #[cfg(feature = "tcp")]
        Scheme::Tcp => {
            let addr = endpoint.listen_addr().map_err(invalid)?;
            Ok(Box::new(
                crate::tcp::TcpAcceptor::bind(addr, options.tcp).await?,
            ))
        }
        #[cfg(feature = "tls")]
        Scheme::Tls => {
            let addr = endpoint.listen_addr().map_err(invalid)?;
            Ok(Box::new(
                crate::tls::TlsAcceptor::bind(addr, options.tcp, &options.tls_server).await?,
            ))
        }
        #[cfg(feature = "quic")]
        Scheme::Quic => {
            let addr = endpoint.listen_addr().map_err(invalid)?;
            Ok(Box::new(
                crate::quic::QuicAcceptor::bind(addr, &options.quic_server).await?,
            ))
        }
        #[cfg(feature = "udp")]
        Scheme::Udp => {
            let addr = endpoint.listen_addr().map_err(invalid)?;
            Ok(Box::new(
                crate::udp::UdpAcceptor::bind(addr, options.udp.clone()).await?,
            ))
        }
        // Unreachable when every transport is compiled in.
        #[allow(unreachable_patterns)]
        other => Err(invalid(EndpointError::NotEnabled(other.as_str()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "quic", feature = "udp"))]
    #[test]
    fn transport_timers_follow_the_heartbeat() {
        use std::time::Duration;
        use tether_core::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy};
        let ms = Duration::from_millis;
        let hb = HeartbeatConfig::new(ms(400), ms(300), 2);
        let o = TransportOptions::default().follow_heartbeat(&hb);
        assert_eq!(o.quic_client.liveness.keep_alive, Some(ms(400)));
        assert_eq!(o.quic_client.liveness.idle_timeout, hb.detection_bound());
        assert_eq!(o.udp.probe_interval, ms(150));
        // A slow heartbeat keeps the (shorter) default probe interval.
        let slow = HeartbeatConfig::new(Duration::from_secs(30), Duration::from_secs(20), 2);
        let o = TransportOptions::default().follow_heartbeat(&slow);
        assert_eq!(
            o.udp.probe_interval,
            crate::udp::UdpOptions::default().probe_interval
        );

        let o = TransportOptions::default().follow_policy(&Policy::Heartbeat(hb));
        assert_eq!(o.quic_server.liveness.keep_alive, Some(ms(400)));
        let idle = Policy::IdleTimeout(IdleTimeoutConfig::mqtt(Duration::from_secs(10)));
        let o = TransportOptions::default().follow_policy(&idle);
        assert_eq!(o.quic_server.liveness.keep_alive, None);
        assert_eq!(o.quic_server.liveness.idle_timeout, idle.detection_bound());
    }

    #[test]
    fn parses_the_four_schemes() {
        let e: Endpoint = "tcp://127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port),
            (Scheme::Tcp, "127.0.0.1", 7000)
        );
        let e: Endpoint = "QUIC://[::1]:0".parse().unwrap();
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port),
            (Scheme::Quic, "::1", 0)
        );
        assert_eq!(e.to_string(), "quic://[::1]:0");
        let e: Endpoint = "tls://example.test:443/".parse().unwrap();
        assert_eq!(e.host, "example.test");
        assert_eq!("udp://h:1".parse::<Endpoint>().unwrap().scheme, Scheme::Udp);
    }

    #[test]
    fn rejects_bad_addresses_clearly() {
        use EndpointError::*;
        let err = |s: &str| s.parse::<Endpoint>().unwrap_err();
        assert!(matches!(err("127.0.0.1:80"), MissingScheme(_)));
        assert!(matches!(err("http://a:80"), UnknownScheme(_)));
        assert!(matches!(err("tcp://:80"), BadHost(_)));
        assert!(matches!(err("tcp://a"), BadPort(_)));
        assert!(matches!(err("tcp://a:99999"), BadPort(_)));
        assert!(matches!(err("tcp://a:-1"), BadPort(_)));
        assert!(matches!(err("tcp://::1:80"), BadHost(_)));
        assert!(matches!(err("tcp://[::1]80"), BadPort(_)));
        assert!(matches!(err("tcp://a b:80"), BadHost(_)));
        assert!(err("tcp://a").to_string().contains("port"));
    }

    #[test]
    fn listen_needs_an_ip() {
        let e: Endpoint = "tcp://localhost:0".parse().unwrap();
        assert!(e.listen_addr().is_err());
        let e: Endpoint = "tcp://127.0.0.1:0".parse().unwrap();
        assert_eq!(e.listen_addr().unwrap().port(), 0);
    }
}
