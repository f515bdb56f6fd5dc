//! Runs the C test suite (`tests/c/run.sh`): the C tests and examples built
//! with `-Wall -Wextra -Werror` and AddressSanitizer/UBSan against
//! libtether, so that `cargo test` covers the C API as C sees it.
//!
//! Skipped, with the reason printed, only when no C compiler is installed.

use std::path::PathBuf;
use std::process::Command;

fn have_c_compiler(cc: &str) -> bool {
    Command::new(cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn c_tests_pass_under_asan() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    if !have_c_compiler(&cc) {
        eprintln!("SKIPPED: no C compiler ({cc}) found; the C API tests need one");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ffi/ has a parent")
        .to_path_buf();
    let script = root.join("tests/c/run.sh");
    // The script runs `cargo build -p tether-ffi` itself so that
    // libtether.a is current; this test's own build is already finished.
    let status = Command::new("sh")
        .arg(&script)
        .current_dir(&root)
        .env("CC", &cc)
        .status()
        .expect("run tests/c/run.sh");
    assert!(status.success(), "tests/c/run.sh failed: {status}");
}
