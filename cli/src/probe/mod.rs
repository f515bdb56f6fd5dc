//! `tether probe`: supervise one connection to a server over any transport
//! (tcp, tls, quic, udp) and print its lifecycle as it happens.

mod options;
mod output;

pub use options::{parse, Parsed, ProbeOptions, HELP};

use crate::fmt;
use options::silent_heartbeat;
use output::{Printer, Tally};
use std::time::Duration;
use tether_core::connection::Opening;
use tether_transports::driver::{Client, ClientConfig, ClientEvent};
use tether_transports::endpoint;
use tether_transports::Scheme;

/// Runs the probe; returns the process exit code.
pub async fn run(o: ProbeOptions) -> i32 {
    // Reads the CA file and binds the QUIC socket: errors name the option.
    let connector = match endpoint::connector(&o.endpoint, &o.transport_options()) {
        Ok(connector) => connector,
        Err(e) => {
            eprintln!("tether probe: error: {e}");
            return 2;
        }
    };
    let config = ClientConfig {
        heartbeat: o.heartbeat.unwrap_or_else(silent_heartbeat),
        backoff: o.backoff.clone(),
        // Without a heartbeat the server is a plain one: it answers no hello.
        opening: if o.heartbeat.is_some() {
            Opening::Hello
        } else {
            Opening::Raw
        },
        ..ClientConfig::default()
    };
    let mut client = match Client::spawn(connector, config) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("tether probe: {e}");
            return 2;
        }
    };
    if !o.json {
        let liveness = match o.heartbeat {
            Some(hb) => format!(
                "heartbeat {} / {} x{} (dead within {} of silence)",
                fmt::short(hb.interval),
                fmt::short(hb.timeout),
                hb.max_missed,
                fmt::short(hb.detection_bound())
            ),
            None => "no heartbeat".to_string(),
        };
        let kernel = transport_text(&o);
        let until = match o.run_for {
            Some(d) => format!("for {}", fmt::duration(d)),
            None => "until Ctrl-C".to_string(),
        };
        println!("probing {}: {liveness}; {kernel}; {until}", o.endpoint);
    }

    let mut printer = Printer::new(o.json);
    let mut tally = Tally::default();
    let stop = async {
        match o.run_for {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut ended = false;
    loop {
        tokio::select! {
            () = &mut stop => break,
            event = client.next_event() => match event {
                Some(e) => handle(&mut printer, &mut tally, e),
                None => {
                    ended = true;
                    break;
                }
            },
        }
    }
    if !ended {
        // Close in an orderly way and show the last events.
        client.close();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, client.next_event()).await {
            handle(&mut printer, &mut tally, e);
        }
    }
    let elapsed = printer.start.elapsed();
    if o.json {
        printer.emit(tally.json(elapsed).to_string());
    } else {
        printer.emit(tally.text(elapsed));
    }
    if tally.connected > 0 {
        0
    } else {
        1
    }
}

/// What the transport adds to liveness and trust, for the first line.
fn transport_text(o: &ProbeOptions) -> String {
    let kernel = || match o.tcp.keepalive {
        Some(k) => format!(
            "kernel keepalive {}+{}x{}",
            fmt::short(k.idle),
            k.count,
            fmt::short(k.interval)
        ),
        None => "kernel keepalive off".to_string(),
    };
    let trust = || {
        let ca =
            o.ca.as_ref()
                .map_or("the platform's roots".to_string(), |p| {
                    p.display().to_string()
                });
        let name = o.server_name.as_deref().unwrap_or(&o.endpoint.host);
        format!("certificate for {name} checked against {ca}")
    };
    match o.endpoint.scheme {
        Scheme::Tcp => kernel(),
        Scheme::Tls => format!("{}; {}", kernel(), trust()),
        Scheme::Quic => {
            let l = o.quic_liveness();
            format!(
                "QUIC keep-alive {}, idle timeout {}; {}",
                l.keep_alive.map_or("off".to_string(), fmt::short),
                fmt::short(l.idle_timeout),
                trust()
            )
        }
        Scheme::Udp => format!(
            "pre-shared key of {} bytes",
            o.psk.as_ref().map_or(0, Vec::len)
        ),
    }
}

fn handle(printer: &mut Printer, tally: &mut Tally, event: ClientEvent) {
    match event {
        ClientEvent::Lifecycle(e) => {
            tally.add(&e);
            printer.event(&e);
        }
        ClientEvent::Message(m) => {
            tally.messages += 1;
            printer.message(m.len());
        }
        ClientEvent::Failed(cause) => printer.failed(&cause),
    }
}
