//! Live progress lines, stamped with the time since the drill started.

use std::io::Write;
use std::time::Instant;

pub struct Progress {
    start: Instant,
    to_stderr: bool,
}

impl Progress {
    /// Progress on stdout, or on stderr when stdout carries JSON.
    pub fn new(to_stderr: bool) -> Self {
        Self {
            start: Instant::now(),
            to_stderr,
        }
    }

    pub fn line(&self, msg: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let line = format!("[{t:7.3}s] {msg}\n");
        // A closed pipe must not panic the drill; the exit code still tells.
        if self.to_stderr {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}
