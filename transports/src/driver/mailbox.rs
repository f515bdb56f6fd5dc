//! What a client's task and the application's `Client` tell each other,
//! in one small shared object instead of two channels (a tokio channel
//! costs about a kilobyte per client even when idle, and a client is
//! idle most of its life).
//!
//! The task posts notes (lifecycle steps, the connection to read from) in
//! order; the application takes them. The application asks for a close,
//! or lets every handle go, which asks for one too. Either side ending is
//! seen by the other: the notes end once every poster has gone, a close
//! is asked for once every handle has gone.

use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tether_core::release::ReleaseIfEmpty;

pub(crate) struct Mailbox<N> {
    notes: Mutex<Notes<N>>,
    /// Posters still alive; the notes end at 0.
    posters: AtomicUsize,
    /// A close was asked for (or every handle has gone).
    close: AtomicBool,
    /// The client's task, woken by a close.
    task: AtomicWaker,
}

struct Notes<N> {
    queue: VecDeque<N>,
    /// The application waiting for a note.
    waiting: Option<Waker>,
}

impl<N> Mailbox<N> {
    /// A mailbox, the poster for the task and the closer for the handles.
    pub(crate) fn open() -> (Poster<N>, Closer<N>) {
        let mailbox = Arc::new(Self {
            notes: Mutex::new(Notes {
                queue: VecDeque::new(),
                waiting: None,
            }),
            posters: AtomicUsize::new(1),
            close: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        (
            Poster(mailbox.clone()),
            Closer(Arc::new(CloseOnDrop(mailbox))),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Notes<N>> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next note; `Ready(None)` once every poster has gone and every
    /// note was taken. Without `cx`, `Pending` means none is ready.
    pub(crate) fn poll_note(&self, cx: Option<&mut Context<'_>>) -> Poll<Option<N>> {
        let mut notes = self.lock();
        if let Some(note) = notes.queue.pop_front() {
            // Notes are rare (a few per connection): an idle client holds
            // no room for them.
            notes.queue.release_if_empty();
            return Poll::Ready(Some(note));
        }
        if self.posters.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        if let Some(cx) = cx {
            match &notes.waiting {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => notes.waiting = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// `Ready` once a close was asked for; registers the task otherwise.
    pub(crate) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.close.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.task.register(cx.waker());
        if self.close.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn ask_close(&self) {
        self.close.store(true, Ordering::Release);
        self.task.wake();
    }

    fn wake_reader(&self, mut notes: std::sync::MutexGuard<'_, Notes<N>>) {
        let waiting = notes.waiting.take();
        drop(notes);
        if let Some(w) = waiting {
            w.wake();
        }
    }
}

/// The task's side: posts notes. Clones post into the same queue; the
/// notes end when the last clone drops.
pub(crate) struct Poster<N>(Arc<Mailbox<N>>);

impl<N> Poster<N> {
    /// Posts `note` for the application.
    pub(crate) fn post(&self, note: N) {
        let mut notes = self.0.lock();
        notes.queue.push_back(note);
        self.0.wake_reader(notes);
    }

    /// The mailbox, for the application's side.
    pub(crate) fn mailbox(&self) -> Arc<Mailbox<N>> {
        self.0.clone()
    }

    /// `Ready` once a close was asked for (see [`Mailbox::poll_close`]).
    pub(crate) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_close(cx)
    }
}

impl<N> Clone for Poster<N> {
    fn clone(&self) -> Self {
        self.0.posters.fetch_add(1, Ordering::AcqRel);
        Self(self.0.clone())
    }
}

impl<N> Drop for Poster<N> {
    fn drop(&mut self) {
        if self.0.posters.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last poster: whoever waits learns the notes ended.
            let notes = self.0.lock();
            self.0.wake_reader(notes);
        }
    }
}

/// The handles' side: asks for a close, and asks for one when the last
/// clone drops.
pub(crate) struct Closer<N>(Arc<CloseOnDrop<N>>);

impl<N> Clone for Closer<N> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct CloseOnDrop<N>(Arc<Mailbox<N>>);

impl<N> Drop for CloseOnDrop<N> {
    fn drop(&mut self) {
        self.0.ask_close();
    }
}

impl<N> Closer<N> {
    /// Asks the task to close.
    pub(crate) fn close(&self) {
        self.0 .0.ask_close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    #[test]
    fn notes_arrive_in_order_and_end_when_the_last_poster_goes() {
        let (poster, closer) = Mailbox::<u32>::open();
        let mailbox = poster.mailbox();
        let second = poster.clone();
        poster.post(1);
        second.post(2);
        assert_eq!(mailbox.poll_note(None), Poll::Ready(Some(1)));
        assert_eq!(mailbox.poll_note(None), Poll::Ready(Some(2)));
        assert_eq!(mailbox.poll_note(None), Poll::Pending);
        drop(poster);
        assert_eq!(mailbox.poll_note(None), Poll::Pending, "one poster left");
        second.post(3);
        drop(second);
        assert_eq!(mailbox.poll_note(None), Poll::Ready(Some(3)));
        assert_eq!(mailbox.poll_note(None), Poll::Ready(None));
        drop(closer);
    }

    #[test]
    fn a_close_is_asked_by_close_or_by_the_last_handle_going() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (poster, closer) = Mailbox::<u32>::open();
        let other = closer.clone();
        assert_eq!(poster.poll_close(&mut cx), Poll::Pending);
        drop(closer);
        assert_eq!(
            poster.poll_close(&mut cx),
            Poll::Pending,
            "a handle is left"
        );
        drop(other);
        assert_eq!(poster.poll_close(&mut cx), Poll::Ready(()));

        let (poster, closer) = Mailbox::<u32>::open();
        closer.close();
        assert_eq!(poster.poll_close(&mut cx), Poll::Ready(()));
        drop(closer);
    }

    #[test]
    fn an_emptied_queue_gives_its_room_back() {
        let (poster, _closer) = Mailbox::<u32>::open();
        let mailbox = poster.mailbox();
        for i in 0..100 {
            poster.post(i);
        }
        while let Poll::Ready(Some(_)) = mailbox.poll_note(None) {}
        assert_eq!(mailbox.lock().queue.capacity(), 0);
    }
}
