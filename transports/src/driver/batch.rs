//! Gathering a write batch from a driver's queue: one flush (one system
//! call) carries whatever the application has queued.

use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Moves queued items from `rx` to `batch` until it holds `limit`. A sender
/// still producing gets one scheduler turn to add to the batch before the
/// write. Returns false once `rx` is closed and empty.
pub(crate) async fn gather<T>(
    rx: &mut mpsc::Receiver<T>,
    batch: &mut VecDeque<T>,
    limit: usize,
) -> bool {
    for turn in 0..2 {
        if turn == 1 {
            if batch.len() >= limit {
                break;
            }
            tokio::task::yield_now().await;
        }
        while batch.len() < limit {
            match rx.try_recv() {
                Ok(item) => batch.push_back(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }
    true
}
