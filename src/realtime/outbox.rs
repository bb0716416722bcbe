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
    pin::pin,
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
    /// The socket is too far behind (or gone); nothing was queued.
    Full,
    Closed,
}

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Something to write, or the outbox was closed.
    ready: Notify,
    /// The writer took frames (there is room again), or the outbox was closed.
    drained: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outbound>,
    closed: bool,
}

impl Outbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Queues a frame without waking the writer. On [`Queued::First`] the caller must call
    /// [`Outbox::wake`] once it has queued everything it has for this socket.
    pub fn push_quietly(&self, frame: Outbound) -> Queued {
        let mut state = self.state.lock().expect("outbox lock");
        if state.closed {
            return Queued::Closed;
        }
        if state.frames.len() >= OUTBOX_FRAMES {
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

    /// Queues a frame, waiting while the outbox is full (for long replies such as `sync`, which
    /// must slow down to the socket's pace rather than drop it). Fails once the socket is gone.
    pub async fn push_waiting(&self, frame: Outbound) -> Result<(), Closed> {
        let mut frame = Some(frame);
        loop {
            let mut drained = pin!(self.drained.notified());
            drained.as_mut().enable();
            {
                let mut state = self.state.lock().expect("outbox lock");
                if state.closed {
                    return Err(Closed);
                }
                if state.frames.len() < OUTBOX_FRAMES {
                    state.frames.push_back(frame.take().expect("frame still to queue"));
                    let first = state.frames.len() == 1;
                    drop(state);
                    if first {
                        self.wake();
                    }
                    return Ok(());
                }
            }
            drained.await;
        }
    }

    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// For the writer: waits for frames and moves all of them into `into` (which should be empty;
    /// it is swapped in, so both buffers keep their capacity between rounds). Returns false once
    /// the outbox is closed and empty: the writer is done.
    pub async fn take_all(&self, into: &mut VecDeque<Outbound>) -> bool {
        loop {
            {
                let mut state = self.state.lock().expect("outbox lock");
                if !state.frames.is_empty() {
                    std::mem::swap(&mut state.frames, into);
                    drop(state);
                    self.drained.notify_waiters();
                    return true;
                }
                if state.closed {
                    return false;
                }
                // A burst can leave a large buffer behind; an idle socket should not keep it.
                if state.frames.capacity() > 256 {
                    state.frames = VecDeque::new();
                }
            }
            self.ready.notified().await;
        }
    }

    /// No more frames will be accepted; the writer sends what is queued and stops.
    pub fn close(&self) {
        self.state.lock().expect("outbox lock").closed = true;
        self.ready.notify_one();
        self.drained.notify_waiters();
    }
}

/// The socket behind an outbox is gone.
#[derive(Debug)]
pub struct Closed;

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
    use std::time::Duration;

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
        assert!(outbox.take_all(&mut taken).await);
        assert_eq!(taken.len(), 2);
        taken.clear();
        assert_eq!(outbox.push_quietly(text("c")), Queued::First, "the outbox is empty again");
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_and_a_waiting_push_resumes_once_the_writer_drains() {
        let outbox = Outbox::new();
        for _ in 0..OUTBOX_FRAMES {
            assert_ne!(outbox.push(text("x")), Queued::Full);
        }
        assert_eq!(outbox.push(text("y")), Queued::Full);
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push_waiting(text("z")).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no room yet");
        let mut taken = VecDeque::new();
        assert!(outbox.take_all(&mut taken).await);
        assert_eq!(taken.len(), OUTBOX_FRAMES);
        waiting.await.unwrap().expect("queued after the drain");
        taken.clear();
        assert!(outbox.take_all(&mut taken).await);
        assert!(matches!(&taken[0], Outbound::Text(t) if &**t == "z"));
    }

    #[tokio::test]
    async fn closing_lets_the_writer_finish_what_is_queued_and_refuses_more() {
        let outbox = Outbox::new();
        outbox.push(text("last"));
        outbox.close();
        assert_eq!(outbox.push(text("late")), Queued::Closed);
        assert!(outbox.push_waiting(text("late")).await.is_err());
        let mut taken = VecDeque::new();
        assert!(outbox.take_all(&mut taken).await);
        assert_eq!(taken.len(), 1);
        taken.clear();
        assert!(!outbox.take_all(&mut taken).await, "closed and empty: the writer stops");
    }
}
