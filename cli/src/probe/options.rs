//! `tether probe` options: the address, how long, and the liveness
//! settings (heartbeat, kernel keepalive, backoff).

use crate::args::{parse_duration, Args, Token, UsageError};
use std::path::PathBuf;
use std::time::Duration;
use tether_core::backoff::{BackoffConfig, Jitter};
use tether_core::liveness::HeartbeatConfig;
use tether_transports::endpoint::TransportOptions;
use tether_transports::quic::{QuicClientOptions, QuicLiveness};
use tether_transports::tcp::{Keepalive, TcpOptions};
use tether_transports::tls::TlsClientOptions;
use tether_transports::udp::UdpOptions;
use tether_transports::{Endpoint, Scheme};

pub const HELP: &str = "\
tether probe: watch the lifecycle of a supervised connection to a server

Usage: tether probe [OPTIONS] URL

URL is tcp://HOST:PORT, tls://HOST:PORT, quic://HOST:PORT or udp://HOST:PORT.

Dials HOST:PORT, keeps the connection up (reconnecting with jittered
backoff) and prints every lifecycle event with its UTC time, the time since
start and the reason, until Ctrl-C or --for runs out. Then prints a summary.

Options:
      --for DUR               stop after this long (30s, 2m; a bare number is
                              seconds) [default: until Ctrl-C]
      --interval DUR          heartbeat: ping after this much silence [default: 1s]
      --timeout DUR           heartbeat: wait this long for a reply [default: 1s]
      --missed N              heartbeat: unanswered pings until dead [default: 3]
      --no-heartbeat          never send a ping nor tether's opening hello
                              (tcp:// and tls:// servers that do not speak
                              tether)
      --keepalive I,V,N       tcp, tls: kernel keepalive: idle, probe interval,
                              probes [default: 10s,5s,3]
      --no-keepalive          tcp, tls: leave kernel keepalive off
      --user-timeout DUR      tcp, tls: TCP_USER_TIMEOUT, Linux only [default: 30s]
      --ca FILE               tls, quic: trust the CA certificates in this PEM
                              file instead of the platform's roots
      --server-name NAME      tls, quic: the name to send (SNI) and to verify
                              the certificate against [default: the URL's host]
      --psk-hex HEX           udp: the server's pre-shared key, in hex (at
                              least 16 bytes). Required for udp://
      --backoff-initial DUR   first reconnect delay, before jitter [default: 100ms]
      --backoff-max DUR       cap of the reconnect delay [default: 5s]
      --json                  one JSON object per line instead of text
  -h, --help                  print this help

Heartbeats need a tether peer: a ping is a tether frame and only a tether
server answers it with a pong; likewise only a tether server answers the
hello that opens each connection (without the answer the attempt fails with
connect_timeout). Against any other TCP or TLS server use --no-heartbeat. Connects, refusals, orderly closes (peer_closed) and resets
are still reported at once; a peer that silently vanished is then found by
kernel keepalive (about idle + probes x interval on an idle connection) and
TCP_USER_TIMEOUT (while sent data is unacknowledged). A server that speaks
first in its own protocol (an SSH or SMTP banner) is reported as
protocol_error, because its bytes are not tether frames.

quic:// and udp:// peers are always tether servers; the heartbeat also sets
QUIC's keep-alive (the interval) and idle timeout (interval + missed x
timeout). The server certificate is always verified (tls, quic); a wrong
PSK shows as connect_timeout, since a UDP server never answers what it
cannot authenticate.

Exit status: 0 a connection was established at least once, 1 never
connected, 2 bad arguments or options the transport rejects (an unreadable
--ca file, say).
";

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub endpoint: Endpoint,
    pub run_for: Option<Duration>,
    pub heartbeat: Option<HeartbeatConfig>,
    /// Socket options of tcp:// and tls://.
    pub tcp: TcpOptions,
    /// tls://, quic://: CA file to trust instead of the platform roots.
    pub ca: Option<PathBuf>,
    /// tls://, quic://: the name to send and verify instead of the host.
    pub server_name: Option<String>,
    /// udp://: the pre-shared key.
    pub psk: Option<Vec<u8>>,
    pub backoff: BackoffConfig,
    pub json: bool,
}

impl ProbeOptions {
    /// The transport settings for [`tether_transports::endpoint::connector`].
    pub fn transport_options(&self) -> TransportOptions {
        let mut tls = TlsClientOptions::default();
        let mut quic = QuicClientOptions::default();
        if let Some(ca) = &self.ca {
            tls = tls.with_ca_file(ca);
            quic = quic.with_ca_file(ca);
        }
        if let Some(name) = &self.server_name {
            tls = tls.with_server_name(name);
            quic = quic.with_server_name(name);
        }
        quic = quic.with_liveness(self.quic_liveness());
        let options = TransportOptions {
            tcp: self.tcp,
            tls_client: tls,
            quic_client: quic,
            udp: UdpOptions::with_psk(self.psk.clone().unwrap_or_default()),
            ..TransportOptions::default()
        };
        match &self.heartbeat {
            Some(hb) => options.follow_heartbeat(hb),
            None => options,
        }
    }

    /// QUIC's keep-alive and idle timeout, from the heartbeat.
    pub fn quic_liveness(&self) -> QuicLiveness {
        self.heartbeat
            .map(|hb| QuicLiveness::from_heartbeat(&hb))
            .unwrap_or_default()
    }
}

pub enum Parsed {
    Help,
    Run(Box<ProbeOptions>),
}

pub fn parse(items: Vec<String>) -> Result<Parsed, UsageError> {
    let mut args = Args::new("probe", items);
    let mut endpoint = None;
    let mut run_for = None;
    let mut heartbeat = HeartbeatConfig::new(Duration::from_secs(1), Duration::from_secs(1), 3);
    let mut no_heartbeat = false;
    let mut tcp = TcpOptions::default();
    let mut backoff = BackoffConfig::default()
        .with_initial(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter(Jitter::Full)
        .with_min_connect_timeout(Duration::from_secs(5))
        .with_healthy_after(Duration::from_secs(2));
    let mut json = false;
    let mut ca = None;
    let mut server_name = None;
    let mut psk = None;
    // Flags that only some schemes understand, as given, for the check
    // once the URL is known.
    let mut stream_only: Option<String> = None;
    let mut tls_quic_only: Option<String> = None;
    while let Some(token) = args.next_token() {
        let (flag, inline) = match token {
            Token::Positional(p) if endpoint.is_none() => {
                endpoint = Some(parse_endpoint(&p).map_err(|e| args.error(e))?);
                continue;
            }
            Token::Positional(p) => return Err(args.error(format!("unexpected argument {p:?}"))),
            Token::Flag(flag, inline) => (flag, inline),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--for" => {
                let v = args.value(&flag, inline)?;
                let d = match v.parse::<f64>() {
                    Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
                        Duration::from_secs_f64(secs)
                    }
                    Ok(secs) if secs >= 1e9 => {
                        return Err(args.error(format!(
                            "--for {v:?}: too large (at most 999999999 seconds)"
                        )))
                    }
                    Ok(_) => return Err(args.error(format!("--for {v:?}: must be positive"))),
                    Err(_) => {
                        parse_duration(&v).map_err(|e| args.error(format!("--for {v:?}: {e}")))?
                    }
                };
                if d.is_zero() {
                    return Err(args.error("--for must be positive"));
                }
                run_for = Some(d);
            }
            "--interval" => heartbeat.interval = args.duration(&flag, inline)?,
            "--timeout" => heartbeat.timeout = args.duration(&flag, inline)?,
            "--missed" => heartbeat.max_missed = args.number(&flag, inline, 1, 255)?,
            "--no-heartbeat" => {
                args.no_value(&flag, inline)?;
                no_heartbeat = true;
            }
            "--keepalive" => {
                stream_only.get_or_insert(flag.clone());
                let v = args.value(&flag, inline)?;
                tcp.keepalive = Some(
                    parse_keepalive(&v)
                        .map_err(|e| args.error(format!("--keepalive {v:?}: {e}")))?,
                );
            }
            "--no-keepalive" => {
                stream_only.get_or_insert(flag.clone());
                args.no_value(&flag, inline)?;
                tcp.keepalive = None;
            }
            "--user-timeout" => {
                stream_only.get_or_insert(flag.clone());
                tcp.user_timeout = Some(args.duration(&flag, inline)?);
            }
            "--ca" => {
                tls_quic_only.get_or_insert(flag.clone());
                let v = args.value(&flag, inline)?;
                if v.is_empty() {
                    return Err(args.error("--ca needs a file name"));
                }
                ca = Some(PathBuf::from(v));
            }
            "--server-name" => {
                tls_quic_only.get_or_insert(flag.clone());
                let v = args.value(&flag, inline)?;
                if v.is_empty() || v.contains(char::is_whitespace) {
                    return Err(args.error(format!("--server-name {v:?}: not a host name")));
                }
                server_name = Some(v);
            }
            "--psk-hex" => {
                let v = args.value(&flag, inline)?;
                psk = Some(parse_hex(&v).map_err(|e| args.error(format!("--psk-hex: {e}")))?);
            }
            "--backoff-initial" => backoff.initial = args.duration(&flag, inline)?,
            "--backoff-max" => backoff.max_delay = args.duration(&flag, inline)?,
            "--json" => {
                args.no_value(&flag, inline)?;
                json = true;
            }
            _ => return Err(args.unknown(&flag)),
        }
    }
    let endpoint =
        endpoint.ok_or_else(|| args.error("missing the address, e.g. tcp://127.0.0.1:7000"))?;
    let scheme = endpoint.scheme;
    let url = scheme.as_str();
    let datagram = matches!(scheme, Scheme::Quic | Scheme::Udp);
    if let (true, Some(flag)) = (datagram, stream_only) {
        return Err(args.error(format!(
            "{flag} applies to tcp:// and tls:// only, not {url}://"
        )));
    }
    if let (Scheme::Tcp | Scheme::Udp, Some(flag)) = (scheme, tls_quic_only) {
        return Err(args.error(format!(
            "{flag} applies to tls:// and quic:// only, not {url}://"
        )));
    }
    match (scheme, &psk) {
        (Scheme::Udp, None) => {
            return Err(args.error(
                "udp:// needs --psk-hex HEX: the server's pre-shared key (at least 16 bytes)",
            ))
        }
        (Scheme::Udp, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(args.error(format!("--psk-hex applies to udp:// only, not {url}://")))
        }
    }
    if no_heartbeat && datagram {
        return Err(args.error(format!(
            "--no-heartbeat is for tcp:// and tls:// servers that do not speak tether; \
             a {url}:// peer always does"
        )));
    }
    let heartbeat = if no_heartbeat { None } else { Some(heartbeat) };
    if let Some(hb) = heartbeat {
        hb.validate().map_err(|e| args.error(e.to_string()))?;
    }
    tcp.validate().map_err(|e| args.error(e.to_string()))?;
    backoff.validate().map_err(|e| args.error(e.to_string()))?;
    let options = ProbeOptions {
        endpoint,
        run_for,
        heartbeat,
        tcp,
        ca,
        server_name,
        psk,
        backoff,
        json,
    };
    // Check what can be checked without touching files or sockets.
    let transport = options.transport_options();
    match scheme {
        Scheme::Udp => transport.udp.validate(),
        Scheme::Quic => options.quic_liveness().validate(),
        Scheme::Tcp | Scheme::Tls => Ok(()),
    }
    .map_err(|e| args.error(e.to_string()))?;
    Ok(Parsed::Run(Box::new(options)))
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let endpoint: Endpoint = s.parse().map_err(|e| format!("{e}"))?;
    if endpoint.port == 0 {
        return Err(format!("{s:?}: port 0 cannot be dialed"));
    }
    Ok(endpoint)
}

/// `00ff...` (an optional `0x` prefix, no separators) to bytes.
fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.is_empty() {
        return Err("empty key".into());
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "{} hex digits: expected two per byte",
            digits.len()
        ));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            let pair = digits.get(i..i + 2).ok_or("not hex")?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("{pair:?} is not a hex byte"))
        })
        .collect()
}

fn parse_keepalive(s: &str) -> Result<Keepalive, String> {
    let parts: Vec<&str> = s.split(',').collect();
    let [idle, interval, count] = parts[..] else {
        return Err("expected IDLE,INTERVAL,COUNT, e.g. 10s,5s,3".into());
    };
    Ok(Keepalive {
        idle: parse_duration(idle)?,
        interval: parse_duration(interval)?,
        count: count
            .trim()
            .parse()
            .map_err(|_| format!("{count:?} is not a probe count"))?,
    })
}

/// A heartbeat that never fires: tether's client always runs one, so
/// "off" is the longest interval the liveness rule accepts (7 days), longer
/// than a probe session.
pub fn silent_heartbeat() -> HeartbeatConfig {
    let day = Duration::from_secs(86_400);
    HeartbeatConfig::new(tether_core::limits::MAX_DURATION, day, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(v: &[&str]) -> Result<Parsed, UsageError> {
        parse(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn defaults_and_flags() {
        let Ok(Parsed::Run(o)) = parse_strs(&["tcp://127.0.0.1:7000"]) else {
            panic!()
        };
        assert_eq!(o.endpoint.port, 7000);
        assert_eq!(o.run_for, None);
        assert!(o.heartbeat.is_some());
        let Ok(Parsed::Run(o)) = parse_strs(&[
            "--for",
            "2.5",
            "--no-heartbeat",
            "--keepalive=2s,1s,4",
            "tcp://[::1]:9",
        ]) else {
            panic!()
        };
        assert_eq!(o.run_for, Some(Duration::from_millis(2500)));
        assert!(o.heartbeat.is_none());
        assert_eq!(o.tcp.keepalive.unwrap().count, 4);
        assert_eq!(o.endpoint.host, "::1");
        let Ok(Parsed::Run(o)) = parse_strs(&["--for", "1m", "tcp://localhost:1"]) else {
            panic!()
        };
        assert_eq!(o.run_for, Some(Duration::from_secs(60)));
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in [
            &[][..],
            &["127.0.0.1:7000"],
            &["udp://127.0.0.1:7000"],
            &["--psk-hex", "00112233", "udp://127.0.0.1:7000"],
            &["--psk-hex", "0011223", "udp://127.0.0.1:7000"],
            &[
                "--psk-hex",
                "zz112233445566778899aabbccddeeff",
                "udp://127.0.0.1:7000",
            ],
            &[
                "--psk-hex",
                "00112233445566778899aabbccddeeff",
                "tcp://127.0.0.1:7000",
            ],
            &["--ca", "ca.pem", "tcp://127.0.0.1:7000"],
            &["--server-name", "", "tls://127.0.0.1:7000"],
            &["--keepalive", "1s,1s,1", "quic://127.0.0.1:7000"],
            &[
                "--no-heartbeat",
                "--psk-hex",
                "00112233445566778899aabbccddeeff",
                "udp://h:1",
            ],
            &["sctp://127.0.0.1:7000"],
            &["tcp://127.0.0.1:0"],
            &["tcp://127.0.0.1:70000"],
            &["tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001"],
            &["--for", "0", "tcp://127.0.0.1:7000"],
            &["--for", "-1", "tcp://127.0.0.1:7000"],
            &["--for", "1e300", "tcp://127.0.0.1:7000"],
            &["--interval", "200h", "tcp://127.0.0.1:7000"],
            &["--timeout", "9999999h", "tcp://127.0.0.1:7000"],
            &["--backoff-max", "200h", "tcp://127.0.0.1:7000"],
            &["--missed", "256", "tcp://127.0.0.1:7000"],
            &["--keepalive", "1s,1s", "tcp://127.0.0.1:7000"],
            &["--keepalive", "0s,1s,1", "tcp://127.0.0.1:7000"],
            &["--missed", "0", "tcp://127.0.0.1:7000"],
            &["--wat", "tcp://127.0.0.1:7000"],
        ] {
            assert!(parse_strs(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn every_scheme_is_accepted_with_its_flags() {
        let Ok(Parsed::Run(o)) = parse_strs(&[
            "--psk-hex",
            "0x00112233445566778899AABBCCDDEEFF",
            "udp://127.0.0.1:7000",
        ]) else {
            panic!()
        };
        assert_eq!(o.psk.as_deref().map(<[u8]>::len), Some(16));
        assert_eq!(o.psk.unwrap()[15], 0xff);
        let Ok(Parsed::Run(o)) = parse_strs(&[
            "--ca",
            "ca.pem",
            "--server-name=example.test",
            "tls://127.0.0.1:7443",
        ]) else {
            panic!()
        };
        assert_eq!(o.ca, Some(PathBuf::from("ca.pem")));
        let t = o.transport_options();
        assert_eq!(t.tls_client.server_name.as_deref(), Some("example.test"));
        let Ok(Parsed::Run(o)) = parse_strs(&["--interval", "2s", "quic://[::1]:7443"]) else {
            panic!()
        };
        assert_eq!(o.quic_liveness().keep_alive, Some(Duration::from_secs(2)));
    }

    #[test]
    fn the_silent_heartbeat_is_valid() {
        assert_eq!(silent_heartbeat().validate(), Ok(()));
    }
}
