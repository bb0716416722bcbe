//! Validated values: once one of these exists, it obeys the rules in the protocol document.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use super::ids::{ConversationId, MessageId, SocketId, UserId};

/// 3–32 characters of `a-z 0-9 _ . -`, canonicalised to lowercase so `Alice` and `alice` are one user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.trim().to_ascii_lowercase();
        let length = name.chars().count();
        if length < 3 {
            return Err(Error::InvalidUsername("a username needs at least 3 characters"));
        }
        if length > 32 {
            return Err(Error::InvalidUsername("a username can be at most 32 characters long"));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-');
        if !name.chars().all(allowed) {
            return Err(Error::InvalidUsername("a username may only contain a-z, 0-9, _, . and -"));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// 8–128 characters; kept out of `Debug` output so it cannot reach a log.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self> {
        let length = raw.chars().count();
        if length < 8 {
            return Err(Error::InvalidPassword("a password needs at least 8 characters"));
        }
        if length > 128 {
            return Err(Error::InvalidPassword("a password can be at most 128 characters long"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A message body: trimmed, non-empty, at most `max_chars` characters.
#[derive(Clone, Debug)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self> {
        let body = raw.trim();
        if body.is_empty() {
            return Err(Error::EmptyMessage);
        }
        if body.chars().count() > max_chars {
            return Err(Error::MessageTooLong(max_chars));
        }
        Ok(Self(body.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The sender's idempotency key: 1–64 printable characters, unique per sender.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(String);

pub const EVENT_CLIENT_ID_PREFIX: &str = "event-";

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self> {
        let length = raw.chars().count();
        // `event-…` keys are the server's own, for the events it stores beside messages.
        if length == 0 || length > 64 || raw.chars().any(char::is_control) || raw.starts_with(EVENT_CLIENT_ID_PREFIX) {
            return Err(Error::InvalidClientId);
        }
        Ok(Self(raw.to_owned()))
    }

    /// A fresh key for senders that did not supply one (a REST call with no `client_id`).
    pub fn generate() -> Self {
        Self(format!("srv-{}", crate::domain::accounts::random_hex(12)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A conversation's name: 1–80 characters after trimming, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationName(String);

impl ConversationName {
    pub const MAX_CHARS: usize = 80;

    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Error::InvalidName("a name cannot be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(Error::InvalidName("a name can be at most 80 characters long"));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::InvalidName("a name cannot contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two room names are compared in: names are unique ignoring case.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A room's topic: at most 250 characters after trimming (empty clears it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic(String);

impl Topic {
    pub const MAX_CHARS: usize = 250;

    pub fn parse(raw: &str) -> Result<Self> {
        let topic = raw.trim();
        if topic.chars().count() > Self::MAX_CHARS {
            return Err(Error::InvalidTopic);
        }
        if topic.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::InvalidTopic);
        }
        Ok(Self(topic.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Exactly two people, created by the first message.
    Direct,
    /// 3–50 people, unnamed unless renamed, no roles.
    Group,
    /// Named, with a topic, public or private, up to 10,000 members, with roles.
    Room,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Group => "group",
            Kind::Room => "room",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "direct" => Some(Kind::Direct),
            "group" => Some(Kind::Group),
            "room" => Some(Kind::Room),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed in the directory; anyone may read and join.
    Public,
    /// Invisible to non-members.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// A member's role in a room (members of direct and group conversations are all `member`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(Error::InvalidRole),
        }
    }
}

/// What an event says happened; stored as the JSON body of an event row, in the same stream as
/// messages. `by` is who did it (`None`: an administrator on the command line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    ConversationCreated {
        by: Option<String>,
        kind: Kind,
        name: Option<String>,
        topic: Option<String>,
        visibility: Option<Visibility>,
        members: Vec<MemberRole>,
    },
    MemberAdded { by: Option<String>, members: Vec<MemberRole> },
    MemberRemoved { by: Option<String>, username: String },
    ConversationUpdated {
        by: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        archived: Option<bool>,
    },
    RoleChanged { by: Option<String>, username: String, role: Role },
    ConversationRemoved { by: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRole {
    pub username: String,
    pub role: Role,
}

impl Change {
    pub fn by(&self) -> Option<&str> {
        match self {
            Change::ConversationCreated { by, .. }
            | Change::MemberAdded { by, .. }
            | Change::MemberRemoved { by, .. }
            | Change::ConversationUpdated { by, .. }
            | Change::RoleChanged { by, .. }
            | Change::ConversationRemoved { by } => by.as_deref(),
        }
    }

    /// A line for people (and for clients that only show bodies): "alice added bob".
    pub fn describe(&self) -> String {
        let by = self.by().unwrap_or("an administrator");
        let names = |members: &[MemberRole]| members.iter().map(|m| m.username.as_str()).collect::<Vec<_>>().join(", ");
        match self {
            Change::ConversationCreated { kind: Kind::Room, name, .. } => {
                format!("{by} created the room {}", name.as_deref().unwrap_or_default())
            }
            Change::ConversationCreated { members, .. } => format!("{by} started a conversation with {}", names(members)),
            Change::MemberAdded { members, .. } if self.by() == Some(members[0].username.as_str()) && members.len() == 1 => {
                format!("{by} joined")
            }
            Change::MemberAdded { members, .. } => format!("{by} added {}", names(members)),
            Change::MemberRemoved { username, .. } if self.by() == Some(username.as_str()) => format!("{username} left"),
            Change::MemberRemoved { username, .. } => format!("{by} removed {username}"),
            Change::ConversationUpdated { name: Some(name), .. } => format!("{by} renamed the conversation to {name}"),
            Change::ConversationUpdated { topic: Some(topic), .. } if topic.is_empty() => format!("{by} cleared the topic"),
            Change::ConversationUpdated { topic: Some(topic), .. } => format!("{by} set the topic: {topic}"),
            Change::ConversationUpdated { archived: Some(true), .. } => format!("{by} archived the room"),
            Change::ConversationUpdated { archived: Some(false), .. } => format!("{by} unarchived the room"),
            Change::ConversationUpdated { .. } => format!("{by} changed the conversation"),
            Change::RoleChanged { username, role, .. } => format!("{by} made {username} {}", role.as_str()),
            Change::ConversationRemoved { .. } => format!("{by} deleted the conversation"),
        }
    }
}

/// One entry of a conversation's stream as every client sees it, over REST and WebSocket alike:
/// a message, or (with `event`) a change to the conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub from: String,
    /// The other person, in a direct conversation only.
    pub to: Option<String>,
    pub body: String,
    /// Unix milliseconds; serialised as RFC 3339 at the edges.
    pub created_at: i64,
    pub client_id: String,
    pub event: Option<Change>,
}

/// A user as listed to other users.
#[derive(Clone, Debug)]
pub struct UserSummary {
    pub id: UserId,
    pub username: String,
    pub created_at: i64,
}

/// The signed-in account behind a request or socket.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub id: UserId,
    pub username: String,
    pub is_admin: bool,
    pub session_id: String,
    pub created_at: i64,
}

/// A member as a conversation lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    /// How far they have read.
    pub read_up_to: MessageId,
    pub online: bool,
}

/// A conversation as one of its members (or, for a public room, anyone) sees it.
#[derive(Clone, Debug)]
pub struct ConversationView {
    pub id: ConversationId,
    pub kind: Kind,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub visibility: Option<Visibility>,
    pub archived: bool,
    /// All members, or the first ones of a large room (see `member_count`).
    pub members: Vec<Member>,
    pub member_count: u64,
    /// The viewer's role; `None` when they are not a member (a public room).
    pub my_role: Option<Role>,
    /// Messages from others above the viewer's read marker (counted up to 9999).
    pub unread: u64,
    pub read_up_to: MessageId,
    pub last_message: Option<Message>,
    /// The newest stream id of the conversation, for ordering by activity.
    pub last_activity: MessageId,
    pub created_at: i64,
}

impl ConversationView {
    /// The other person of a direct conversation, as seen by `me`.
    pub fn peer(&self, me: UserId) -> Option<&Member> {
        (self.kind == Kind::Direct).then(|| self.members.iter().find(|m| m.id != me)).flatten()
    }
}

/// A public room as the directory lists it.
#[derive(Clone, Debug)]
pub struct DirectoryEntry {
    pub id: ConversationId,
    pub name: String,
    pub topic: Option<String>,
    pub member_count: u64,
    pub joined: bool,
}

/// One page of a conversation's history, ascending by id.
#[derive(Clone, Debug)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_canonical_and_checked() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert_eq!(Username::parse("a.b-c_9").unwrap().as_str(), "a.b-c_9");
        for bad in ["ab", "", "has space", "émile", "x".repeat(33).as_str(), "semi;colon"] {
            assert!(matches!(Username::parse(bad), Err(Error::InvalidUsername(_))), "{bad:?}");
        }
        assert!(Username::parse(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert!(Password::parse(&"é".repeat(129)).is_err());
        assert_eq!(format!("{:?}", Password::parse("secret-pass").unwrap()), "Password(<redacted>)");
    }

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(MessageBody::parse("  hi \n", 10).unwrap().into_inner(), "hi");
        assert!(matches!(MessageBody::parse(" \n\t ", 10), Err(Error::EmptyMessage)));
        assert!(MessageBody::parse(&"😀".repeat(10), 10).is_ok());
        assert!(matches!(MessageBody::parse(&"😀".repeat(11), 10), Err(Error::MessageTooLong(10))));
    }

    #[test]
    fn names_and_topics_are_trimmed_and_bounded() {
        assert_eq!(ConversationName::parse("  Design  ").unwrap().as_str(), "Design");
        assert_eq!(ConversationName::parse("Design").unwrap().key(), ConversationName::parse("DESIGN").unwrap().key());
        for bad in ["", "   ", "a\u{7}b", &"n".repeat(81)] {
            assert!(matches!(ConversationName::parse(bad), Err(Error::InvalidName(_))), "{bad:?}");
        }
        assert!(ConversationName::parse(&"é".repeat(80)).is_ok());
        assert_eq!(Topic::parse("  ").unwrap().into_inner(), "");
        assert!(Topic::parse(&"t".repeat(251)).is_err());
        assert!(Topic::parse("line one\nline two").is_ok());
    }

    #[test]
    fn changes_read_as_sentences_and_round_trip_as_json() {
        let added = Change::MemberAdded {
            by: Some("alice".into()),
            members: vec![MemberRole { username: "bob".into(), role: Role::Member }],
        };
        assert_eq!(added.describe(), "alice added bob");
        let joined = Change::MemberAdded { by: Some("bob".into()), members: vec![MemberRole { username: "bob".into(), role: Role::Member }] };
        assert_eq!(joined.describe(), "bob joined");
        let left = Change::MemberRemoved { by: Some("bob".into()), username: "bob".into() };
        assert_eq!(left.describe(), "bob left");
        let json = serde_json::to_string(&added).unwrap();
        assert_eq!(json, r#"{"type":"member_added","by":"alice","members":[{"username":"bob","role":"member"}]}"#);
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), added);
        assert_eq!(Change::ConversationRemoved { by: None }.describe(), "an administrator deleted the conversation");
    }

    #[test]
    fn client_ids_are_bounded_and_printable() {
        assert!(ClientId::parse("c-1").is_ok());
        assert!(ClientId::parse(&"x".repeat(64)).is_ok());
        assert!(ClientId::parse(&"x".repeat(65)).is_err());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a\nb").is_err());
        assert_ne!(ClientId::generate(), ClientId::generate());
    }
}
