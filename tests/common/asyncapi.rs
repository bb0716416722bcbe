//! The AsyncAPI document of `/ws` as a check on the server: every frame a test receives must be a
//! server frame of the document, chosen by its `type`, and match that frame's schema exactly.
#![allow(dead_code)]

use std::{collections::BTreeMap, sync::OnceLock};

use serde_json::{Value, json};

/// A message of the document: its component name, the direction and its compiled payload schema.
pub struct Frame {
    pub message: String,
    /// `send` (server to client) or `receive` (client to server), as the document's operations say.
    pub action: String,
    validator: jsonschema::Validator,
}

struct Frames {
    /// Component name → frame.
    by_message: BTreeMap<String, Frame>,
    /// The `type` of each frame the server sends → component name.
    server_types: BTreeMap<String, String>,
}

/// The document as the server serves it.
pub fn document() -> Value {
    serde_json::from_str(chatd::realtime::asyncapi::document()).expect("the AsyncAPI document is JSON")
}

fn resolve<'a>(document: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("a local $ref: {reference}"));
    document.pointer(pointer).unwrap_or_else(|| panic!("$ref {reference} resolves"))
}

/// Follows `$ref`s until an object without one.
fn follow<'a>(document: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(reference) = value["$ref"].as_str() {
        value = resolve(document, reference);
    }
    value
}

fn frames() -> &'static Frames {
    static FRAMES: OnceLock<Frames> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let document = document();
        let mut actions = BTreeMap::new();
        for (id, operation) in document["operations"].as_object().expect("operations") {
            let action = operation["action"].as_str().unwrap_or_else(|| panic!("{id} has an action"));
            for reference in operation["messages"].as_array().unwrap_or_else(|| panic!("{id} has messages")) {
                let reference = reference["$ref"].as_str().expect("a message $ref");
                let name = reference.rsplit('/').next().unwrap().to_owned();
                let previous = actions.insert(name.clone(), action.to_owned());
                assert!(previous.is_none_or(|p| p == action), "{name} is both sent and received");
            }
        }
        let mut by_message = BTreeMap::new();
        let mut server_types = BTreeMap::new();
        for (name, message) in document["components"]["messages"].as_object().expect("components.messages") {
            let action = actions.get(name).unwrap_or_else(|| panic!("message {name} is in no operation")).clone();
            let payload = follow(&document, &message["payload"]);
            let kind = payload["properties"]["type"]["const"].as_str().unwrap_or_else(|| panic!("{name}: `type` is a const"));
            assert_eq!(message["name"], kind, "message {name} is named after its frame type");
            // The payload's schema, with the document's components beside it for its `$ref`s.
            let schema = json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "components": document["components"],
                "allOf": [{"$ref": format!("#/components/messages/{name}/payload")}],
            });
            let validator = jsonschema::draft7::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|error| panic!("the schema of {name} compiles: {error}"));
            if action == "send" {
                let previous = server_types.insert(kind.to_owned(), name.clone());
                assert!(previous.is_none(), "two server frames of type {kind}");
            }
            by_message.insert(name.clone(), Frame { message: name.clone(), action, validator });
        }
        Frames { by_message, server_types }
    })
}

fn errors_of(validator: &jsonschema::Validator, frame: &Value) -> Vec<String> {
    validator.iter_errors(frame).map(|error| format!("at `{}`: {error}", error.instance_path())).collect()
}

/// Why `frame` is not a server frame of the document (empty when it is one).
pub fn server_frame_errors(frame: &Value) -> Vec<String> {
    let frames = frames();
    let Some(kind) = frame["type"].as_str() else { return vec!["a frame has a string `type`".into()] };
    let Some(name) = frames.server_types.get(kind) else {
        return vec![format!("`{kind}` is not the type of a server frame of the document")];
    };
    errors_of(&frames.by_message[name].validator, frame)
}

/// Why `frame` does not match the payload of the document's message `name` (empty when it does).
pub fn message_errors(name: &str, frame: &Value) -> Vec<String> {
    let frame_schema = frames().by_message.get(name).unwrap_or_else(|| panic!("the document has a message {name}"));
    errors_of(&frame_schema.validator, frame)
}

/// Every message of the document, with its direction.
pub fn messages() -> impl Iterator<Item = &'static Frame> {
    frames().by_message.values()
}

/// Fails the test unless `frame`, received from the server, is exactly as the document says.
pub fn check_frame(frame: &Value) {
    let errors = server_frame_errors(frame);
    assert!(errors.is_empty(), "the server sent a frame the AsyncAPI document does not describe:\n{frame}\n{}", errors.join("\n"));
}
