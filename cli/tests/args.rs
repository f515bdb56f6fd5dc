//! Help and bad arguments: clear text, exit code 2, never a panic.

use std::process::{Command, Output};

fn tether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .output()
        .expect("run tether")
}

#[test]
fn help_is_printed_with_exit_0() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["help", "drill"],
        &["drill", "--help"],
        &["probe", "-h"],
    ] {
        let out = tether(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout.contains("Usage: tether"), "{args:?}: {stdout}");
    }
    let drill = tether(&["drill", "--help"]);
    let drill = String::from_utf8_lossy(&drill.stdout);
    for flag in [
        "--transport",
        "--clients",
        "--faults",
        "--interval",
        "--json",
        "blackhole",
    ] {
        assert!(drill.contains(flag), "drill help lacks {flag}");
    }
    let probe = tether(&["probe", "--help"]);
    let probe = String::from_utf8_lossy(&probe.stdout);
    assert!(probe.contains("--no-heartbeat") && probe.contains("tether peer"));
    for flag in [
        "--ca FILE",
        "--server-name NAME",
        "--psk-hex HEX",
        "udp://HOST:PORT",
    ] {
        assert!(probe.contains(flag), "probe help lacks {flag}");
    }
    let version = tether(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("tether "));
}

#[test]
fn bad_arguments_exit_2_with_a_clear_error() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "missing a command"),
        (&["frobnicate"], "unknown command"),
        (&["--frobnicate"], "unknown option"),
        (&["help", "nothing"], "no help"),
        (&["drill", "--clients", "0"], "--clients"),
        (&["drill", "--clients", "many"], "--clients"),
        (&["drill", "--clients"], "needs a value"),
        (&["drill", "--interval", "200"], "missing unit"),
        (&["drill", "--timeout", "0ms"], "heartbeat.timeout"),
        (&["drill", "--faults", "meteor"], "unknown fault"),
        (
            &["drill", "--transport", "sctp"],
            "--transport: unknown transport \"sctp\" (expected tcp, tls, quic or udp)",
        ),
        (&["drill", "--transport", "udp,udp"], "listed twice"),
        (&["drill", "--transport"], "needs a value"),
        (&["drill", "--backoff-initial", "2s"], "backoff.max_delay"),
        (&["drill", "--wat"], "unknown option --wat"),
        (&["drill", "stray"], "unexpected argument"),
        (&["probe"], "missing the address"),
        (&["probe", "127.0.0.1:7000"], "no scheme"),
        (&["probe", "udp://127.0.0.1:7000"], "udp:// needs --psk-hex"),
        (&["probe", "sctp://127.0.0.1:7000"], "unknown scheme"),
        (
            &["probe", "--psk-hex", "0011", "udp://127.0.0.1:7000"],
            "too short",
        ),
        (
            &["probe", "--psk-hex", "xyz", "udp://127.0.0.1:7000"],
            "--psk-hex",
        ),
        (
            &["probe", "--ca", "ca.pem", "tcp://127.0.0.1:7000"],
            "--ca applies to tls:// and quic:// only",
        ),
        (
            &["probe", "--keepalive", "1s,1s,1", "quic://127.0.0.1:7000"],
            "--keepalive applies to tcp:// and tls:// only",
        ),
        (&["probe", "tcp://127.0.0.1:99999"], "valid port"),
        (&["probe", "tcp://127.0.0.1:0"], "port 0"),
        (&["probe", "--for", "soon", "tcp://127.0.0.1:1"], "--for"),
        (
            &["probe", "--keepalive", "1s", "tcp://127.0.0.1:1"],
            "IDLE,INTERVAL,COUNT",
        ),
    ];
    for (args, needle) in cases {
        let out = tether(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
        assert!(
            stderr.contains("--help"),
            "{args:?}: should point at help: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}
