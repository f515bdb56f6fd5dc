//! The drill's verdict, as tables for people or JSON for machines.

use super::faults::FaultKind;
use super::options::DrillOptions;
use super::phase::PhaseReport;
use super::transport::is_datagram;
use crate::fmt;
use crate::json::Json;
use crate::table::Table;
use std::collections::BTreeMap;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::Scheme;

/// The drill over one transport.
pub struct TransportReport {
    pub scheme: Scheme,
    pub phases: Vec<PhaseReport>,
    /// Faults that do not apply to this transport, and why.
    pub skipped: Vec<(FaultKind, &'static str)>,
    /// Failed checks outside any fault: startup and the final close.
    pub other_problems: Vec<String>,
    pub elapsed: Duration,
}

impl TransportReport {
    pub fn ok(&self) -> bool {
        self.other_problems.is_empty() && self.phases.iter().all(PhaseReport::ok)
    }

    /// (passed, total) client checks.
    fn counts(&self) -> (usize, usize) {
        let outcomes = self.phases.iter().flat_map(|p| &p.clients);
        let total = outcomes.clone().count();
        let passed = outcomes.filter(|c| c.problems.is_empty()).count();
        (passed, total)
    }

    fn text(&self) -> String {
        let name = self.scheme.as_str();
        let proxy = if is_datagram(self.scheme) {
            "UDP fault proxy (datagrams: no FIN, no RST; restarts keep the port)"
        } else {
            "TCP fault proxy"
        };
        let mut out = format!("\n######## {name}:// ########  {proxy}\n");
        for phase in &self.phases {
            out.push('\n');
            out.push_str(&phase_text(phase));
        }
        for (fault, why) in &self.skipped {
            out.push_str(&format!(
                "\n== {name}: {} ==  skipped: {why}\n",
                fault.title()
            ));
        }
        if !self.other_problems.is_empty() {
            out.push_str(&format!("\n{name}: outside the faults:\n"));
            for p in &self.other_problems {
                out.push_str(&format!("  FAIL: {p}\n"));
            }
        }
        out
    }

    /// One summary line.
    fn summary(&self, clients: usize) -> String {
        let (passed, total) = self.counts();
        let skipped = if self.skipped.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = self.skipped.iter().map(|(f, _)| f.key()).collect();
            format!(" ({} skipped)", names.join(", "))
        };
        format!(
            "{:<5} {}: {} faults{skipped} x {clients} clients, {passed}/{total} client checks \
             passed; lifecycle streams {} ({})",
            self.scheme.as_str(),
            if self.ok() { "PASS" } else { "FAIL" },
            self.phases.len(),
            if self.other_problems.is_empty() {
                "ordered, each closed exactly once"
            } else {
                "NOT clean"
            },
            fmt::duration(self.elapsed),
        )
    }

    fn json(&self) -> Json {
        let (passed, total) = self.counts();
        Json::obj([
            ("transport", Json::str(self.scheme.as_str())),
            ("ok", Json::Bool(self.ok())),
            ("checks_passed", Json::Int(passed as i64)),
            ("checks_total", Json::Int(total as i64)),
            ("elapsed_ms", Json::ms(Some(self.elapsed))),
            (
                "phases",
                Json::Arr(self.phases.iter().map(phase_json).collect()),
            ),
            (
                "skipped",
                Json::Arr(
                    self.skipped
                        .iter()
                        .map(|(f, why)| {
                            Json::obj([("fault", Json::str(f.key())), ("why", Json::str(*why))])
                        })
                        .collect(),
                ),
            ),
            (
                "other_problems",
                Json::Arr(self.other_problems.iter().map(Json::str).collect()),
            ),
        ])
    }
}

pub struct DrillReport {
    pub sections: Vec<TransportReport>,
    pub elapsed: Duration,
}

impl DrillReport {
    pub fn ok(&self) -> bool {
        self.sections.iter().all(TransportReport::ok)
    }

    fn counts(&self) -> (usize, usize) {
        self.sections
            .iter()
            .map(TransportReport::counts)
            .fold((0, 0), |(p, t), (p2, t2)| (p + p2, t + t2))
    }

    pub fn text(&self, opts: &DrillOptions) -> String {
        let mut out = String::new();
        for section in &self.sections {
            out.push_str(&section.text());
        }
        out.push_str("\nsummary:\n");
        for section in &self.sections {
            out.push_str(&format!("  {}\n", section.summary(opts.clients)));
        }
        let (passed, total) = self.counts();
        let failed: Vec<&str> = self
            .sections
            .iter()
            .filter(|s| !s.ok())
            .map(|s| s.scheme.as_str())
            .collect();
        let verdict = if failed.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL ({})", failed.join(", "))
        };
        out.push_str(&format!(
            "result: {verdict}: {} transports, {passed}/{total} client checks passed ({})\n",
            self.sections.len(),
            fmt::duration(self.elapsed),
        ));
        out
    }

    pub fn json(&self, opts: &DrillOptions) -> Json {
        let (passed, total) = self.counts();
        let hb = &opts.heartbeat;
        let bo = &opts.backoff;
        Json::obj([
            ("ok", Json::Bool(self.ok())),
            ("checks_passed", Json::Int(passed as i64)),
            ("checks_total", Json::Int(total as i64)),
            ("elapsed_ms", Json::ms(Some(self.elapsed))),
            (
                "config",
                Json::obj([
                    (
                        "transports",
                        Json::Arr(
                            opts.transports
                                .iter()
                                .map(|s| Json::str(s.as_str()))
                                .collect(),
                        ),
                    ),
                    ("clients", Json::Int(opts.clients as i64)),
                    ("heartbeat_interval_ms", Json::ms(Some(hb.interval))),
                    ("heartbeat_timeout_ms", Json::ms(Some(hb.timeout))),
                    ("heartbeat_max_missed", Json::Int(hb.max_missed.into())),
                    ("detection_bound_ms", Json::ms(Some(hb.detection_bound()))),
                    ("margin_ms", Json::ms(Some(opts.margin))),
                    ("backoff_initial_ms", Json::ms(Some(bo.initial))),
                    ("backoff_multiplier", Json::Num(bo.multiplier)),
                    ("backoff_max_ms", Json::ms(Some(bo.max_delay))),
                    ("healthy_after_ms", Json::ms(Some(bo.healthy_after))),
                    (
                        "seed",
                        opts.seed.map_or(Json::Null, |s| Json::str(s.to_string())),
                    ),
                ]),
            ),
            (
                "transports",
                Json::Arr(self.sections.iter().map(TransportReport::json).collect()),
            ),
        ])
    }
}

fn phase_text(p: &PhaseReport) -> String {
    let mut out = format!(
        "== {}: {} ==  expect {}; detection bound {} + {} margin\n   why: {}\n",
        p.scheme.as_str(),
        p.fault.title(),
        p.fault.expected_text(p.scheme),
        fmt::duration(p.bound),
        fmt::duration(p.margin),
        p.fault.why(p.scheme),
    );
    out.push_str(&format!(
        "   {}; server saw {}\n   times count from the fault; `reconnected` is when the connection that stayed up came up\n\n",
        p.injected,
        server_text(&p.server_closed)
    ));
    let mut table = Table::new([
        "client",
        "gen",
        "detected",
        "reason",
        "why",
        "reconnected",
        "events",
        "check",
    ]);
    for c in &p.clients {
        let gen = |g: Option<u64>| g.map_or("-".to_string(), |g| g.to_string());
        let time = |d: Option<Duration>| d.map_or("-".to_string(), fmt::duration);
        let events: Vec<String> = c.events.iter().map(|(_, e)| event_text(e)).collect();
        let check = if c.problems.is_empty() {
            "ok".to_string()
        } else {
            format!("FAIL: {}", c.problems.join("; "))
        };
        table.row(vec![
            c.client.to_string(),
            format!("{}→{}", gen(c.generation_before), gen(c.generation_after)),
            time(c.detect),
            c.reason.map_or("-", DisconnectReason::as_str).to_string(),
            c.detail.as_deref().map_or("-".to_string(), short_detail),
            time(c.reconnect),
            events.join(" "),
            check,
        ]);
    }
    out.push_str(&table.render("  "));
    out
}

/// A detail cut to table width (whole text in `--json`).
fn short_detail(detail: &str) -> String {
    const MAX: usize = 48;
    if detail.chars().count() <= MAX {
        detail.to_string()
    } else {
        let cut: String = detail.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

fn server_text(reasons: &[DisconnectReason]) -> String {
    if reasons.is_empty() {
        return "no connection end".into();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let detail: Vec<String> = counts.iter().map(|(r, n)| format!("{r} x{n}")).collect();
    format!("{} connections end ({})", reasons.len(), detail.join(", "))
}

/// `connecting#2`, `disconnected#1`, `connect_failed#3:connect_refused`.
pub fn event_text(e: &Lifecycle) -> String {
    match *e {
        Lifecycle::Connecting { generation, .. } => format!("connecting#{generation}"),
        Lifecycle::Connected { generation, .. } => format!("connected#{generation}"),
        Lifecycle::ConnectFailed {
            generation, reason, ..
        } => format!("connect_failed#{generation}:{reason}"),
        Lifecycle::Disconnected { generation, .. } => format!("disconnected#{generation}"),
        Lifecycle::Waiting { .. } => "waiting".into(),
        Lifecycle::Closed => "closed".into(),
        Lifecycle::GaveUp { reason, .. } => format!("gave_up:{reason}"),
    }
}

/// One event as a JSON object (failures with their `reason` and `detail`).
pub fn event_json(at: Option<Duration>, e: &Lifecycle) -> Json {
    let mut fields = vec![("event", Json::str(e.name()))];
    if at.is_some() {
        fields.push(("at_ms", Json::ms(at)));
    }
    match e {
        Lifecycle::Connecting {
            generation,
            attempt,
        }
        | Lifecycle::Connected {
            generation,
            attempt,
        } => {
            fields.push(("generation", Json::Int(*generation as i64)));
            fields.push(("attempt", Json::Int((*attempt).into())));
        }
        Lifecycle::ConnectFailed {
            generation,
            attempt,
            ..
        } => {
            fields.push(("generation", Json::Int(*generation as i64)));
            fields.push(("attempt", Json::Int((*attempt).into())));
        }
        Lifecycle::Disconnected { generation, .. } => {
            fields.push(("generation", Json::Int(*generation as i64)));
        }
        Lifecycle::Waiting { attempt, delay } => {
            fields.push(("attempt", Json::Int((*attempt).into())));
            fields.push(("delay_ms", Json::ms(Some(*delay))));
        }
        Lifecycle::GaveUp { .. } | Lifecycle::Closed => {}
    }
    if let Some((reason, detail)) = e.cause() {
        fields.push(("reason", Json::str(reason.as_str())));
        fields.push(("detail", Json::str(detail.as_str())));
    }
    Json::Obj(fields)
}

fn phase_json(p: &PhaseReport) -> Json {
    let gen = |g: Option<u64>| g.map_or(Json::Null, |g| Json::Int(g as i64));
    let clients = p
        .clients
        .iter()
        .map(|c| {
            Json::obj([
                ("client", Json::Int(c.client as i64)),
                ("ok", Json::Bool(c.problems.is_empty())),
                ("generation_before", gen(c.generation_before)),
                ("generation_after", gen(c.generation_after)),
                ("detect_ms", Json::ms(c.detect)),
                (
                    "reason",
                    c.reason.map_or(Json::Null, |r| Json::str(r.as_str())),
                ),
                (
                    "detail",
                    c.detail
                        .as_ref()
                        .map_or(Json::Null, |d| Json::str(d.as_str())),
                ),
                ("reconnect_ms", Json::ms(c.reconnect)),
                (
                    "events",
                    Json::Arr(
                        c.events
                            .iter()
                            .map(|(at, e)| event_json(Some(*at), e))
                            .collect(),
                    ),
                ),
                (
                    "problems",
                    Json::Arr(c.problems.iter().map(Json::str).collect()),
                ),
            ])
        })
        .collect();
    Json::obj([
        ("fault", Json::str(p.fault.key())),
        ("ok", Json::Bool(p.ok())),
        (
            "expected",
            Json::Arr(
                p.fault
                    .expected(p.scheme)
                    .iter()
                    .map(|r| Json::str(r.as_str()))
                    .collect(),
            ),
        ),
        ("why", Json::str(p.fault.why(p.scheme))),
        ("detection_bound_ms", Json::ms(Some(p.bound))),
        ("margin_ms", Json::ms(Some(p.margin))),
        ("injected", Json::str(&p.injected)),
        (
            "server_closed",
            Json::Arr(
                p.server_closed
                    .iter()
                    .map(|r| Json::str(r.as_str()))
                    .collect(),
            ),
        ),
        ("clients", Json::Arr(clients)),
    ])
}
