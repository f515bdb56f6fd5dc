//! `tether drill` options: short built-in timings so that a full drill
//! takes seconds, each adjustable by a flag.

use super::faults::FaultKind;
use crate::args::{Args, Token, UsageError};
use std::time::Duration;
use tether_core::backoff::{BackoffConfig, Jitter};
use tether_core::liveness::HeartbeatConfig;

pub const HELP: &str = "\
tether drill: break connections on purpose and check that tether notices and recovers

Usage: tether drill [OPTIONS]

Starts, in this process and on loopback only, a supervised tether server, a
fault-injecting proxy in front of it and several supervised clients dialing
the proxy. Then injects one fault after another:

  close      the proxy closes every connection with FIN   expect peer_closed
  reset      the proxy resets every connection (RST)      expect reset
  blackhole  the proxy drops all traffic, sockets open    expect timeout
  restart    the server is dropped and started again on   expect peer_closed
             a new port; the proxy is pointed at it       or reset

For each fault it measures, per client, the time from the fault to the
client's `disconnected` event and to its next `connected` event, checks the
reason, checks the detection time against the heartbeat's detection bound
(interval + missed x timeout) plus a margin, and checks that every lifecycle
event came exactly once per generation and in order. Prints a table per
fault and exits with 0 if every check passed, 1 if any failed.

Options:
      --clients N            supervised clients [default: 4]
      --faults LIST          faults to inject, in order, comma-separated
                             [default: close,reset,blackhole,restart]
      --interval DUR         heartbeat: ping after this much silence [default: 200ms]
      --timeout DUR          heartbeat: wait this long for a reply [default: 200ms]
      --missed N             heartbeat: unanswered pings until dead [default: 2]
      --backoff-initial DUR  first reconnect delay, before jitter [default: 50ms]
      --backoff-max DUR      cap of the reconnect delay [default: 1s]
      --multiplier X         backoff growth per failed attempt [default: 2]
      --healthy-after DUR    uptime that resets the backoff [default: 200ms]
      --margin DUR           lateness tolerated beyond the bound [default: 300ms]
      --seed N               seed the jitter (reproducible delays)
      --json                 print the report as JSON on stdout (progress goes
                             to stderr)
  -h, --help                 print this help

Durations take a unit: 250ms, 1.5s, 2m.

Exit status: 0 all checks passed, 1 a check failed or the drill could not
run, 2 bad arguments.
";

/// Everything a drill run needs to know.
#[derive(Debug, Clone)]
pub struct DrillOptions {
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
            clients: 4,
            faults: FaultKind::ALL.to_vec(),
            heartbeat: HeartbeatConfig::new(
                Duration::from_millis(200),
                Duration::from_millis(200),
                2,
            ),
            backoff: BackoffConfig::default()
                .with_initial(Duration::from_millis(50))
                .with_multiplier(2.0)
                .with_max_delay(Duration::from_secs(1))
                .with_jitter(Jitter::Full)
                .with_min_connect_timeout(Duration::from_secs(1))
                .with_healthy_after(Duration::from_millis(200)),
            margin: Duration::from_millis(300),
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
        assert_eq!(o.clients, 4);
        assert_eq!(o.faults, FaultKind::ALL);
        assert_eq!(o.heartbeat.detection_bound(), Duration::from_millis(600));
    }

    #[test]
    fn flags_set_options() {
        let Ok(Parsed::Run(o)) = parse_strs(&[
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
