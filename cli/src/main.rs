//! `tether`: drills and probes for connection supervision.
//!
//! * `tether drill` breaks connections on purpose (orderly close, reset,
//!   black hole, server restart) over tcp, tls, quic and udp in turn, and
//!   checks that tether detects each within its bound, with the right
//!   reason, and reconnects, with every lifecycle event exactly once.
//! * `tether probe URL` (tcp://, tls://, quic://, udp://) watches a
//!   supervised connection to a server and prints its lifecycle.

mod args;
mod drill;
mod fmt;
mod json;
mod probe;
mod table;

use args::UsageError;
use std::process::ExitCode;

const HELP: &str = "\
tether: keep network connections honest

Usage: tether <COMMAND> [OPTIONS]

Commands:
  drill   inject faults (close, reset, black hole, server restart) between a
          tether server and clients on loopback, over tcp, tls, quic and udp;
          check detection, reasons, reconnects and lifecycle events; exit 1
          if any check fails
  probe   supervise a connection to a tcp://, tls://, quic:// or udp://
          HOST:PORT and print its lifecycle events with timestamps and
          reasons
  help    print this help, or a command's: tether help drill

Options:
  -h, --help     print this help
  -V, --version  print the version

Environment:
  RUST_LOG       log what tether does on stderr, e.g. RUST_LOG=info

Run 'tether <COMMAND> --help' for a command's options.
";

enum Command {
    Drill(drill::Parsed),
    Probe(probe::Parsed),
    Print(&'static str),
}

fn parse(mut argv: Vec<String>) -> Result<Command, UsageError> {
    if argv.is_empty() {
        return Err(UsageError::new(None, "missing a command"));
    }
    let command = argv.remove(0);
    match command.as_str() {
        "-h" | "--help" => Ok(Command::Print(HELP)),
        "-V" | "--version" => Ok(Command::Print(concat!(
            "tether ",
            env!("CARGO_PKG_VERSION"),
            "\n"
        ))),
        "help" => match argv.first().map(String::as_str) {
            None => Ok(Command::Print(HELP)),
            Some("drill") => Ok(Command::Print(drill::HELP)),
            Some("probe") => Ok(Command::Print(probe::HELP)),
            Some(other) => Err(UsageError::new(None, format!("no help for {other:?}"))),
        },
        "drill" => drill::parse(argv).map(Command::Drill),
        "probe" => probe::parse(argv).map(Command::Probe),
        other if other.starts_with('-') => {
            Err(UsageError::new(None, format!("unknown option {other}")))
        }
        other => Err(UsageError::new(None, format!("unknown command {other:?}"))),
    }
}

/// `RUST_LOG` (e.g. `RUST_LOG=tether=debug` or `RUST_LOG=info`) turns on
/// tether's own log on stderr: every connection event with its detail,
/// handshake failures, accept errors. Unset: no log at all.
fn init_log() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    init_log();
    let argv: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect()
    {
        Ok(argv) => argv,
        Err(bad) => {
            return usage_error(&UsageError::new(
                None,
                format!("argument {bad:?} is not UTF-8"),
            ))
        }
    };
    let command = match parse(argv) {
        Ok(command) => command,
        Err(e) => return usage_error(&e),
    };
    match command {
        Command::Print(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::Drill(drill::Parsed::Help) => {
            print!("{}", drill::HELP);
            ExitCode::SUCCESS
        }
        Command::Probe(probe::Parsed::Help) => {
            print!("{}", probe::HELP);
            ExitCode::SUCCESS
        }
        Command::Drill(drill::Parsed::Run(opts)) => run(drill::run(*opts)),
        Command::Probe(probe::Parsed::Run(opts)) => run(probe::run(*opts)),
    }
}

/// Runs a command on a fresh runtime; its result is the exit code.
fn run(command: impl std::future::Future<Output = i32>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => ExitCode::from(rt.block_on(command).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("tether: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(e: &UsageError) -> ExitCode {
    let help = match e.command {
        Some(command) => format!("tether {command} --help"),
        None => "tether --help".to_string(),
    };
    eprintln!("tether: error: {e}\nRun '{help}' for usage.");
    ExitCode::from(2)
}
