//! The OpenAPI document, served at `/api/openapi.json` and printed by `chatd openapi`:
//! poem-openapi's, completed with what it cannot say itself — each operation's own error
//! responses, examples, closed request bodies, `null` for absent values, and who may call what.
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::{
    error::{Error, ErrorCode},
    http::error::status_of,
};

/// The document as served.
pub fn document() -> String {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_string_pretty(&build()).expect("a JSON value serialises")).clone()
}

/// What each operation answers besides what every operation of its kind does: the success
/// response's description where the handler's type has none, and the error codes it can send.
/// Codes shared by a kind are added by [`implied_codes`].
const OPERATIONS: &[(&str, &str, &[ErrorCode])] = {
    use ErrorCode::*;
    &[
        ("signup", "", &[InvalidUsername, InvalidPassword, UsernameTaken, RateLimited, ServerBusy]),
        ("signin", "Signed in: the token and how long it lasts.", &[InvalidCredentials, AccountDisabled, RateLimited, ServerBusy]),
        ("signout", "", &[]),
        ("me", "The signed-in user.", &[]),
        ("searchUsers", "The people found, best matches first.", &[]),
        ("listChats", "My direct conversations, most recent first.", &[]),
        ("listReadMarkers", "Both read markers of each direct conversation.", &[]),
        ("getMessages", "A page of the conversation, ascending by id.", &[UserNotFound, CannotMessageSelf]),
        (
            "sendMessage",
            "",
            &[EmptyMessage, MessageTooLong, InvalidClientId, UserNotFound, CannotMessageSelf, ClientIdConflict, RateLimited],
        ),
        ("markRead", "The read marker as stored.", &[UserNotFound, CannotMessageSelf]),
        ("listConversations", "My conversations, most recent activity first.", &[]),
        (
            "createConversation",
            "",
            &[InvalidName, InvalidTopic, InvalidParameter, TooFewMembers, TooManyMembers, UserNotFound, NameTaken],
        ),
        ("getConversation", "The conversation as the caller sees it.", &[ConversationNotFound, Forbidden]),
        (
            "updateConversation",
            "The conversation as changed.",
            &[InvalidName, InvalidTopic, ConversationNotFound, Forbidden, Archived, NameTaken],
        ),
        ("deleteConversation", "", &[ConversationNotFound, Forbidden]),
        ("joinRoom", "The room as the new member sees it.", &[ConversationNotFound, Forbidden, Archived]),
        (
            "addMembers",
            "The conversation with its new members.",
            &[TooManyMembers, UserNotFound, ConversationNotFound, Forbidden, Archived],
        ),
        ("removeMember", "", &[UserNotFound, NotAMember, ConversationNotFound, Forbidden, Archived, LastOwner]),
        ("setRole", "The room with the new role.", &[UserNotFound, NotAMember, ConversationNotFound, Forbidden, Archived, LastOwner]),
        ("getConversationMessages", "A page of the timeline, ascending by id.", &[ConversationNotFound, Forbidden]),
        (
            "sendToConversation",
            "",
            &[EmptyMessage, MessageTooLong, InvalidClientId, ConversationNotFound, Forbidden, Archived, ClientIdConflict, RateLimited],
        ),
        ("markConversationRead", "The read marker as stored.", &[ConversationNotFound, Forbidden]),
        ("listRooms", "The public rooms found.", &[]),
        ("health", "The process is up.", &[]),
        ("ready", "", &[Unavailable]),
    ]
};

/// Codes every operation of a kind can send: signed-in ones `unauthorized`, those with a body
/// the codes of reading one, those with parameters `invalid_parameter`, and everything that
/// touches the database `internal_error` and `unavailable`.
fn implied_codes(operation: &Value) -> Vec<ErrorCode> {
    let mut codes = Vec::new();
    let signed_in = operation["security"].as_array().is_some_and(|s| !s.is_empty());
    let has_body = operation.get("requestBody").is_some();
    if signed_in {
        codes.push(ErrorCode::Unauthorized);
    }
    if has_body {
        codes.extend([ErrorCode::InvalidBody, ErrorCode::RequestTimeout, ErrorCode::PayloadTooLarge, ErrorCode::UnsupportedMediaType]);
    }
    if operation["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
        codes.push(ErrorCode::InvalidParameter);
    }
    if signed_in || has_body {
        codes.extend([ErrorCode::InternalError, ErrorCode::Unavailable]);
    }
    codes
}

/// Request bodies that refuse unknown fields (`#[oai(deny_unknown_fields)]`).
const CLOSED_REQUEST_BODIES: &[&str] =
    &["Credentials", "NewMessage", "ReadMarker", "NewConversationBody", "ConversationPatchBody", "AddMembers", "RoleBody"];

/// Operations anyone may call.
const PUBLIC_OPERATIONS: &[&str] = &["signup", "signin", "health", "ready"];

fn build() -> Value {
    let mut spec: Value = serde_json::from_str(&super::service().spec()).expect("poem-openapi writes JSON");
    spec["servers"] = json!([{"url": "/", "description": "The chatd serving this document."}]);
    spec["info"]["license"] = json!({"name": "MIT", "url": "https://opensource.org/license/mit"});
    spec["info"]["contact"] = json!({"name": "The administrators of this chatd server"});
    let schemas = spec["components"]["schemas"].as_object_mut().expect("schemas");
    for (name, schema) in schemas.iter_mut() {
        drop_repeated_descriptions(schema);
        mark_optional_nullable(schema);
        if CLOSED_REQUEST_BODIES.contains(&name.as_str()) {
            schema["additionalProperties"] = Value::Bool(false);
        } else if schema.get("properties").is_some() {
            require_every_property(schema);
        }
        if let Some(example) = example(name) {
            schema["examples"] = json!([example]);
        }
    }
    split_new_conversation(&mut spec["components"]["schemas"]["NewConversationBody"]);
    // Its two shapes name their kind themselves.
    spec["components"]["schemas"].as_object_mut().expect("schemas").remove("NewKind");
    let examples = spec["components"]["schemas"].clone();
    let mut shared = Map::new();
    for item in spec["paths"].as_object_mut().expect("paths").values_mut() {
        for operation in item.as_object_mut().expect("a path item").values_mut() {
            complete_operation(operation, &examples, &mut shared);
        }
    }
    spec["components"]["responses"] = Value::Object(shared);
    rename_media_type(&mut spec);
    to_json_schema_nulls(&mut spec);
    spec["openapi"] = "3.1.0".into();
    spec
}

/// OpenAPI 3.1 schemas are JSON Schema: poem-openapi's 3.0 `nullable` becomes a `null` type,
/// which (unlike `nullable` beside an `allOf`) every validator and generator reads alike.
fn to_json_schema_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(to_json_schema_nulls);
            if map.remove("nullable") != Some(Value::Bool(true)) {
                return;
            }
            if let Some(Value::Array(all_of)) = map.remove("allOf") {
                let mut any_of = all_of;
                any_of.push(json!({"type": "null"}));
                map.insert("anyOf".into(), Value::Array(any_of));
            } else if let Some(Value::String(kind)) = map.remove("type") {
                map.insert("type".into(), json!([kind, "null"]));
                if let Some(Value::Array(items)) = map.get_mut("enum") {
                    items.push(Value::Null);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_json_schema_nulls),
        _ => {}
    }
}

/// A response object carries every field, `null` where there is no value: one rule for every
/// absent value, so generated clients need no "unset" besides "null".
fn require_every_property(schema: &mut Value) {
    let names: Vec<Value> = schema["properties"].as_object().expect("properties").keys().cloned().map(Value::String).collect();
    schema["required"] = Value::Array(names);
}

/// poem-openapi describes a `$ref` property as `allOf: [ref, {description}]` and repeats the
/// description beside it; generators make a type of the second item.
fn drop_repeated_descriptions(schema: &mut Value) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { return };
    for property in properties.values_mut() {
        if let Some(all_of) = property.get_mut("allOf").and_then(Value::as_array_mut) {
            all_of.retain(|item| item.get("$ref").is_some() || item.as_object().is_some_and(|o| o.keys().any(|k| k != "description")));
        }
    }
}

/// Properties poem-openapi does not require (`Option`s) are `nullable`: the server sends
/// `null` for no value. A `$ref` is wrapped in `allOf`, since OpenAPI 3.0 ignores keywords beside
/// a `$ref`.
fn mark_optional_nullable(schema: &mut Value) {
    let required: Vec<String> =
        schema["required"].as_array().map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { return };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        if let Some(reference) = property.get("$ref").cloned() {
            let description = property.get("description").cloned();
            *property = json!({"allOf": [{"$ref": reference}]});
            if let Some(description) = description {
                property["description"] = description;
            }
        }
        property["nullable"] = Value::Bool(true);
    }
}

/// People named in one request (a room's first members, people added at once): 1,000 names fit
/// the 64 KiB a request body may hold. Larger rooms grow by several requests.
pub const MAX_NAMES_PER_REQUEST: usize = 1000;

/// What a new group and a new room each take, which one request type cannot say: a group has
/// no topic or visibility and 2–49 other people; a room needs a name.
fn split_new_conversation(schema: &mut Value) {
    let properties = schema["properties"].clone();
    let pick = |names: &[&str]| -> Value { names.iter().map(|n| ((*n).to_owned(), properties[*n].clone())).collect::<Map<_, _>>().into() };
    let mut group = pick(&["kind", "name", "members"]);
    group["kind"] = json!({"type": "string", "enum": ["group"]});
    group["members"]["minItems"] = 2.into();
    group["members"]["maxItems"] = 49.into();
    group["members"]["uniqueItems"] = true.into();
    let mut room = pick(&["kind", "name", "topic", "visibility", "members"]);
    room["kind"] = json!({"type": "string", "enum": ["room"]});
    room["name"].as_object_mut().expect("a property").remove("nullable");
    room["members"]["maxItems"] = MAX_NAMES_PER_REQUEST.into();
    room["members"]["uniqueItems"] = true.into();
    // A group names its people; a room may start with its owner alone (null: nobody else).
    group["members"].as_object_mut().expect("a property").remove("nullable");
    *schema = json!({
        "description": "A group (3–50 people with the caller, no topic) or a room (named).",
        "oneOf": [
            {"type": "object", "title": "NewGroup", "required": ["kind", "members"], "properties": group, "additionalProperties": false,
             "examples": [{"kind": "group", "members": ["bob", "carol"]}]},
            {"type": "object", "title": "NewRoom", "required": ["kind", "name"], "properties": room, "additionalProperties": false,
             "examples": [example("NewConversationBody").expect("an example")]},
        ],
        "examples": [example("NewConversationBody").expect("an example")],
    });
}

fn complete_operation(operation: &mut Value, schemas: &Value, shared: &mut Map<String, Value>) {
    let id = operation["operationId"].as_str().expect("every operation has an id").to_owned();
    let &(_, success, codes) =
        OPERATIONS.iter().find(|(name, ..)| *name == id).unwrap_or_else(|| panic!("operation {id} is in OPERATIONS"));
    if PUBLIC_OPERATIONS.contains(&id.as_str()) {
        operation["security"] = json!([]);
    }
    let mut all = implied_codes(operation);
    all.extend_from_slice(codes);
    let responses = operation["responses"].as_object_mut().expect("responses");
    // poem-openapi lists every error status of `ApiError` for every operation; only the
    // operation's own remain.
    responses.retain(|status, _| status.starts_with('2'));
    for response in responses.values_mut() {
        if response["description"].as_str().is_some_and(str::is_empty) {
            response["description"] = success.into();
        }
    }
    let mut statuses: Vec<u16> = all.iter().map(|&code| status_of(code).as_u16()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let group: Vec<ErrorCode> = all.iter().copied().filter(|&code| status_of(code).as_u16() == status).collect();
        let response = error_response(status, &group);
        let key = status.to_string();
        if let Some(name) = shared_name(&group) {
            shared.insert(name.to_owned(), response);
            responses.insert(key, json!({"$ref": format!("#/components/responses/{name}")}));
        } else {
            responses.insert(key, response);
        }
    }
    for response in responses.values_mut() {
        add_body_example(response, schemas);
    }
    if let Some(body) = operation.get_mut("requestBody") {
        add_body_example(body, schemas);
    }
}

/// Error responses that many operations share, by the codes they carry.
fn shared_name(codes: &[ErrorCode]) -> Option<&'static str> {
    use ErrorCode::*;
    Some(match codes {
        [Unauthorized] => "Unauthorized",
        [RequestTimeout] => "RequestTimeout",
        [PayloadTooLarge] => "PayloadTooLarge",
        [UnsupportedMediaType] => "UnsupportedMediaType",
        [RateLimited] => "RateLimited",
        [InternalError] => "InternalError",
        [Unavailable] => "Unavailable",
        [Unavailable, ServerBusy] => "UnavailableOrBusy",
        _ => return None,
    })
}

fn error_response(status: u16, codes: &[ErrorCode]) -> Value {
    let names: Vec<String> = codes.iter().map(|code| format!("`{}`", code_name(*code))).collect();
    let reason = poem::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let mut examples = Map::new();
    for &code in codes {
        examples.insert(code_name(code), json!({"value": {"code": code_name(code), "message": example_message(code)}}));
    }
    let mut response = json!({
        "description": format!("{reason}: {}.", names.join(", ")),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}, "examples": examples}},
    });
    let retry_after = |required: bool, description: &str| {
        json!({"description": description, "required": required, "schema": {"type": "integer", "minimum": 1}})
    };
    match status {
        401 => {
            response["headers"] = json!({"WWW-Authenticate": {
                "description": "`Bearer realm=\"chatd\"`: send a token from `signin` (RFC 6750).",
                "required": true,
                "schema": {"type": "string"},
            }});
        }
        429 => response["headers"] = json!({"Retry-After": retry_after(true, "Seconds to wait before trying again.")}),
        503 if codes.contains(&ErrorCode::ServerBusy) => {
            response["headers"] = json!({"Retry-After": retry_after(false, "With `server_busy`: seconds to wait before trying again.")});
        }
        _ => {}
    }
    response
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).expect("a code is a string")
}

/// The message an example of each code shows; the server's own where it has a fixed one.
fn example_message(code: ErrorCode) -> String {
    use ErrorCode::*;
    match code {
        InvalidUsername => "a username is 3 to 32 characters of a-z, 0-9, `_`, `.` and `-`".into(),
        InvalidPassword => "a password is 8 to 128 characters long".into(),
        UsernameTaken => Error::UsernameTaken.to_string(),
        InvalidCredentials => Error::InvalidCredentials.to_string(),
        AccountDisabled => Error::AccountDisabled.to_string(),
        Unauthorized => Error::Unauthorized.to_string(),
        UserNotFound => Error::UserNotFound.to_string(),
        InvalidName => "a name can be at most 80 characters long".into(),
        InvalidTopic => Error::InvalidTopic.to_string(),
        InvalidRole => Error::InvalidRole.to_string(),
        TooManyMembers => Error::TooManyMembers(crate::domain::rules::GROUP_MAX_MEMBERS).to_string(),
        TooFewMembers => Error::TooFewMembers.to_string(),
        ConversationNotFound => Error::ConversationNotFound.to_string(),
        NotAMember => Error::NotAMember.to_string(),
        Forbidden => "only the room's owners and admins may change it".into(),
        LastOwner => Error::LastOwner.to_string(),
        Archived => Error::Archived.to_string(),
        NameTaken => Error::NameTaken.to_string(),
        EmptyMessage => Error::EmptyMessage.to_string(),
        MessageTooLong => Error::MessageTooLong(crate::config::InputLimitsConfig::DEFAULT_MAX_MESSAGE_CHARS).to_string(),
        InvalidClientId => Error::InvalidClientId.to_string(),
        ClientIdConflict => Error::ClientIdConflict.to_string(),
        CannotMessageSelf => Error::CannotMessageSelf.to_string(),
        InvalidParameter => "limit must be between 1 and 100".into(),
        RateLimited => Error::RateLimited { retry_after_secs: 30 }.to_string(),
        Unavailable => Error::Unavailable.to_string(),
        ServerBusy => Error::Busy { retry_after_secs: 1 }.to_string(),
        InternalError => "internal error".into(),
        NotFound => "no such endpoint".into(),
        InvalidBody => "the request body is not valid: missing field `password`".into(),
        BadRequest => "the request is not valid".into(),
        MethodNotAllowed => "this endpoint does not accept that method".into(),
        PayloadTooLarge => "request bodies are limited to 65536 bytes".into(),
        UnsupportedMediaType => "the request body must be application/json".into(),
        RequestTimeout => "the request body did not arrive in time".into(),
        ForbiddenOrigin => "this origin may not open a WebSocket here".into(),
        InvalidJson => "not valid JSON: expected value at line 1 column 1".into(),
        InvalidFrame => "invalid `send_message` frame: missing field `body`".into(),
        UnknownType => "unknown frame type `shout`".into(),
        AlreadyAuthenticated => "this socket is already authenticated".into(),
    }
}

/// The example of a body, taken from its schema's (a list shows one item).
fn add_body_example(holder: &mut Value, schemas: &Value) {
    let Some(content) = holder.get_mut("content").and_then(|c| c.as_object_mut()) else { return };
    for media in content.values_mut() {
        if media.get("examples").is_some() {
            continue;
        }
        let schema = &media["schema"];
        let example = if let Some(item) = schema["items"]["$ref"].as_str() {
            schema_example(schemas, item).map(|e| json!([e]))
        } else {
            schema["$ref"].as_str().and_then(|r| schema_example(schemas, r))
        };
        if let Some(example) = example {
            media["example"] = example;
        }
    }
}

fn schema_example(schemas: &Value, reference: &str) -> Option<Value> {
    let name = reference.rsplit('/').next()?;
    schemas.get(name)?.get("examples")?.get(0).cloned()
}

/// poem-openapi's JSON media type carries a charset parameter, which generators warn about;
/// the responses say `application/json; charset=utf-8`, which `application/json` covers.
fn rename_media_type(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(media) = map.remove("application/json; charset=utf-8") {
                map.insert("application/json".into(), media);
            }
            map.values_mut().for_each(rename_media_type);
        }
        Value::Array(items) => items.iter_mut().for_each(rename_media_type),
        _ => {}
    }
}

/// An example of each schema, shown in the API docs and by generated clients.
fn example(schema: &str) -> Option<Value> {
    let message = json!({
        "id": 42, "conversation_id": 7, "from": "alice", "to": "bob", "body": "Lunch at noon?",
        "created_at": "2026-12-01T11:58:03.512Z", "client_id": "c-7f3a2b", "kind": "text", "event": null,
    });
    let member = json!({"username": "alice", "role": "owner", "online": true, "read_up_to": 57});
    Some(match schema {
        "Credentials" => json!({"username": "alice", "password": "correct horse battery"}),
        "SignedUp" => json!({"username": "alice"}),
        "Token" => json!({
            "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "token_type": "Bearer", "expires_in": 86400, "username": "alice",
        }),
        "Me" => json!({"username": "alice", "is_admin": false, "created_at": "2026-12-01T09:30:00.000Z"}),
        "UserDto" => json!({"username": "bob", "online": true}),
        "MessageDto" => message,
        "ChatSummary" => json!({"username": "bob", "online": true, "unread": 2, "last_message": message}),
        "ReadMarkers" => json!({"username": "bob", "read_up_to": 42, "peer_read_up_to": 40}),
        "ReadState" => json!({"peer": "bob", "up_to": 42}),
        "HistoryDto" => json!({"messages": [message], "has_more": true}),
        "NewMessage" => json!({"body": "Lunch at noon?", "client_id": "c-7f3a2b"}),
        "ReadMarker" => json!({"up_to": 42}),
        "MemberDto" => member,
        "ConversationDto" => json!({
            "id": 12, "kind": "room", "name": "general", "topic": "Anything goes", "visibility": "public",
            "archived": false, "members": [member], "member_count": 1, "my_role": "owner", "unread": 0,
            "read_up_to": 57, "last_message": null, "last_activity_id": 57, "created_at": "2026-12-01T09:31:12.004Z",
        }),
        "NewConversationBody" => {
            json!({"kind": "room", "name": "general", "topic": "Anything goes", "visibility": "public", "members": ["bob", "carol"]})
        }
        "ConversationPatchBody" => json!({"topic": "Release week: keep it short"}),
        "AddMembers" => json!({"usernames": ["dave"], "role": "member"}),
        "RoleBody" => json!({"role": "admin"}),
        "RoomDto" => json!({"id": 12, "name": "general", "topic": "Anything goes", "member_count": 3, "joined": true}),
        "ConversationReadState" => json!({"conversation_id": 12, "up_to": 57}),
        "Status" => json!({"status": "ok"}),
        "Readiness" => json!({"status": "ok", "database": "ok", "bus": "connected"}),
        "ErrorBody" => json!({"code": "conversation_not_found", "message": "no such conversation"}),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_table_is_in_the_document() {
        let spec = build();
        let ids: Vec<&str> =
            spec["paths"].as_object().unwrap().values().flat_map(|item| item.as_object().unwrap().values()).filter_map(|op| op["operationId"].as_str()).collect();
        for (id, ..) in OPERATIONS {
            assert!(ids.contains(id), "{id} is listed but not served");
        }
        assert_eq!(ids.len(), OPERATIONS.len());
    }

    #[test]
    fn no_nullable_is_left_for_openapi_3_1() {
        assert!(!document().contains("\"nullable\""));
    }
}
