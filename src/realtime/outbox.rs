//! A socket's outbound frames: a bounded queue that the hub fills and the socket's writer drains.
//!
//! Why not a channel: a channel wakes its reader on every frame. One commit acks and delivers
//! thousands of messages, a few to each socket; woken per frame, each writer would make a system
//! call per frame (measured: two `sendto` per message in scenario 1). Here whoever queues decides
//! when to wake the writer, so the pipeline wakes each socket once per commit and the writer
//! sends everything that piled up in one write. An empty outbox also holds no buffer, which keeps
//! idle sockets small.
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;

/// Frames queued for one socket before it is considered too slow. Generous, because one commit can
/// ack thousands of a pipelining client's sends at once; the queue only takes memory as it fills.
pub const OUTBOX_FRAMES: usize = 16_384;

/// What a socket's writer sends.
#[derive(Debug)]
pub enum Outbound {
    Text(Arc<str>),
    /// A WebSocket-level ping, to find connections that died without closing.
    Ping,
    Close(u16, &'static str),
}

/// What became of a frame offered to an outbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    /// Queued behind frames the writer has not taken yet: their wake-up covers this one too.
    Behind,
    /// Queued into an empty outbox: the writer needs a wake-up.
    First,
    /// The socket is too far behind: nothing was queued, and the socket is to be dropped (its
    /// client catches up with `sync` when it reconnects).
    Full,
    /// The socket is gone.
    Closed,
}

/// What the writer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Frames,
    /// A frame was refused because the outbox was full: drop the socket.
    Overflowed,
    /// Closed and empty: nothing more will come.
    Closed,
}

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Something to write, an overflow, or the outbox was closed.
    ready: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outbound>,
    closed: bool,
    overflowed: bool,
}

impl Outbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Queues a frame without waking the writer. On [`Queued::First`] the caller must call
    /// [`Outbox::wake`] once it has queued everything it has for this socket; on
    /// [`Queued::Full`] the writer is woken here, to drop the socket.
    pub fn push_quietly(&self, frame: Outbound) -> Queued {
        let mut state = self.state.lock().expect("outbox lock");
        if state.closed {
            return Queued::Closed;
        }
        if state.frames.len() >= OUTBOX_FRAMES {
            state.overflowed = true;
            drop(state);
            self.wake();
            return Queued::Full;
        }
        state.frames.push_back(frame);
        if state.frames.len() == 1 { Queued::First } else { Queued::Behind }
    }

    /// Queues a frame and wakes the writer.
    pub fn push(&self, frame: Outbound) -> Queued {
        let queued = self.push_quietly(frame);
        if queued == Queued::First {
            self.wake();
        }
        queued
    }

    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// For the writer: waits until there is something to do. On [`Taken::Frames`] every queued
    /// frame has been moved into `into` (which should be empty; it is swapped in, so both buffers
    /// keep their capacity between rounds). Cancel-safe: frames move only when it completes.
    pub async fn take_all(&self, into: &mut VecDeque<Outbound>) -> Taken {
        loop {
            if let Some(taken) = self.take_now(into) {
                return taken;
            }
            self.ready.notified().await;
        }
    }

    /// Like [`Outbox::take_all`] without waiting: `None` when there is nothing to do yet.
    pub fn take_now(&self, into: &mut VecDeque<Outbound>) -> Option<Taken> {
        let mut state = self.state.lock().expect("outbox lock");
        if state.overflowed {
            return Some(Taken::Overflowed);
        }
        if !state.frames.is_empty() {
            std::mem::swap(&mut state.frames, into);
            return Some(Taken::Frames);
        }
        if state.closed {
            return Some(Taken::Closed);
        }
        // A burst can leave a large buffer behind; an idle socket should not keep it.
        if state.frames.capacity() > 256 {
            state.frames = VecDeque::new();
        }
        None
    }

    /// No more frames will be accepted; the writer sends what is queued and stops.
    pub fn close(&self) {
        self.state.lock().expect("outbox lock").closed = true;
        self.wake();
    }
}

/// Outboxes that were given frames but not woken yet: the pipeline queues a whole commit's frames,
/// then wakes each socket once.
#[derive(Default)]
pub struct PendingWakes(Vec<Arc<Outbox>>);

impl PendingWakes {
    pub fn add(&mut self, outbox: &Arc<Outbox>) {
        self.0.push(outbox.clone());
    }

    pub fn wake_all(&mut self) {
        for outbox in self.0.drain(..) {
            outbox.wake();
        }
    }
}

impl Drop for PendingWakes {
    fn drop(&mut self) {
        self.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Outbound {
        Outbound::Text(s.into())
    }

    #[tokio::test]
    async fn only_the_first_frame_asks_for_a_wake_up_and_the_writer_takes_them_all() {
        let outbox = Outbox::new();
        assert_eq!(outbox.push_quietly(text("a")), Queued::First);
        assert_eq!(outbox.push_quietly(text("b")), Queued::Behind);
        outbox.wake();
        let mut taken = VecDeque::new();
        assert_eq!(outbox.take_all(&mut taken).await, Taken::Frames);
        assert_eq!(taken.len(), 2);
        taken.clear();
        assert_eq!(outbox.push_quietly(text("c")), Queued::First, "the outbox is empty again");
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_and_tells_the_writer_to_drop_the_socket() {
        let outbox = Outbox::new();
        for _ in 0..OUTBOX_FRAMES {
            assert_ne!(outbox.push(text("x")), Queued::Full);
        }
        assert_eq!(outbox.push(text("y")), Queued::Full);
        let mut taken = VecDeque::new();
        assert_eq!(outbox.take_all(&mut taken).await, Taken::Overflowed);
        assert!(taken.is_empty(), "a socket this far behind is dropped, not written to");
    }

    #[tokio::test]
    async fn closing_lets_the_writer_finish_what_is_queued_and_refuses_more() {
        let outbox = Outbox::new();
        outbox.push(text("last"));
        outbox.close();
        assert_eq!(outbox.push(text("late")), Queued::Closed);
        let mut taken = VecDeque::new();
        assert_eq!(outbox.take_all(&mut taken).await, Taken::Frames);
        assert_eq!(taken.len(), 1);
        taken.clear();
        assert_eq!(outbox.take_all(&mut taken).await, Taken::Closed, "closed and empty: the writer stops");
    }
}
