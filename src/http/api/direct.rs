//! Direct conversations by the other person's name: the first protocol's endpoints, kept for the
//! clients built on them. `conversations` has the same for every kind of conversation, by id.
use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{
    ApiTags, HistoryDto, MessageDto, NewMessage, ReadMarker, SendResponse,
};
use crate::{
    App,
    domain::{
        Kind, MessageId,
        chat::{HistoryQuery, To},
    },
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
pub struct ReadState {
    pub peer: String,
    /// My read marker as stored (never beyond the newest message, never moving back).
    pub up_to: i64,
}

pub struct DirectApi;

#[OpenApi(tag = "ApiTags::Messages")]
impl DirectApi {
    /// My direct conversations, most recent first (`GET /api/conversations` lists every kind).
    #[oai(path = "/chats_history", method = "get", operation_id = "listChats")]
    async fn chats_history(&self, app: Data<&App>, auth: BearerAuth) -> Result<Json<Vec<ChatSummary>>, ApiError> {
        let me = &auth.0;
        let list = app.chat.conversations(me).await?;
        Ok(Json(
            list.into_iter()
                .filter(|c| c.kind == Kind::Direct)
                .filter_map(|c| {
                    let peer = c.peer(me.id)?.clone();
                    Some(ChatSummary {
                        username: peer.username,
                        online: peer.online,
                        unread: c.unread,
                        last_message: c.last_message.map(MessageDto::from),
                    })
                })
                .collect(),
        ))
    }

    /// Both read markers of each of my conversations: what I have read, and what the other person
    /// has read of mine ("seen"), so both survive a reload.
    #[oai(path = "/read_markers", method = "get", operation_id = "listReadMarkers")]
    async fn read_markers(&self, app: Data<&App>, auth: BearerAuth) -> Result<Json<Vec<ReadMarkers>>, ApiError> {
        let me = &auth.0;
        let list = app.chat.conversations(me).await?;
        Ok(Json(
            list.into_iter()
                .filter(|c| c.kind == Kind::Direct)
                .filter_map(|c| {
                    let peer = c.peer(me.id)?;
                    Some(ReadMarkers { username: peer.username.clone(), read_up_to: c.read_up_to.0, peer_read_up_to: peer.read_up_to.0 })
                })
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
        let query = HistoryQuery { before: before.0.map(MessageId), after: after.0.map(MessageId), limit: limit.0 };
        let page = app.chat.history(&auth.0, &To::Peer(username.0), query).await?;
        Ok(Json(HistoryDto::from(page)))
    }

    /// Send a message to `username` (online or not).
    #[oai(path = "/messages/:username", method = "post", operation_id = "sendMessage")]
    async fn send(&self, app: Data<&App>, auth: BearerAuth, username: Path<String>, body: Json<NewMessage>) -> Result<SendResponse, ApiError> {
        let sent = app.chat.send_and_wait(&auth.0, &To::Peer(username.0), &body.body, body.client_id.as_deref()).await?;
        Ok(SendResponse::from(sent))
    }

    /// Mark my conversation with `username` read up to a message id; their sockets get a `read` frame.
    #[oai(path = "/messages/:username/read", method = "post", operation_id = "markRead")]
    async fn mark_read(&self, app: Data<&App>, auth: BearerAuth, username: Path<String>, body: Json<ReadMarker>) -> Result<Json<ReadState>, ApiError> {
        let peer = username.0.to_ascii_lowercase();
        let (_, up_to) = app.chat.mark_read(&auth.0, &To::Peer(username.0), MessageId(body.up_to.0), None).await?;
        Ok(Json(ReadState { peer, up_to: up_to.0 }))
    }
}
