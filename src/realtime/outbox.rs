//! A socket's outbound frames: a bounded queue that the hub fills and the socket's writer drains.
//!
//! Why not a channel: a channel wakes its reader on every frame. One commit acks and delivers
//! thousands of messages, a few to each socket; woken per frame, each writer would make a system
//! call per frame (measured: two `sendto` per message in scenario 1). Here whoever queues decides
//! when to wake the writer, so the pipeline wakes each socket once per commit and the writer
//! sends everything that piled up in one write. An empty outbox also holds no buffer, which keeps
//! idle sockets small.
use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;

/// Frames queued for one socket before it is considered too slow. Generous, because one commit can
/// ack thousands of a pipelining client's sends at once; the queue only takes memory as it fills.
pub const OUTBOX_FRAMES: usize = 16_384;
/// Past this share of either bound a socket is behind, and short-lived frames (typing) are dropped
/// rather than queued: they are stale by the time it reads them, and must never be what pushes a
/// socket over its limit.
const EPHEMERAL_SHARE: usize = 4;

/// What a socket's writer sends.
#[derive(Debug)]
pub enum Outbound {
    Text(Arc<str>),
    /// A WebSocket-level ping, to find connections that died without closing.
    Ping,
    Close(u16, &'static str),
}

impl Outbound {
    fn bytes(&self) -> usize {
        match self {
            Outbound::Text(text) => text.len(),
            Outbound::Ping | Outbound::Close(..) => 0,
        }
    }
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
    /// A short-lived frame was left out: the same one is already waiting, or the socket is behind.
    Skipped,
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

/// Why a write in progress should stop.
#[derive(Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// The outbox overflowed: drop the socket now.
    Overflowed,
    /// A close was asked for (sign-out, shutdown): finish quickly or drop the socket.
    Closing,
}

pub struct Outbox {
    /// Bytes queued before the socket is considered too slow (`websocket.max_queued_bytes`):
    /// 16,384 frames of 4,000 characters would otherwise be 64 MiB or more per socket.
    max_bytes: usize,
    state: Mutex<State>,
    /// Something to write, an overflow, or the outbox was closed.
    ready: Notify,
    /// An overflow or a close, for a writer that is stuck writing to a client that stopped reading.
    interrupt: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outbound>,
    bytes: usize,
    closed: bool,
    overflowed: bool,
    closing: bool,
    /// Keys of the short-lived frames queued and not taken yet.
    ephemeral: HashSet<u64>,
}

impl State {
    fn interrupt(&self) -> Option<Interrupt> {
        if self.overflowed {
            Some(Interrupt::Overflowed)
        } else if self.closing {
            Some(Interrupt::Closing)
        } else {
            None
        }
    }
}

impl Outbox {
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(Self { max_bytes, state: Mutex::default(), ready: Notify::new(), interrupt: Notify::new() })
    }

    /// Queues a frame without waking the writer. On [`Queued::First`] the caller must call
    /// [`Outbox::wake`] once it has queued everything it has for this socket; on
    /// [`Queued::Full`] the writer is woken here, to drop the socket.
    pub fn push_quietly(&self, frame: Outbound) -> Queued {
        let mut state = self.state.lock().expect("outbox lock");
        if state.closed {
            return Queued::Closed;
        }
        if state.frames.len() >= OUTBOX_FRAMES || state.bytes + frame.bytes() > self.max_bytes {
            state.overflowed = true;
            drop(state);
            self.wake();
            self.interrupt.notify_waiters();
            return Queued::Full;
        }
        Self::enqueue(&mut state, frame)
    }

    /// Queues a short-lived frame (typing) unless one with the same `key` is still waiting or the
    /// socket is behind; never overflows the outbox.
    pub fn push_ephemeral_quietly(&self, frame: Outbound, key: u64) -> Queued {
        let mut state = self.state.lock().expect("outbox lock");
        if state.closed {
            return Queued::Closed;
        }
        let behind = state.frames.len() >= OUTBOX_FRAMES / EPHEMERAL_SHARE
            || state.bytes + frame.bytes() > self.max_bytes / EPHEMERAL_SHARE;
        if behind || !state.ephemeral.insert(key) {
            return Queued::Skipped;
        }
        Self::enqueue(&mut state, frame)
    }

    fn enqueue(state: &mut State, frame: Outbound) -> Queued {
        state.bytes += frame.bytes();
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

    /// Queues a close frame behind what is queued, even into a full outbox, accepts nothing after
    /// it, and interrupts a writer stuck on a client that stopped reading.
    pub fn close_with(&self, code: u16, reason: &'static str) {
        let mut state = self.state.lock().expect("outbox lock");
        if state.closed {
            return;
        }
        state.frames.push_back(Outbound::Close(code, reason));
        state.closed = true;
        state.closing = true;
        drop(state);
        self.wake();
        self.interrupt.notify_waiters();
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
            state.bytes = 0;
            state.ephemeral.clear();
            return Some(Taken::Frames);
        }
        if state.closed {
            return Some(Taken::Closed);
        }
        // A burst can leave large buffers behind; an idle socket should not keep them.
        if state.frames.capacity() > 256 {
            state.frames = VecDeque::new();
        }
        if state.ephemeral.capacity() > 64 {
            state.ephemeral = HashSet::new();
        }
        None
    }

    /// Resolves once the outbox overflows or a close is asked for: a writer races its writes
    /// against this, so a client that stops reading cannot hold the socket open.
    pub async fn interrupted(&self) -> Interrupt {
        loop {
            let notified = self.interrupt.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(interrupt) = self.state.lock().expect("outbox lock").interrupt() {
                return interrupt;
            }
            notified.await;
        }
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

    const BYTES: usize = 4 * 1024 * 1024;

    fn text(s: &str) -> Outbound {
        Outbound::Text(s.into())
    }

    #[tokio::test]
    async fn only_the_first_frame_asks_for_a_wake_up_and_the_writer_takes_them_all() {
        let outbox = Outbox::new(BYTES);
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
        let outbox = Outbox::new(BYTES);
        for _ in 0..OUTBOX_FRAMES {
            assert_ne!(outbox.push(text("x")), Queued::Full);
        }
        assert_eq!(outbox.push(text("y")), Queued::Full);
        let mut taken = VecDeque::new();
        assert_eq!(outbox.take_all(&mut taken).await, Taken::Overflowed);
        assert!(taken.is_empty(), "a socket this far behind is dropped, not written to");
    }

    #[tokio::test]
    async fn an_outbox_is_bounded_in_bytes_as_well_as_frames() {
        let outbox = Outbox::new(BYTES);
        let big: Arc<str> = "x".repeat(4000).into();
        let fits = BYTES / 4000;
        for _ in 0..fits {
            assert_ne!(outbox.push(Outbound::Text(big.clone())), Queued::Full);
        }
        assert_eq!(outbox.push(Outbound::Text(big)), Queued::Full);
        assert_eq!(outbox.interrupted().await, Interrupt::Overflowed);
    }

    #[tokio::test]
    async fn short_lived_frames_coalesce_and_never_overflow_a_socket() {
        let outbox = Outbox::new(BYTES);
        assert_eq!(outbox.push_ephemeral_quietly(text("typing"), 7), Queued::First);
        assert_eq!(outbox.push_ephemeral_quietly(text("typing"), 7), Queued::Skipped, "the same one is still waiting");
        assert_eq!(outbox.push_ephemeral_quietly(text("typing"), 8), Queued::Behind);
        let mut taken = VecDeque::new();
        assert_eq!(outbox.take_all(&mut taken).await, Taken::Frames);
        assert_eq!(taken.len(), 2);
        assert_eq!(outbox.push_ephemeral_quietly(text("typing"), 7), Queued::First, "taken, so a new one may wait");
        for _ in 0..OUTBOX_FRAMES / EPHEMERAL_SHARE {
            outbox.push_quietly(text("m"));
        }
        for key in 100..100_000 {
            assert_eq!(outbox.push_ephemeral_quietly(text("typing"), key), Queued::Skipped, "a socket behind gets none");
        }
        assert_ne!(outbox.push_quietly(text("a message")), Queued::Full);
    }

    #[tokio::test]
    async fn a_close_gets_past_a_full_outbox_and_interrupts_the_writer() {
        let outbox = Outbox::new(BYTES);
        let waiting = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.interrupted().await })
        };
        tokio::task::yield_now().await;
        for _ in 0..OUTBOX_FRAMES {
            outbox.push_quietly(text("x"));
        }
        outbox.close_with(4401, "signed out");
        assert_eq!(waiting.await.unwrap(), Interrupt::Closing);
        let mut taken = VecDeque::new();
        assert_eq!(outbox.take_all(&mut taken).await, Taken::Frames);
        assert!(matches!(taken.back(), Some(Outbound::Close(4401, _))));
    }

    #[tokio::test]
    async fn closing_lets_the_writer_finish_what_is_queued_and_refuses_more() {
        let outbox = Outbox::new(BYTES);
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
