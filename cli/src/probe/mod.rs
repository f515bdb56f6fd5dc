//! `tether probe`: supervise one connection to any TCP server and print its
//! lifecycle as it happens.

mod options;
mod output;

pub use options::{parse, Parsed, ProbeOptions, HELP};

use crate::fmt;
use options::silent_heartbeat;
use output::{Printer, Tally};
use std::time::Duration;
use tether_transports::driver::{Client, ClientConfig, ClientEvent};
use tether_transports::tcp::TcpConnector;

/// Runs the probe; returns the process exit code.
pub async fn run(o: ProbeOptions) -> i32 {
    let connector = TcpConnector::new(o.endpoint.host.clone(), o.endpoint.port, o.tcp);
    let config = ClientConfig {
        heartbeat: o.heartbeat.unwrap_or_else(silent_heartbeat),
        backoff: o.backoff.clone(),
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
        let kernel = match o.tcp.keepalive {
            Some(k) => format!(
                "kernel keepalive {}+{}x{}",
                fmt::short(k.idle),
                k.count,
                fmt::short(k.interval)
            ),
            None => "kernel keepalive off".to_string(),
        };
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
    }
}
