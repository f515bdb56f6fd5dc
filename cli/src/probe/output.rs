//! What `tether probe` prints: one line (or JSON object) per event, and
//! a closing summary.

use crate::drill::{event_json, event_text};
use crate::fmt;
use crate::json::Json;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;

/// Counts what happened, for the closing summary.
#[derive(Default)]
pub struct Tally {
    pub connected: u32,
    disconnects: BTreeMap<&'static str, u32>,
    failed: BTreeMap<&'static str, u32>,
    /// The last failure's reason and detail, for the summary.
    last_failure: Option<String>,
    pub messages: u64,
}

impl Tally {
    pub fn add(&mut self, e: &Lifecycle) {
        match *e {
            Lifecycle::Connected { .. } => self.connected += 1,
            Lifecycle::Disconnected { reason, .. } => {
                *self.disconnects.entry(reason.as_str()).or_default() += 1
            }
            // An attempt cut short by the probe's own end (`--for`) did not
            // fail.
            Lifecycle::ConnectFailed {
                reason: DisconnectReason::ClosedLocally,
                ..
            } => {}
            Lifecycle::ConnectFailed { reason, .. } => {
                *self.failed.entry(reason.as_str()).or_default() += 1
            }
            _ => {}
        }
        if let Some((reason, detail)) = e.cause() {
            if reason != DisconnectReason::ClosedLocally {
                self.last_failure = Some(format!("{reason}: {detail}"));
            }
        }
    }

    pub fn text(&self, elapsed: Duration) -> String {
        let list = |m: &BTreeMap<&str, u32>| {
            let n: u32 = m.values().sum();
            let detail: Vec<String> = m.iter().map(|(r, n)| format!("{r} x{n}")).collect();
            if n == 0 {
                "0".to_string()
            } else {
                format!("{n} ({})", detail.join(", "))
            }
        };
        let last = self
            .last_failure
            .as_ref()
            .map_or(String::new(), |f| format!("; last failure: {f}"));
        format!(
            "summary: {} connections, disconnects {}, failed attempts {}, {} messages, over {}{last}",
            self.connected,
            list(&self.disconnects),
            list(&self.failed),
            self.messages,
            fmt::duration(elapsed)
        )
    }

    pub fn json(&self, elapsed: Duration) -> Json {
        let map = |m: &BTreeMap<&'static str, u32>| {
            Json::Obj(
                m.iter()
                    .map(|(r, n)| (*r, Json::Int((*n).into())))
                    .collect(),
            )
        };
        Json::obj([(
            "summary",
            Json::obj([
                ("connections", Json::Int(self.connected.into())),
                ("disconnects", map(&self.disconnects)),
                ("failed_attempts", map(&self.failed)),
                ("messages", Json::Int(self.messages as i64)),
                ("elapsed_ms", Json::ms(Some(elapsed))),
                (
                    "last_failure",
                    self.last_failure
                        .as_ref()
                        .map_or(Json::Null, |f| Json::str(f.as_str())),
                ),
            ]),
        )])
    }
}

pub struct Printer {
    pub start: Instant,
    json: bool,
    /// When each generation started dialing / came up.
    dial_started: Option<Instant>,
    up_since: Option<Instant>,
}

impl Printer {
    /// Text lines, or JSON objects when `json`.
    pub fn new(json: bool) -> Self {
        Self {
            start: Instant::now(),
            json,
            dial_started: None,
            up_since: None,
        }
    }

    pub fn emit(&self, text: String) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    pub fn event(&mut self, e: &Lifecycle) {
        let now = Instant::now();
        let elapsed = now - self.start;
        if self.json {
            let mut obj = event_json(Some(elapsed), e);
            if let Json::Obj(fields) = &mut obj {
                fields.insert(0, ("time", Json::str(fmt::utc(SystemTime::now()))));
            }
            self.emit(obj.to_string());
        }
        let detail = match *e {
            Lifecycle::Connecting {
                generation,
                attempt,
            } => {
                self.dial_started = Some(now);
                format!("gen {generation}, attempt {attempt}")
            }
            Lifecycle::Connected { generation, .. } => {
                self.up_since = Some(now);
                let took = self.dial_started.map(|t| now - t).unwrap_or_default();
                format!("gen {generation}, dial took {}", fmt::duration(took))
            }
            Lifecycle::ConnectFailed {
                generation,
                attempt,
                reason,
                ref detail,
            } => format!("gen {generation}, attempt {attempt}: {reason}: {detail}"),
            Lifecycle::Disconnected {
                generation,
                reason,
                ref detail,
            } => {
                let up = self.up_since.take().map(|t| now - t).unwrap_or_default();
                format!(
                    "gen {generation}: {reason}: {detail}, was up {}",
                    fmt::duration(up)
                )
            }
            Lifecycle::Waiting { attempt, delay } => {
                format!("{} before attempt {attempt}", fmt::duration(delay))
            }
            Lifecycle::Closed => "stopped on request".into(),
            Lifecycle::GaveUp { reason, ref detail } => {
                format!("last failure: {reason}: {detail}")
            }
        };
        if !self.json {
            self.emit(format!(
                "{}  {:>9}  {:<14}  {detail}",
                fmt::utc(SystemTime::now()),
                format!("+{:.3}s", elapsed.as_secs_f64()),
                event_text(e).split('#').next().unwrap_or_default(),
            ));
        }
    }

    /// The client failed inside tether (a panic): reported, never silent.
    pub fn failed(&self, cause: &tether_core::Cause) {
        let elapsed = self.start.elapsed();
        if self.json {
            self.emit(
                Json::obj([
                    ("time", Json::str(fmt::utc(SystemTime::now()))),
                    ("event", Json::str("failed")),
                    ("at_ms", Json::ms(Some(elapsed))),
                    ("reason", Json::str(cause.reason.as_str())),
                    ("detail", Json::str(cause.detail.as_str())),
                ])
                .to_string(),
            );
        } else {
            self.emit(format!(
                "{}  {:>9}  {:<14}  {cause}",
                fmt::utc(SystemTime::now()),
                format!("+{:.3}s", elapsed.as_secs_f64()),
                "failed"
            ));
        }
    }

    pub fn message(&self, len: usize) {
        let elapsed = self.start.elapsed();
        if self.json {
            self.emit(
                Json::obj([
                    ("time", Json::str(fmt::utc(SystemTime::now()))),
                    ("event", Json::str("message")),
                    ("at_ms", Json::ms(Some(elapsed))),
                    ("bytes", Json::Int(len as i64)),
                ])
                .to_string(),
            );
        } else {
            self.emit(format!(
                "{}  {:>9}  {:<14}  {len} bytes",
                fmt::utc(SystemTime::now()),
                format!("+{:.3}s", elapsed.as_secs_f64()),
                "message"
            ));
        }
    }
}
