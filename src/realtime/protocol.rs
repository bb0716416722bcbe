//! The `/ws` protocol's JSON text frames, exactly as `docs/protocol.md` describes them.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    domain::{ConversationId, Message, MessageId, format_time},
    error::ErrorCode,
};

/// Close codes: the standard ones chatd uses, and its own (4000–4999 are for applications).
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_SERVER_ERROR: u16 = 1011;
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_TOO_MANY_SOCKETS: u16 = 4429;

/// Frames a client may send. A conversation is named by `conversation_id`, or (a direct one, as
/// the first protocol had it) by the other person's name in `to` / `peer`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    SendMessage {
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        conversation_id: Option<ConversationId>,
        body: String,
        client_id: String,
    },
    Typing {
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        conversation_id: Option<ConversationId>,
    },
    Read {
        #[serde(default)]
        peer: Option<String>,
        #[serde(default)]
        conversation_id: Option<ConversationId>,
        up_to: MessageId,
    },
    Sync {
        after: MessageId,
    },
    Ping,
}

/// A message (or an event, as a timeline line) inside a frame; the same object as over REST.
#[derive(Debug, Serialize)]
pub struct MessageFrame<'a> {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub from: &'a str,
    pub to: Option<&'a str>,
    pub body: &'a str,
    pub created_at: String,
    pub client_id: &'a str,
    pub kind: &'static str,
    pub event: Option<&'a crate::domain::Change>,
}

impl<'a> From<&'a Message> for MessageFrame<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            from: &m.from,
            to: m.to.as_deref(),
            body: &m.body,
            created_at: format_time(m.created_at),
            client_id: &m.client_id,
            kind: if m.event.is_some() { "event" } else { "text" },
            event: m.event.as_ref(),
        }
    }
}

/// Frames the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Ready {
        username: &'a str,
        last_id: MessageId,
    },
    OnlineUsers {
        users: Vec<String>,
    },
    Presence {
        username: &'a str,
        online: bool,
    },
    Ack {
        client_id: &'a str,
        message: MessageFrame<'a>,
    },
    ReceiveMessage {
        message: MessageFrame<'a>,
    },
    Typing {
        conversation_id: ConversationId,
        from: &'a str,
    },
    /// `peer` has read `conversation_id` up to `up_to` (a receipt).
    Read {
        conversation_id: ConversationId,
        peer: &'a str,
        up_to: MessageId,
    },
    /// To a user's other sockets: they read `conversation_id` up to `up_to`; `peer` is the other
    /// person of a direct conversation.
    ReadMarker {
        conversation_id: ConversationId,
        peer: Option<&'a str>,
        up_to: MessageId,
    },
    SyncDone {
        last_id: MessageId,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        client_id: Option<&'a str>,
    },
    Pong,
}

impl ServerFrame<'_> {
    /// Serialised once, then shared by every socket it goes to.
    pub fn to_text(&self) -> Arc<str> {
        serde_json::to_string(self).expect("server frames always serialise").into()
    }
}

/// The frame of an event (`member_added`, `conversation_updated`, …): the change's own fields,
/// with the stream `id` it was committed at, its conversation and its time. The same frame goes
/// out live and in answer to `sync`.
pub fn event_frame(message: &Message) -> Option<Arc<str>> {
    let change = message.event.as_ref()?;
    let mut frame = serde_json::to_value(change).expect("changes serialise");
    let object = frame.as_object_mut().expect("a change is an object");
    object.insert("id".into(), Value::from(message.id.0));
    object.insert("conversation_id".into(), Value::from(message.conversation_id.0));
    object.insert("created_at".into(), Value::from(format_time(message.created_at)));
    Some(frame.to_string().into())
}

/// The frame a stream entry is delivered as: `receive_message` for a message, its own frame for
/// an event.
pub fn entry_frame(message: &Message) -> Arc<str> {
    event_frame(message).unwrap_or_else(|| ServerFrame::ReceiveMessage { message: message.into() }.to_text())
}

/// Why a client frame could not be understood, as the `error` frame's code and message.
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

const KNOWN_TYPES: &[&str] = &["auth", "send_message", "typing", "read", "sync", "ping"];

/// Parses one text frame. On failure, looks again to say precisely what was wrong.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    // serde would also accept `["ping"]` for a tagged enum; the protocol has objects only.
    if !text.trim_start().starts_with('{') {
        return Err(explain(text, "a frame is a JSON object with a string `type`".into()));
    }
    let frame: ClientFrame = serde_json::from_str(text).map_err(|error| explain(text, error.to_string()))?;
    let named = match &frame {
        ClientFrame::SendMessage { to, conversation_id, .. } | ClientFrame::Typing { to, conversation_id } => {
            Some((to.is_some(), conversation_id.is_some(), "to"))
        }
        ClientFrame::Read { peer, conversation_id, .. } => Some((peer.is_some(), conversation_id.is_some(), "peer")),
        _ => None,
    };
    if let Some((by_name, by_id, name_field)) = named
        && by_name == by_id
    {
        return Err(FrameError {
            code: ErrorCode::InvalidFrame,
            message: format!("name the conversation with exactly one of `conversation_id` and `{name_field}`"),
        });
    }
    Ok(frame)
}

fn explain(text: &str, error: String) -> FrameError {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return FrameError { code: ErrorCode::InvalidJson, message: format!("not valid JSON: {error}") };
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => FrameError { code: ErrorCode::InvalidFrame, message: "a frame is a JSON object with a string `type`".into() },
        Some(kind) if !KNOWN_TYPES.contains(&kind) => {
            FrameError { code: ErrorCode::UnknownType, message: format!("unknown frame type `{kind}`") }
        }
        Some(kind) => FrameError { code: ErrorCode::InvalidFrame, message: format!("invalid `{kind}` frame: {error}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Change, MemberRole, Role};

    #[test]
    fn parses_every_client_frame() {
        assert_eq!(
            parse_client_frame(r#"{"type":"send_message","to":"bob","body":"hi","client_id":"c-1"}"#).ok(),
            Some(ClientFrame::SendMessage { to: Some("bob".into()), conversation_id: None, body: "hi".into(), client_id: "c-1".into() })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"send_message","conversation_id":7,"body":"hi","client_id":"c-1"}"#).ok(),
            Some(ClientFrame::SendMessage {
                to: None,
                conversation_id: Some(ConversationId(7)),
                body: "hi".into(),
                client_id: "c-1".into()
            })
        );
        assert_eq!(parse_client_frame(r#"{"type":"ping"}"#).ok(), Some(ClientFrame::Ping));
        assert_eq!(parse_client_frame(r#"{"type":"sync","after":41}"#).ok(), Some(ClientFrame::Sync { after: MessageId(41) }));
        assert_eq!(
            parse_client_frame(r#"{"type":"read","peer":"bob","up_to":42}"#).ok(),
            Some(ClientFrame::Read { peer: Some("bob".into()), conversation_id: None, up_to: MessageId(42) })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"typing","conversation_id":3}"#).ok(),
            Some(ClientFrame::Typing { to: None, conversation_id: Some(ConversationId(3)) })
        );
    }

    #[test]
    fn explains_bad_frames() {
        let code = |text: &str| parse_client_frame(text).err().map(|e| e.code);
        assert_eq!(code("{not json"), Some(ErrorCode::InvalidJson));
        assert_eq!(code(r#"{"type":"shout"}"#), Some(ErrorCode::UnknownType));
        assert_eq!(code(r#"["ping"]"#), Some(ErrorCode::InvalidFrame));
        assert_eq!(code(r#"{"type":"sync","after":"x"}"#), Some(ErrorCode::InvalidFrame));
        assert_eq!(code(r#"{"type":"typing","to":"bob","extra":1}"#), Some(ErrorCode::InvalidFrame));
        assert_eq!(code(r#"{"type":"typing"}"#), Some(ErrorCode::InvalidFrame), "no conversation named");
        assert_eq!(code(r#"{"type":"typing","to":"bob","conversation_id":1}"#), Some(ErrorCode::InvalidFrame), "two named");
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        assert_eq!(&*ServerFrame::Pong.to_text(), r#"{"type":"pong"}"#);
        assert_eq!(
            &*ServerFrame::Presence { username: "bob", online: false }.to_text(),
            r#"{"type":"presence","username":"bob","online":false}"#
        );
        assert_eq!(
            &*ServerFrame::Error { code: ErrorCode::InternalError, message: "y", client_id: None }.to_text(),
            r#"{"type":"error","code":"internal_error","message":"y","client_id":null}"#
        );
        let event = Message {
            id: MessageId(9),
            conversation_id: ConversationId(3),
            from: "alice".into(),
            to: None,
            body: "alice added bob".into(),
            created_at: 0,
            client_id: "event-9".into(),
            event: Some(Change::MemberAdded {
                by: Some("alice".into()),
                members: vec![MemberRole { username: "bob".into(), role: Role::Member }],
            }),
        };
        let frame: Value = serde_json::from_str(&entry_frame(&event)).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"type": "member_added", "id": 9, "conversation_id": 3, "by": "alice",
                "members": [{"username": "bob", "role": "member"}], "created_at": "1970-01-01T00:00:00.000Z"})
        );
    }
}
