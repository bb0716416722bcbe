//! The REST request bodies, parsed exactly as the API parses them (JSON, then poem-openapi's
//! `ParseFromJSON`), then through the domain's validation. Nothing may panic; whatever parses obeys
//! the schema's types.
#![no_main]

use chatd::{
    domain::{ClientId, ConversationName, MessageBody, Password, Topic, Username},
    http::api::{AddMembers, ConversationPatchBody, Credentials, NewConversationBody, NewMessage, ReadMarker, RoleBody},
};
use libfuzzer_sys::fuzz_target;
use poem_openapi::types::ParseFromJSON;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(credentials) = Credentials::parse_from_json(Some(value.clone())) {
        assert!(value["username"].is_string() && value["password"].is_string(), "credentials from {value}");
        let _ = Username::parse(&credentials.username);
        let _ = Password::parse(&credentials.password);
    }
    if let Ok(message) = NewMessage::parse_from_json(Some(value.clone())) {
        assert!(value["body"].is_string(), "a message from {value}");
        let _ = MessageBody::parse(&message.body, chatd::config::InputLimitsConfig::DEFAULT_MAX_MESSAGE_CHARS);
        if let Some(client_id) = &message.client_id {
            let _ = ClientId::parse(client_id);
        }
    }
    if let Ok(marker) = ReadMarker::parse_from_json(Some(value.clone())) {
        // An integral JSON number, `42` or `42.0`.
        assert_eq!(value["up_to"].as_f64(), Some(marker.up_to.0 as f64), "a read marker from {value}");
    }
    if let Ok(new) = NewConversationBody::parse_from_json(Some(value.clone())) {
        assert!(value["kind"] == "group" || value["kind"] == "room", "a conversation from {value}");
        let _ = new.name.as_deref().map(ConversationName::parse);
        let _ = new.topic.as_deref().map(Topic::parse);
        new.members.iter().for_each(|m| drop(Username::parse(m)));
    }
    if let Ok(patch) = ConversationPatchBody::parse_from_json(Some(value.clone())) {
        assert!(value.is_object(), "a patch from {value}");
        let _ = patch.name.as_deref().map(ConversationName::parse);
        let _ = patch.topic.as_deref().map(Topic::parse);
    }
    if let Ok(add) = AddMembers::parse_from_json(Some(value.clone())) {
        assert!(value["usernames"].as_array().is_some_and(|names| names.iter().all(Value::is_string)), "members from {value}");
        add.usernames.iter().for_each(|m| drop(Username::parse(m)));
    }
    if RoleBody::parse_from_json(Some(value.clone())).is_ok() {
        assert!(["owner", "admin", "member"].iter().any(|r| value["role"] == *r), "a role from {value}");
    }
});
