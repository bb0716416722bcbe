//! The REST API under `/api`, one `#[OpenApi]` impl per resource, combined into one service.
mod accounts;
mod conversations;
mod direct;
mod document;
pub mod fields;
mod system;
mod users;

use std::sync::OnceLock;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{Object, OpenApiService, Tags};
use serde_json::Value;

/// The request bodies, for tests and fuzzing that parse them as the API does.
pub use accounts::Credentials;
pub use conversations::{AddMembers, ConversationPatchBody, NewConversationBody, RoleBody};

pub use self::document::{MAX_NAMES_PER_REQUEST, document};
use self::fields::{BodyRule, ClientIdRule, MessageIdField, Text, Timestamp};
use crate::domain;

#[derive(Tags)]
pub enum ApiTags {
    /// Sign up, sign in, sign out, and who am I.
    Accounts,
    /// Finding people to talk to.
    Users,
    /// Direct conversations by the other person's name (the first protocol's endpoints).
    Messages,
    /// Conversations of every kind (direct, group, room): members, roles, messages, read markers.
    Conversations,
    /// The directory of public rooms.
    Rooms,
    /// Liveness and readiness.
    System,
}

/// A stored message, or an event shown as a line of the timeline (`kind: "event"`); the same
/// shape as in WebSocket frames.
#[derive(Debug, Clone, Object)]
pub struct MessageDto {
    /// Stream id, increasing in commit order (events share the counter).
    pub id: i64,
    pub conversation_id: i64,
    /// Sender's username (for an event: who made the change).
    pub from: String,
    /// The other person, in a direct conversation only (null otherwise).
    pub to: Option<String>,
    /// The text (for an event: a sentence describing it).
    pub body: String,
    pub created_at: Timestamp,
    /// The sender's idempotency key.
    pub client_id: String,
    pub kind: MessageKind,
    /// For an event: what happened, as in the event's WebSocket frame (`type`, `by`, …); null for
    /// a message.
    pub event: Option<Value>,
}

impl From<domain::Message> for MessageDto {
    fn from(m: domain::Message) -> Self {
        Self {
            id: m.id.0,
            conversation_id: m.conversation_id.0,
            from: m.from,
            to: m.to,
            body: m.body,
            created_at: Timestamp::from_millis(m.created_at),
            client_id: m.client_id,
            kind: if m.event.is_some() { MessageKind::Event } else { MessageKind::Text },
            event: m.event.map(|e| serde_json::to_value(e).expect("changes serialise")),
        }
    }
}

#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum MessageKind {
    /// Something a person wrote.
    Text,
    /// A change to the conversation (someone joined, the topic changed, …), shown in the timeline.
    Event,
}

#[derive(Debug, Object)]
pub struct HistoryDto {
    /// Ascending by id.
    pub messages: Vec<MessageDto>,
    /// Whether more messages lie beyond this page (older ones, or newer ones when paging with `after`).
    pub has_more: bool,
}

impl From<domain::HistoryPage> for HistoryDto {
    fn from(page: domain::HistoryPage) -> Self {
        Self { messages: page.messages.into_iter().map(MessageDto::from).collect(), has_more: page.has_more }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewMessage {
    /// At least one character after trimming, at most `limits.max_message_chars`.
    pub body: Text<BodyRule>,
    /// Idempotency key, 1–64 characters and no control characters: a resend with the same key
    /// returns the stored message and delivers nothing twice.
    pub client_id: Option<Text<ClientIdRule>>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ReadMarker {
    /// The newest message id I have read.
    pub up_to: MessageIdField,
}

#[derive(poem_openapi::ApiResponse)]
pub enum SendResponse {
    /// Stored, acknowledged and delivered.
    #[oai(status = 201)]
    Created(poem_openapi::payload::Json<MessageDto>),
    /// A resend of a `client_id` already stored: the stored message, delivered to no one again.
    #[oai(status = 200)]
    AlreadyStored(poem_openapi::payload::Json<MessageDto>),
}

impl From<domain::writes::Sent> for SendResponse {
    fn from(sent: domain::writes::Sent) -> Self {
        let dto = poem_openapi::payload::Json(MessageDto::from(sent.message));
        if sent.created { SendResponse::Created(dto) } else { SendResponse::AlreadyStored(dto) }
    }
}

/// `limit`'s default for pages of history.
fn default_history_page() -> u64 {
    domain::chat::DEFAULT_HISTORY_PAGE
}

pub type Api =
    (accounts::AccountsApi, users::UsersApi, direct::DirectApi, conversations::ConversationsApi, conversations::RoomsApi, system::SystemApi);

/// The API as an OpenAPI service; handlers find the [`crate::App`] in the request data, so the
/// spec can be produced without one (`chatd openapi`).
pub fn service() -> OpenApiService<Api, ()> {
    let api =
        (accounts::AccountsApi, users::UsersApi, direct::DirectApi, conversations::ConversationsApi, conversations::RoomsApi, system::SystemApi);
    OpenApiService::new(api, "chatd", env!("CARGO_PKG_VERSION"))
        .description(
            "REST API of chatd, a self-hosted team chat: direct conversations, groups and rooms.\n\n\
             Sign in with `signin` and send the token as `Authorization: Bearer <access_token>`. Every error is \
             `{\"code\", \"message\"}` JSON; `code` is stable and each operation lists those it can answer with. \
             Absent values are `null`, never left out. Writes answer once committed; a `client_id` makes a resend \
             harmless. 429 and 503 `server_busy` carry `Retry-After`.\n\n\
             Realtime delivery uses the WebSocket at `/ws`, described by the AsyncAPI document at \
             [/api/asyncapi.json](/api/asyncapi.json).",
        )
        .url_prefix("/api")
}

/// `GET /api/openapi.json`.
#[poem::handler]
pub fn document_endpoint() -> Response {
    Response::builder().content_type("application/json").body(document())
}

/// `GET /api/docs`: poem-openapi's Swagger UI page, showing the completed document rather than
/// the one poem-openapi makes.
#[poem::handler]
pub fn docs_endpoint() -> poem::web::Html<String> {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let service = service();
        let page = service.swagger_ui_html();
        let embedded = service.spec();
        assert!(page.contains(&embedded), "the page embeds the document");
        page.replacen(&embedded, &document(), 1)
    });
    poem::web::Html(page.clone())
}

/// Paths of the document as segments (`None` for a `{parameter}`), with their methods.
fn operations() -> &'static [(Vec<Option<String>>, String)] {
    static OPERATIONS: OnceLock<Vec<(Vec<Option<String>>, String)>> = OnceLock::new();
    OPERATIONS.get_or_init(|| {
        let spec: Value = serde_json::from_str(&document()).expect("the document is JSON");
        let paths = spec["paths"].as_object().expect("the document has paths");
        paths
            .iter()
            .map(|(path, item)| {
                let segments =
                    path.split('/').map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned())).collect();
                let mut methods: Vec<String> = item.as_object().into_iter().flatten().map(|(m, _)| m.to_ascii_uppercase()).collect();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                methods.sort();
                (segments, methods.join(", "))
            })
            .collect()
    })
}

/// The methods an `/api` path accepts, for the `Allow` header of a 405.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    operations().iter().find_map(|(pattern, methods)| {
        let matches = pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(p, s)| match p {
                Some(literal) => literal == s,
                None => !s.is_empty(),
            });
        matches.then_some(methods.as_str())
    })
}

/// Wraps the API so that a 405 says which methods the path does accept (RFC 9110), which poem
/// leaves out.
pub async fn allow_header<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let path = req.original_uri().path().to_owned();
    let mut response = match next.call(req).await {
        Ok(response) => response.into_response(),
        Err(error) if error.status() == StatusCode::METHOD_NOT_ALLOWED => crate::http::error::error_response(error),
        Err(error) => return Err(error),
    };
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = allowed_methods(&path)
    {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(methods));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_body_refuses_unknown_fields() {
        let spec: Value = serde_json::from_str(&document()).unwrap();
        let mut bodies = Vec::new();
        for item in spec["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                if let Some(schema) = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() {
                    bodies.push(schema.rsplit('/').next().unwrap().to_owned());
                }
            }
        }
        assert!(bodies.len() >= 4, "{bodies:?}");
        for name in bodies {
            let schema = &spec["components"]["schemas"][&name];
            // A body of several shapes (a new group or room) closes each of them.
            let shapes = schema["oneOf"].as_array().cloned().unwrap_or_else(|| vec![schema.clone()]);
            assert!(shapes.iter().all(|shape| shape["additionalProperties"] == false), "{name}");
        }
    }

    #[test]
    fn allowed_methods_follow_the_document() {
        assert_eq!(allowed_methods("/api/signin"), Some("POST"));
        assert_eq!(allowed_methods("/api/messages/bob"), Some("GET, HEAD, POST"));
        assert_eq!(allowed_methods("/api/messages/bob/read"), Some("POST"));
        assert_eq!(allowed_methods("/api/me"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/api/messages/"), None);
        assert_eq!(allowed_methods("/api/nothing"), None);
    }
}
