//! Tasks that cannot stop silently: a panic inside a driver task is caught
//! at the task's edge and turned into a report, so the object it served ends
//! with an `internal` error event instead of going quiet.

use futures_util::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// The text of a panic payload (`panic!("...")` carries a `&str` or a
/// `String`); shared with libtether's panic boundary.
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Spawns `task`; if it panics, `on_panic` runs with the panic's message
/// (after the task's own state was dropped). The guard is a combinator
/// around `task`, not an `async` block holding it, so the task's state is
/// stored once (an `async` block would keep `task` and the future it
/// awaits side by side, doubling every connection's task).
pub(crate) fn spawn_guarded<F>(
    task: F,
    on_panic: impl FnOnce(String) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(AssertUnwindSafe(task).catch_unwind().map(move |ended| {
        if let Err(payload) = ended {
            let text = panic_text(payload.as_ref());
            tracing::error!(panic = %text, "internal panic in a tether task");
            on_panic(format!("internal panic in tether: {text}"));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test]
    async fn a_panicking_task_reports_its_message() {
        let (tx, rx) = mpsc::channel();
        let task = spawn_guarded(
            async {
                let v: Vec<u8> = Vec::new();
                let i = v.len() + 3;
                if i > 2 {
                    panic!("boom at {i}");
                }
            },
            move |text| tx.send(text).unwrap(),
        );
        task.await.unwrap();
        assert_eq!(rx.recv().unwrap(), "internal panic in tether: boom at 3");
    }
}
