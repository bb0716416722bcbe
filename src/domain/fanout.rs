//! The boundary between the write path and whatever carries what it committed to people: the
//! domain says *what happened* and to whom; the realtime layer turns that into frames on this
//! node's sockets, and a cluster bus ([`Peers`]) carries it to the other nodes.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// `from` is typing in `conversation`; at most one such notice waits per socket (`key`).
    Typing { conversation: ConversationId, from: String, to: Vec<UserId>, key: u64 },
    /// `reader` has read `conversation` up to `up_to` (a receipt for the other members).
    Read { conversation: ConversationId, reader: String, up_to: MessageId, to: Vec<UserId> },
    /// I have read `conversation` up to `up_to`, for my other sockets; `peer` is the other
    /// person of a direct conversation.
    ReadMarker {
        user: UserId,
        conversation: ConversationId,
        peer: Option<String>,
        up_to: MessageId,
        /// Sockets are numbered per node: on another node this is `None`.
        #[serde(skip)]
        except: Option<SocketId>,
    },
    /// `watchers` may now see `user`'s presence (`user` wrote to them for the first time).
    PresenceRevealed { user: UserId, watchers: Vec<UserId> },
}

/// The other nodes of a cluster, as the write path sees them.
pub trait Peers: Send + Sync + 'static {
    /// Tells the other nodes what this node committed, as soon as it is committed.
    fn share(&self, commit: &SharedCommit);
}

/// What one node committed: every stream entry with `after < id <= up_to`, each with who sees
/// it. Ranges of successive commits meet end to end, which is how a node notices one it missed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SharedCommit {
    pub after: MessageId,
    pub up_to: MessageId,
    /// Unix milliseconds, for the bus lag.
    pub committed_at: i64,
    pub entries: Vec<SharedEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SharedEntry {
    pub message: Message,
    pub audience: Vec<UserId>,
    /// For an event: the members it added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<UserId>,
}

impl SharedEntry {
    pub fn into_entry(self) -> Entry {
        let (message, audience) = (Arc::new(self.message), Arc::from(self.audience));
        match message.event {
            Some(_) => Entry::Event { message, audience, added: self.added },
            None => Entry::Message { message, audience, ack: None, created: true },
        }
    }

    /// The part of a local entry other nodes deliver: none for a resend or a refusal.
    pub fn from_entry(entry: &Entry) -> Option<Self> {
        match entry {
            Entry::Message { message, audience, created: true, .. } => {
                Some(Self { message: (**message).clone(), audience: audience.to_vec(), added: Vec::new() })
            }
            Entry::Event { message, audience, added } => {
                Some(Self { message: (**message).clone(), audience: audience.to_vec(), added: added.clone() })
            }
            _ => None,
        }
    }
}
