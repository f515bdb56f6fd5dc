//! `tether probe` options: the address, how long, and the liveness
//! settings (heartbeat, kernel keepalive, backoff).

use crate::args::{parse_duration, Args, Token, UsageError};
use std::time::Duration;
use tether_core::backoff::{BackoffConfig, Jitter};
use tether_core::liveness::HeartbeatConfig;
use tether_transports::tcp::{Keepalive, TcpOptions};
use tether_transports::{Endpoint, Scheme};

pub const HELP: &str = "\
tether probe: watch the lifecycle of a supervised connection to a TCP server

Usage: tether probe [OPTIONS] tcp://HOST:PORT

Dials HOST:PORT, keeps the connection up (reconnecting with jittered
backoff) and prints every lifecycle event with its UTC time, the time since
start and the reason, until Ctrl-C or --for runs out. Then prints a summary.

Options:
      --for DUR               stop after this long (30s, 2m; a bare number is
                              seconds) [default: until Ctrl-C]
      --interval DUR          heartbeat: ping after this much silence [default: 1s]
      --timeout DUR           heartbeat: wait this long for a reply [default: 1s]
      --missed N              heartbeat: unanswered pings until dead [default: 3]
      --no-heartbeat          never send a ping (for servers that do not speak tether)
      --keepalive I,V,N       kernel keepalive: idle, probe interval, probes
                              [default: 10s,5s,3]
      --no-keepalive          leave kernel keepalive off
      --user-timeout DUR      TCP_USER_TIMEOUT, Linux only [default: 30s]
      --backoff-initial DUR   first reconnect delay, before jitter [default: 100ms]
      --backoff-max DUR       cap of the reconnect delay [default: 5s]
      --json                  one JSON object per line instead of text
  -h, --help                  print this help

Heartbeats need a tether peer: a ping is a tether frame and only a tether
server answers it with a pong. Against any other TCP server use
--no-heartbeat. Connects, refusals, orderly closes (peer_closed) and resets
are still reported at once; a peer that silently vanished is then found by
kernel keepalive (about idle + probes x interval on an idle connection) and
TCP_USER_TIMEOUT (while sent data is unacknowledged). A server that speaks
first in its own protocol (an SSH or SMTP banner) is reported as
protocol_error, because its bytes are not tether frames.

Exit status: 0 a connection was established at least once, 1 never
connected, 2 bad arguments.
";

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub endpoint: Endpoint,
    pub run_for: Option<Duration>,
    pub heartbeat: Option<HeartbeatConfig>,
    pub tcp: TcpOptions,
    pub backoff: BackoffConfig,
    pub json: bool,
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
                let v = args.value(&flag, inline)?;
                tcp.keepalive = Some(
                    parse_keepalive(&v)
                        .map_err(|e| args.error(format!("--keepalive {v:?}: {e}")))?,
                );
            }
            "--no-keepalive" => {
                args.no_value(&flag, inline)?;
                tcp.keepalive = None;
            }
            "--user-timeout" => tcp.user_timeout = Some(args.duration(&flag, inline)?),
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
    let heartbeat = if no_heartbeat { None } else { Some(heartbeat) };
    if let Some(hb) = heartbeat {
        hb.validate().map_err(|e| args.error(e.to_string()))?;
    }
    tcp.validate().map_err(|e| args.error(e.to_string()))?;
    backoff.validate().map_err(|e| args.error(e.to_string()))?;
    Ok(Parsed::Run(Box::new(ProbeOptions {
        endpoint,
        run_for,
        heartbeat,
        tcp,
        backoff,
        json,
    })))
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let endpoint: Endpoint = s.parse().map_err(|e| format!("{e}"))?;
    if endpoint.scheme != Scheme::Tcp {
        return Err(format!(
            "probe speaks tcp:// only for now, not {}://",
            endpoint.scheme.as_str()
        ));
    }
    if endpoint.port == 0 {
        return Err(format!("{s:?}: port 0 cannot be dialed"));
    }
    Ok(endpoint)
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
/// "off" is an interval longer than any probe session (the longest the
/// liveness rule accepts is just under 49 days in total).
pub fn silent_heartbeat() -> HeartbeatConfig {
    let day = Duration::from_secs(86_400);
    HeartbeatConfig::new(day * 40, day, 1)
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
            &["tcp://127.0.0.1:0"],
            &["tcp://127.0.0.1:70000"],
            &["tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001"],
            &["--for", "0", "tcp://127.0.0.1:7000"],
            &["--for", "-1", "tcp://127.0.0.1:7000"],
            &["--keepalive", "1s,1s", "tcp://127.0.0.1:7000"],
            &["--keepalive", "0s,1s,1", "tcp://127.0.0.1:7000"],
            &["--missed", "0", "tcp://127.0.0.1:7000"],
            &["--wat", "tcp://127.0.0.1:7000"],
        ] {
            assert!(parse_strs(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn the_silent_heartbeat_is_valid() {
        assert_eq!(silent_heartbeat().validate(), Ok(()));
    }
}
