//! The `/ws` protocol's JSON text frames, exactly as `docs/protocol.md` describes them.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{Message, MessageId};

/// Frames a client may send.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Auth { token: String },
    SendMessage { to: String, body: String, client_id: String },
    Typing { to: String },
    Read { peer: String, up_to: MessageId },
    Sync { after: MessageId },
    Ping,
}

/// Frames the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Ready { username: &'a str, last_id: MessageId },
    OnlineUsers { users: Vec<String> },
    Presence { username: &'a str, online: bool },
    Ack { client_id: &'a str, message: &'a Message },
    ReceiveMessage { message: &'a Message },
    Typing { from: &'a str },
    Read { peer: &'a str, up_to: MessageId },
    /// To a user's other sockets: they read their conversation with `peer` up to `up_to`.
    ReadMarker { peer: &'a str, up_to: MessageId },
    SyncDone { last_id: MessageId },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
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

/// Why a client frame could not be understood, as the `error` frame's code and message.
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
}

const KNOWN_TYPES: &[&str] = &["auth", "send_message", "typing", "read", "sync", "ping"];

/// Parses one text frame. On failure, looks again to say precisely what was wrong.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    // serde would also accept `["ping"]` for a tagged enum; the protocol has objects only.
    if !text.trim_start().starts_with('{') {
        return Err(explain(text, "a frame is a JSON object with a string `type`".into()));
    }
    serde_json::from_str(text).map_err(|error| explain(text, error.to_string()))
}

fn explain(text: &str, error: String) -> FrameError {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return FrameError { code: "invalid_json", message: format!("not valid JSON: {error}") };
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => FrameError { code: "invalid_frame", message: "a frame is a JSON object with a string `type`".into() },
        Some(kind) if !KNOWN_TYPES.contains(&kind) => {
            FrameError { code: "unknown_type", message: format!("unknown frame type `{kind}`") }
        }
        Some(kind) => FrameError { code: "invalid_frame", message: format!("invalid `{kind}` frame: {error}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_frame() {
        assert_eq!(
            parse_client_frame(r#"{"type":"send_message","to":"bob","body":"hi","client_id":"c-1"}"#).ok(),
            Some(ClientFrame::SendMessage { to: "bob".into(), body: "hi".into(), client_id: "c-1".into() })
        );
        assert_eq!(parse_client_frame(r#"{"type":"ping"}"#).ok(), Some(ClientFrame::Ping));
        assert_eq!(parse_client_frame(r#"{"type":"sync","after":41}"#).ok(), Some(ClientFrame::Sync { after: 41 }));
        assert_eq!(
            parse_client_frame(r#"{"type":"read","peer":"bob","up_to":42}"#).ok(),
            Some(ClientFrame::Read { peer: "bob".into(), up_to: 42 })
        );
    }

    #[test]
    fn explains_bad_frames() {
        let code = |text: &str| parse_client_frame(text).err().map(|e| e.code);
        assert_eq!(code("{not json"), Some("invalid_json"));
        assert_eq!(code(r#"{"type":"shout"}"#), Some("unknown_type"));
        assert_eq!(code(r#"["ping"]"#), Some("invalid_frame"));
        assert_eq!(code(r#"{"type":"sync","after":"x"}"#), Some("invalid_frame"));
        assert_eq!(code(r#"{"type":"typing","to":"bob","extra":1}"#), Some("invalid_frame"));
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        assert_eq!(&*ServerFrame::Pong.to_text(), r#"{"type":"pong"}"#);
        assert_eq!(
            &*ServerFrame::Presence { username: "bob", online: false }.to_text(),
            r#"{"type":"presence","username":"bob","online":false}"#
        );
        assert_eq!(
            &*ServerFrame::Error { code: "x", message: "y", client_id: None }.to_text(),
            r#"{"type":"error","code":"x","message":"y"}"#
        );
    }
}
