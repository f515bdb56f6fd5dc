//! `tether drill` options: short built-in timings so that a full drill
//! takes seconds, each adjustable by a flag.

use super::faults::FaultKind;
use super::transport;
use crate::args::{Args, Token, UsageError};
use std::time::Duration;
use tether_core::backoff::{BackoffConfig, Jitter};
use tether_core::liveness::HeartbeatConfig;
use tether_transports::Scheme;

pub const HELP: &str = "\
tether drill: break connections on purpose and check that tether notices and recovers

Usage: tether drill [OPTIONS]

For each transport in turn (tcp, tls, quic, udp), starts in this process
and on loopback only a supervised tether server, a fault-injecting proxy in
front of it and several supervised clients dialing the proxy; tls and quic
use a self-signed certificate and udp a random pre-shared key, generated at
run time. Then injects one fault after another:

  close      tcp, tls: the proxy closes every connection   tcp:  peer_closed
             with FIN                                      tls:  reset (FIN
                                                           without close_notify)
             quic, udp: the server closes every            peer_closed
             connection (Server::close)
  reset      tcp, tls: the proxy resets every connection   reset
             (RST); skipped on quic and udp, which have
             no RST
  blackhole  the proxy drops all traffic, sockets open     timeout
  restart    the server is dropped and a new one started.  tcp, tls: peer_closed
             tcp, tls: on a new port, the proxy is         or reset
             pointed at it. quic, udp: on the same port,   quic, udp: reset, from
             same reset key, while the proxy swallows the  the new server's
             old server's goodbyes (a crash)               verified reset signal

For each fault it measures, per client, the time from the fault to the
client's `disconnected` event and to its next `connected` event, checks the
reason, checks the detection time against the heartbeat's detection bound
(interval + missed x timeout) plus a margin, and checks that every lifecycle
event came exactly once per generation and in order. Prints a table per
fault and transport, a summary line per transport, and exits with 0 if
every check passed, 1 if any failed.

Options:
      --transport LIST       transports to drill, in order, comma-separated
                             [default: tcp,tls,quic,udp]
      --clients N            supervised clients per transport [default: 4]
      --faults LIST          faults to inject, in order, comma-separated
                             [default: close,reset,blackhole,restart]
      --interval DUR         heartbeat: ping after this much silence [default: 200ms]
      --timeout DUR          heartbeat: wait this long for a reply [default: 300ms]
      --missed N             heartbeat: unanswered pings until dead [default: 3]
      --backoff-initial DUR  first reconnect delay, before jitter [default: 50ms]
      --backoff-max DUR      cap of the reconnect delay [default: 1s]
      --multiplier X         backoff growth per failed attempt [default: 2]
      --healthy-after DUR    uptime that resets the backoff [default: 200ms]
      --margin DUR           lateness tolerated beyond the bound [default: 500ms]
      --seed N               seed the jitter (reproducible delays)
      --json                 print the report as JSON on stdout (progress goes
                             to stderr)
  -h, --help                 print this help

The heartbeat also sets QUIC's keep-alive (the interval) and idle timeout
(the detection bound). Durations take a unit: 250ms, 1.5s, 2m.

Exit status: 0 all checks passed, 1 a check failed or the drill could not
run, 2 bad arguments.
";

/// Everything a drill run needs to know.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub transports: Vec<Scheme>,
    pub clients: usize,
    pub faults: Vec<FaultKind>,
    pub heartbeat: HeartbeatConfig,
    pub backoff: BackoffConfig,
    pub margin: Duration,
    pub seed: Option<u64>,
    pub json: bool,
}

impl Default for DrillOptions {
    fn default() -> Self {
        Self {
            transports: transport::ALL.to_vec(),
            clients: 4,
            faults: FaultKind::ALL.to_vec(),
            // Detection bound 1.1 s: slack enough for a restarted datagram
            // server to come back (same port) and answer before any
            // heartbeat verdict, even on a loaded machine.
            heartbeat: HeartbeatConfig::new(
                Duration::from_millis(200),
                Duration::from_millis(300),
                3,
            ),
            backoff: BackoffConfig::default()
                .with_initial(Duration::from_millis(50))
                .with_multiplier(2.0)
                .with_max_delay(Duration::from_secs(1))
                .with_jitter(Jitter::Full)
                // QUIC retransmits a lost first Initial only after about
                // 1 s (initial RTT estimate 333 ms): a shorter attempt would
                // abandon handshakes the server already began, and quinn
                // keeps those (and the server's port) for seconds.
                .with_min_connect_timeout(Duration::from_secs(3))
                .with_healthy_after(Duration::from_millis(200)),
            margin: Duration::from_millis(500),
            seed: None,
            json: false,
        }
    }
}

/// What the command line asked for.
pub enum Parsed {
    Help,
    Run(Box<DrillOptions>),
}

pub fn parse(items: Vec<String>) -> Result<Parsed, UsageError> {
    let mut args = Args::new("drill", items);
    let mut o = DrillOptions::default();
    while let Some(token) = args.next_token() {
        let (flag, inline) = match token {
            Token::Flag(flag, inline) => (flag, inline),
            Token::Positional(p) => {
                return Err(args.error(format!("unexpected argument {p:?}")));
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--transport" | "--transports" => {
                let list = args.value(&flag, inline)?;
                o.transports = transport::parse_list(&list)
                    .map_err(|e| args.error(format!("--transport: {e}")))?;
            }
            "--clients" => o.clients = args.number(&flag, inline, 1, 256)?,
            "--faults" => {
                let list = args.value(&flag, inline)?;
                o.faults = parse_faults(&list).map_err(|e| args.error(format!("--faults: {e}")))?;
            }
            "--interval" => o.heartbeat.interval = args.duration(&flag, inline)?,
            "--timeout" => o.heartbeat.timeout = args.duration(&flag, inline)?,
            "--missed" => o.heartbeat.max_missed = args.number(&flag, inline, 1, 255)?,
            "--backoff-initial" => o.backoff.initial = args.duration(&flag, inline)?,
            "--backoff-max" => o.backoff.max_delay = args.duration(&flag, inline)?,
            "--multiplier" => o.backoff.multiplier = args.number(&flag, inline, 1.0, 100.0)?,
            "--healthy-after" => o.backoff.healthy_after = args.duration(&flag, inline)?,
            "--margin" => o.margin = args.duration(&flag, inline)?,
            "--seed" => o.seed = Some(args.number(&flag, inline, 0, u64::MAX)?),
            "--json" => {
                args.no_value(&flag, inline)?;
                o.json = true;
            }
            _ => return Err(args.unknown(&flag)),
        }
    }
    // The drill must finish in seconds: refuse timings that cannot.
    let slow = Duration::from_secs(10);
    if o.heartbeat.detection_bound() > slow {
        return Err(args.error(format!(
            "the detection bound (interval + missed x timeout) must be at most {}s for a drill",
            slow.as_secs()
        )));
    }
    if o.backoff.max_delay > slow {
        return Err(args.error("--backoff-max must be at most 10s for a drill"));
    }
    o.heartbeat
        .validate()
        .and_then(|()| o.backoff.validate())
        .map_err(|e| args.error(e.to_string()))?;
    Ok(Parsed::Run(Box::new(o)))
}

fn parse_faults(list: &str) -> Result<Vec<FaultKind>, String> {
    let faults = list
        .split(',')
        .map(|name| {
            FaultKind::from_key(name.trim()).ok_or_else(|| {
                format!("unknown fault {name:?} (expected close, reset, blackhole or restart)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(v: &[&str]) -> Result<Parsed, UsageError> {
        parse(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn defaults_need_no_arguments() {
        let Ok(Parsed::Run(o)) = parse_strs(&[]) else {
            panic!()
        };
        assert_eq!(o.transports, transport::ALL);
        assert_eq!(o.clients, 4);
        assert_eq!(o.faults, FaultKind::ALL);
        assert_eq!(o.heartbeat.detection_bound(), Duration::from_millis(1100));
    }

    #[test]
    fn flags_set_options() {
        let Ok(Parsed::Run(o)) = parse_strs(&[
            "--transport=udp,tcp",
            "--clients=2",
            "--faults",
            "reset,blackhole",
            "--interval",
            "100ms",
            "--missed",
            "3",
            "--seed",
            "9",
            "--json",
        ]) else {
            panic!()
        };
        assert_eq!(o.transports, vec![Scheme::Udp, Scheme::Tcp]);
        assert_eq!(o.clients, 2);
        assert_eq!(o.faults, vec![FaultKind::Reset, FaultKind::BlackHole]);
        assert_eq!(o.heartbeat.interval, Duration::from_millis(100));
        assert_eq!(o.heartbeat.max_missed, 3);
        assert_eq!(o.seed, Some(9));
        assert!(o.json);
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in [
            &["--clients", "0"][..],
            &["--clients"],
            &["--faults", "meteor"],
            &["--transport", "sctp"],
            &["--transport", "tcp,tcp"],
            &["--transport"],
            &["--interval", "5"],
            &["--timeout", "0ms"],
            &["--backoff-initial", "2s", "--backoff-max", "1s"],
            &["--interval", "1h"],
            &["--json=yes"],
            &["--frobnicate"],
            &["extra"],
        ] {
            assert!(parse_strs(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
