//! Runs the built `tether drill` as a user would.

use std::process::{Command, Output};

fn tether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .output()
        .expect("run tether")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_default_drill_passes_with_a_table_per_fault_and_transport() {
    let out = tether(&["drill"]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for transport in ["tcp", "tls", "quic", "udp"] {
        assert!(
            stdout.contains(&format!("######## {transport}:// ########")),
            "no {transport} section in:\n{stdout}"
        );
        for fault in ["orderly close", "black hole", "server restart"] {
            let title = format!("== {transport}: {fault} ==  expect ");
            assert!(stdout.contains(&title), "missing {title:?} in:\n{stdout}");
        }
        // Live progress came before the tables.
        assert!(
            stdout.contains(&format!("{transport}: 4/4 clients connected")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("{transport}: black hole: lifted")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\n  {transport:<5} PASS: ")),
            "no summary line for {transport}:\n{stdout}"
        );
    }
    // Stream transports get an RST; datagram transports say why they do not.
    for title in [
        "== tcp: reset ==  expect reset",
        "== tls: reset ==  expect reset",
    ] {
        assert!(stdout.contains(title), "missing {title:?} in:\n{stdout}");
    }
    for title in [
        "== quic: reset ==  skipped: ",
        "== udp: reset ==  skipped: ",
    ] {
        assert!(stdout.contains(title), "missing {title:?} in:\n{stdout}");
    }
    // TLS classifies the proxy's bare FIN as a truncation, and a restarted
    // datagram server is recognised by its verified reset signal.
    for header in [
        "== tls: orderly close ==  expect reset;",
        "== quic: server restart ==  expect reset;",
        "== udp: server restart ==  expect reset;",
    ] {
        assert!(stdout.contains(header), "missing {header:?} in:\n{stdout}");
    }
    // Each fault's expected reason shows up in a table.
    for reason in ["peer_closed", "reset", "timeout"] {
        assert!(
            stdout.contains(&format!("  {reason}  ")),
            "no {reason} row:\n{stdout}"
        );
    }
    assert!(stdout.contains("result: PASS: 4 transports"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn one_transport_alone() {
    let out = tether(&["drill", "--transport", "udp", "--clients", "2"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("######## udp:// ########"), "{stdout}");
    assert!(stdout.contains("== udp: server restart =="), "{stdout}");
    assert!(stdout.contains("udp: 2/2 clients connected"), "{stdout}");
    for other in ["tcp://", "tls://", "quic://", "== tcp:"] {
        assert!(!stdout.contains(other), "{other} in:\n{stdout}");
    }
    assert!(stdout.contains("result: PASS: 1 transports"), "{stdout}");
}

#[test]
fn json_output_is_one_document_with_a_verdict() {
    let out = tether(&[
        "drill",
        "--json",
        "--transport",
        "tcp,udp",
        "--clients",
        "2",
        "--faults",
        "reset,close",
        "--seed",
        "42",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let doc = stdout.trim();
    assert!(doc.starts_with("{\"ok\":true,"), "{doc}");
    assert!(doc.ends_with('}'), "{doc}");
    assert_eq!(
        doc.lines().count(),
        1,
        "JSON on one line, progress on stderr"
    );
    assert!(doc.contains("\"transport\":\"tcp\""), "{doc}");
    assert!(doc.contains("\"transport\":\"udp\""), "{doc}");
    assert!(doc.contains("\"fault\":\"reset\""), "{doc}");
    assert!(doc.contains("\"fault\":\"close\""), "{doc}");
    assert!(!doc.contains("\"fault\":\"blackhole\""), "{doc}");
    assert!(doc.contains("\"reason\":\"reset\""), "{doc}");
    assert!(doc.contains("\"reason\":\"peer_closed\""), "{doc}");
    // No RST on UDP: the reset fault is listed as skipped, with the reason.
    assert!(
        doc.contains("\"skipped\":[{\"fault\":\"reset\",\"why\":\"datagram"),
        "{doc}"
    );
    // Progress still went somewhere a person sees it.
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tcp: 2/2 clients connected"), "{stderr}");
    assert!(stderr.contains("udp: 2/2 clients connected"), "{stderr}");
}
