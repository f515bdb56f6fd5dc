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
fn the_default_drill_passes_and_prints_a_table_per_fault() {
    let out = tether(&["drill"]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for title in [
        "== orderly close ==",
        "== reset ==",
        "== black hole ==",
        "== server restart ==",
    ] {
        assert!(stdout.contains(title), "missing {title:?} in:\n{stdout}");
    }
    // Live progress came before the tables.
    assert!(stdout.contains("4/4 clients connected"), "{stdout}");
    assert!(stdout.contains("black hole: lifted"), "{stdout}");
    // Each fault's expected reason shows up in its table.
    for reason in ["peer_closed", "reset", "timeout"] {
        assert!(
            stdout.contains(&format!("  {reason}  ")),
            "no {reason} row:\n{stdout}"
        );
    }
    assert!(stdout.contains("result: PASS"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn json_output_is_one_document_with_a_verdict() {
    let out = tether(&[
        "drill",
        "--json",
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
    assert!(doc.contains("\"fault\":\"reset\""), "{doc}");
    assert!(doc.contains("\"fault\":\"close\""), "{doc}");
    assert!(!doc.contains("\"fault\":\"blackhole\""), "{doc}");
    assert!(doc.contains("\"reason\":\"reset\""), "{doc}");
    assert!(doc.contains("\"reason\":\"peer_closed\""), "{doc}");
    // Progress still went somewhere a person sees it.
    assert!(text(&out.stderr).contains("2/2 clients connected"));
}
