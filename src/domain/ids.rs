//! Ids as distinct types, so that a user's id cannot be passed where a conversation's is expected.
use sea_orm::DeriveValueType;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, DeriveValueType, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An account.
    UserId
);
id_type!(
    /// A conversation of any kind.
    ConversationId
);
id_type!(
    /// A position in the one stream of changes: a message, or an event (a member added, a rename…),
    /// numbered by the writer in commit order. Clients' `last_id` and `sync.after` are these.
    MessageId
);

/// One open WebSocket, as the write path knows it: where an ack goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId(pub u64);
