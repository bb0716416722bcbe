//! The REST API under `/api`, one `#[OpenApi]` impl per resource, combined into one service.
mod accounts;
mod conversations;
mod system;
mod users;

use poem_openapi::{Object, OpenApiService, Tags};

/// The request bodies, for tests and fuzzing that parse them as the API does.
pub use accounts::Credentials;
pub use conversations::{NewMessage, ReadMarker};

use crate::domain;

#[derive(Tags)]
pub enum ApiTags {
    /// Sign up, sign in, sign out, and who am I.
    Accounts,
    /// Finding people to talk to.
    Users,
    /// Conversations and their messages.
    Messages,
    /// Liveness and readiness.
    System,
}

/// A stored message; the same shape as in WebSocket frames.
#[derive(Debug, Clone, Object)]
pub struct MessageDto {
    /// Server id, increasing in commit order.
    pub id: i64,
    /// Sender's username.
    pub from: String,
    /// Recipient's username.
    pub to: String,
    pub body: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The sender's idempotency key.
    pub client_id: String,
}

impl From<domain::Message> for MessageDto {
    fn from(m: domain::Message) -> Self {
        Self {
            id: m.id,
            from: m.from,
            to: m.to,
            body: m.body,
            created_at: domain::format_time(m.created_at),
            client_id: m.client_id,
        }
    }
}

pub type Api = (accounts::AccountsApi, users::UsersApi, conversations::ConversationsApi, system::SystemApi);

/// The API as an OpenAPI service; handlers find the [`crate::App`] in the request data, so the
/// spec can be produced without one (`chatd openapi`).
pub fn service() -> OpenApiService<Api, ()> {
    let api = (accounts::AccountsApi, users::UsersApi, conversations::ConversationsApi, system::SystemApi);
    OpenApiService::new(api, "chatd", env!("CARGO_PKG_VERSION"))
        .description(
            "REST API of chatd, a self-hosted one-to-one chat server. Realtime delivery uses the \
             WebSocket at `/ws`, described in docs/protocol.md. Errors are `{\"code\", \"message\"}` JSON.",
        )
        .url_prefix("/api")
}
