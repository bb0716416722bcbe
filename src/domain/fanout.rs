//! The boundary between the write path and whatever carries what it committed to people: the
//! domain says *what happened* and to whom; the realtime layer (today) or a cluster bus
//! (tomorrow) turns that into frames on sockets.
use std::sync::Arc;

use super::{ConversationId, Message, MessageId, SocketId, UserId};
use crate::error::Error;

pub trait Fanout: Send + Sync + 'static {
    /// One commit's entries. Called from one task, commit after commit, so entries arrive in
    /// commit order; every entry of the stream up to `commit.up_to` has been published once this
    /// returns (a socket opened now gets everything later live, the rest from `sync`).
    fn publish(&self, commit: Commit);

    /// Something outside the stream: typing, read markers, presence a message revealed.
    fn notify(&self, notice: Notice);

    /// Whether `user` has at least one open socket.
    fn is_online(&self, user: UserId) -> bool;
}

/// What one transaction made true, in commit order.
#[derive(Default)]
pub struct Commit {
    pub entries: Vec<Entry>,
    /// The newest stream id committed so far (a commit of refusals only holds no new entry).
    pub up_to: MessageId,
}

pub enum Entry {
    /// A stored message, or a resend of one (`created: false`: nobody but the sending socket
    /// hears of it again). `ack` is the sender and the socket it came from.
    Message { message: Arc<Message>, audience: Arc<[UserId]>, ack: Option<(UserId, SocketId)>, created: bool },
    /// A send from a socket that was not stored.
    Refused { sender: UserId, socket: SocketId, client_id: String, error: Error },
    /// A change of a conversation. `added` are the members it added (they and the others now
    /// see each other's presence); `audience` includes a member it removed.
    Event { message: Arc<Message>, audience: Arc<[UserId]>, added: Vec<UserId> },
}

pub enum Notice {
    /// `from` is typing in `conversation`; at most one such notice waits per socket (`key`).
    Typing { conversation: ConversationId, from: String, to: Vec<UserId>, key: u64 },
    /// `reader` has read `conversation` up to `up_to` (a receipt for the other members).
    Read { conversation: ConversationId, reader: String, up_to: MessageId, to: Vec<UserId> },
    /// I have read `conversation` up to `up_to`, for my other sockets; `peer` is the other
    /// person of a direct conversation.
    ReadMarker { user: UserId, conversation: ConversationId, peer: Option<String>, up_to: MessageId, except: Option<SocketId> },
    /// `watchers` may now see `user`'s presence (`user` wrote to them for the first time).
    PresenceRevealed { user: UserId, watchers: Vec<UserId> },
}
