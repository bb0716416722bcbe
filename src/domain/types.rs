//! Validated values: once one of these exists, it obeys the rules in the protocol document.
use serde::Serialize;

use crate::error::{Error, Result};

pub type UserId = i64;
pub type MessageId = i64;
pub type ConversationId = i64;

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

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self> {
        let length = raw.chars().count();
        if length == 0 || length > 64 || raw.chars().any(char::is_control) {
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

/// A stored message as every client sees it, over REST and WebSocket alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: MessageId,
    pub from: String,
    pub to: String,
    pub body: String,
    /// Unix milliseconds; serialised as RFC 3339 at the edges.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: i64,
    pub client_id: String,
}

fn serialize_time<S: serde::Serializer>(millis: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::domain::format_time(*millis))
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

/// One row of "my conversations".
#[derive(Clone, Debug)]
pub struct ConversationSummary {
    pub conversation_id: ConversationId,
    pub peer: String,
    pub peer_id: UserId,
    pub unread: u64,
    /// My read marker: the newest message id I have read.
    pub read_up_to: MessageId,
    /// The peer's read marker: the newest message id they have read (for "seen" receipts).
    pub peer_read_up_to: MessageId,
    pub last_message: Option<Message>,
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
    fn client_ids_are_bounded_and_printable() {
        assert!(ClientId::parse("c-1").is_ok());
        assert!(ClientId::parse(&"x".repeat(64)).is_ok());
        assert!(ClientId::parse(&"x".repeat(65)).is_err());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a\nb").is_err());
        assert_ne!(ClientId::generate(), ClientId::generate());
    }
}
