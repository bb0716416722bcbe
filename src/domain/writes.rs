//! What travels along the one write path: sends and changes on their way to the writer, and what
//! became of them on their way to the delivery task.
use std::{sync::Arc, time::Instant};

use tokio::sync::oneshot;

use super::{
    ConversationId, ConversationName, Kind, Message, Role, SocketId, Topic, UserId, Username, Visibility, rules::Actor,
};
use crate::error::Result;

/// A validated message on its way to the database.
pub struct SendRequest {
    pub sender: UserId,
    pub sender_name: String,
    /// A server admin, who may know every room exists.
    pub sender_is_admin: bool,
    pub target: Target,
    pub body: String,
    pub client_id: String,
    pub origin: Origin,
    /// When validation finished, for the send-to-ack latency metric.
    pub queued_at: Instant,
}

/// Where a message goes.
pub enum Target {
    /// To one person, in the direct conversation the first message creates.
    Direct { recipient: UserId, recipient_name: String },
    /// Into a conversation of any kind the sender is a member of.
    Conversation(ConversationId),
}

/// Where the answer goes.
pub enum Origin {
    /// A WebSocket: the ack frame goes to that socket, the sender's other sockets get the message.
    Socket(SocketId),
    /// A REST call waiting for its answer.
    Request(oneshot::Sender<Result<Sent>>),
}

/// A stored message; `created` is false when it was a resend of one stored earlier.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    pub created: bool,
}

/// The members of a conversation as the writer last committed them: who its messages go to.
#[derive(Debug)]
pub struct Audience {
    pub kind: Kind,
    pub archived: bool,
    pub members: Arc<[UserId]>,
    /// Member names of a direct conversation, for a message's `to`.
    pub direct_names: Vec<(UserId, String)>,
}

impl Audience {
    pub fn direct(a: (UserId, String), b: (UserId, String)) -> Self {
        Self { kind: Kind::Direct, archived: false, members: Arc::from([a.0, b.0]), direct_names: vec![a, b] }
    }

    pub fn is_member(&self, user: UserId) -> bool {
        self.members.contains(&user)
    }

    /// The other person of a direct conversation.
    pub fn peer_of(&self, user: UserId) -> Option<&str> {
        self.direct_names.iter().find(|(id, _)| *id != user).map(|(_, name)| name.as_str())
    }
}

/// What became of one send once its batch was committed.
pub enum Outcome {
    /// `first_post`: the sender had not written in this conversation before, so in a direct one
    /// the recipient may now see their presence.
    Created { message: Message, audience: Arc<Audience>, first_post: bool },
    Resent(Message),
}

/// A change to conversations, asked for by a person (over the API) or the command line.
pub struct ChangeRequest {
    pub actor: Actor,
    pub operation: Operation,
    pub reply: oneshot::Sender<Result<ConversationId>>,
}

pub enum Operation {
    Create {
        kind: Kind,
        name: Option<ConversationName>,
        topic: Option<Topic>,
        visibility: Option<Visibility>,
        members: Vec<Username>,
        /// Who owns a room the command line creates (people own the rooms they create).
        owner: Option<Username>,
    },
    Update { id: ConversationId, name: Option<ConversationName>, topic: Option<Topic>, archived: Option<bool> },
    AddMembers { id: ConversationId, usernames: Vec<Username>, role: Role },
    RemoveMember { id: ConversationId, username: Username },
    SetRole { id: ConversationId, username: Username, role: Role },
    Join { id: ConversationId },
    Delete { id: ConversationId },
}

impl Operation {
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Operation::Create { .. } => None,
            Operation::Update { id, .. }
            | Operation::AddMembers { id, .. }
            | Operation::RemoveMember { id, .. }
            | Operation::SetRole { id, .. }
            | Operation::Join { id }
            | Operation::Delete { id } => Some(*id),
        }
    }
}
