//! Conversations and messages. The sender is always the token's user.
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{
    ApiTags, MessageDto,
    fields::{BodyRule, ClientIdRule, MessageIdField, Text},
};
use crate::{
    App,
    domain::chat::HistoryQuery,
    http::{auth::BearerAuth, error::ApiError},
};

#[derive(Debug, Object)]
pub struct ChatSummary {
    /// The other person.
    pub username: String,
    pub online: bool,
    /// Messages from them I have not read (counted up to 9999).
    pub unread: u64,
    pub last_message: Option<MessageDto>,
}

#[derive(Debug, Object)]
pub struct ReadMarkers {
    /// The other person.
    pub username: String,
    /// My read marker: the newest message id I have read.
    pub read_up_to: i64,
    /// Their read marker: the newest of my messages they have read ("seen").
    pub peer_read_up_to: i64,
}

#[derive(Debug, Object)]
pub struct HistoryDto {
    /// Ascending by id.
    pub messages: Vec<MessageDto>,
    /// Whether more messages lie beyond this page (older ones, or newer ones when paging with `after`).
    pub has_more: bool,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewMessage {
    /// 1–4000 characters after trimming.
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

#[derive(Debug, Object)]
pub struct ReadState {
    pub peer: String,
    /// My read marker as stored (never beyond the newest message, never moving back).
    pub up_to: i64,
}

#[derive(ApiResponse)]
pub enum SendResponse {
    /// Stored, acknowledged and delivered.
    #[oai(status = 201)]
    Created(Json<MessageDto>),
    /// A resend of a `client_id` already stored: the stored message, delivered to no one again.
    #[oai(status = 200)]
    AlreadyStored(Json<MessageDto>),
}

pub struct ConversationsApi;

#[OpenApi(tag = "ApiTags::Messages")]
impl ConversationsApi {
    /// My conversations, most recent first.
    #[oai(path = "/chats_history", method = "get", operation_id = "listConversations")]
    async fn chats_history(&self, app: Data<&App>, auth: BearerAuth) -> Result<Json<Vec<ChatSummary>>, ApiError> {
        let list = app.chat.conversations(&auth.0).await?;
        Ok(Json(
            list.into_iter()
                .map(|(c, online)| ChatSummary {
                    username: c.peer,
                    online,
                    unread: c.unread,
                    last_message: c.last_message.map(MessageDto::from),
                })
                .collect(),
        ))
    }

    /// Both read markers of each of my conversations: what I have read, and what the other person
    /// has read of mine ("seen"), so both survive a reload.
    #[oai(path = "/read_markers", method = "get", operation_id = "listReadMarkers")]
    async fn read_markers(&self, app: Data<&App>, auth: BearerAuth) -> Result<Json<Vec<ReadMarkers>>, ApiError> {
        let list = app.chat.conversations(&auth.0).await?;
        Ok(Json(
            list.into_iter()
                .map(|(c, _)| ReadMarkers { username: c.peer, read_up_to: c.read_up_to, peer_read_up_to: c.peer_read_up_to })
                .collect(),
        ))
    }

    /// A page of my conversation with `username`: the newest `limit` by default, older ones with
    /// `before`, newer ones with `after`.
    #[oai(path = "/messages/:username", method = "get", operation_id = "getMessages")]
    async fn history(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        username: Path<String>,
        /// Only messages with a smaller id.
        #[oai(validator(minimum(value = "0")))]
        before: Query<Option<i64>>,
        /// Only messages with a larger id (the page starts right after it).
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// 1–100, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<HistoryDto>, ApiError> {
        let query = HistoryQuery { before: before.0, after: after.0, limit: limit.0 };
        let page = app.chat.history(&auth.0, &username.0, query).await?;
        Ok(Json(HistoryDto {
            messages: page.messages.into_iter().map(MessageDto::from).collect(),
            has_more: page.has_more,
        }))
    }

    /// Send a message to `username` (online or not).
    #[oai(path = "/messages/:username", method = "post", operation_id = "sendMessage")]
    async fn send(&self, app: Data<&App>, auth: BearerAuth, username: Path<String>, body: Json<NewMessage>) -> Result<SendResponse, ApiError> {
        let sent = app.chat.send_and_wait(&auth.0, &username.0, &body.body, body.client_id.as_deref()).await?;
        let dto = MessageDto::from(sent.message);
        Ok(if sent.created { SendResponse::Created(Json(dto)) } else { SendResponse::AlreadyStored(Json(dto)) })
    }

    /// Mark my conversation with `username` read up to a message id; their sockets get a `read` frame.
    #[oai(path = "/messages/:username/read", method = "post", operation_id = "markRead")]
    async fn mark_read(&self, app: Data<&App>, auth: BearerAuth, username: Path<String>, body: Json<ReadMarker>) -> Result<Json<ReadState>, ApiError> {
        let up_to = app.chat.mark_read(&auth.0, &username.0, body.up_to.0, None).await?;
        Ok(Json(ReadState { peer: username.0.to_ascii_lowercase(), up_to }))
    }
}
