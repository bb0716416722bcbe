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
    /// My direct conversations.
    ///
    /// Most recent first, each with the other person, whether they are online, my unread count
    /// and the last message (null when there is none yet). `listConversations` lists every kind.
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

    /// Read markers of my direct conversations.
    ///
    /// Both markers of each: what I have read, and what the other person has read of mine
    /// ("seen"), so both survive a reload.
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

    /// A page of my conversation with `username`.
    ///
    /// Without `before` and `after`: the newest `limit` entries. With `before`: the newest
    /// `limit` entries older than it. With `after`: the oldest `limit` entries newer than it
    /// (catching up). With both: entries strictly between them, oldest first from `after`. Pages
    /// are always in ascending id order; `has_more` says whether more entries lie beyond the
    /// page in the direction of travel (older without `after`, newer with it).
    ///
    /// A conversation that has not started yet is an empty page.
    #[oai(path = "/messages/:username", method = "get", operation_id = "getMessages")]
    async fn history(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The other person's username (case-insensitive).
        username: Path<String>,
        /// Only entries with a smaller id: the page ends right before it (page backwards with the
        /// smallest id of the previous page).
        #[oai(validator(minimum(value = "0")))]
        before: Query<Option<i64>>,
        /// Only entries with a larger id: the page starts right after it (page forwards with the
        /// largest id of the previous page).
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// How many entries a page holds at most (at most `limits.max_page_size`, 100 by default).
        #[oai(default = "super::default_history_page", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u64>,
    ) -> Result<Json<HistoryDto>, ApiError> {
        let query = HistoryQuery { before: before.0.map(MessageId), after: after.0.map(MessageId), limit: Some(limit.0) };
        let page = app.chat.history(&auth.0, &To::Peer(username.0), query).await?;
        Ok(Json(HistoryDto::from(page)))
    }

    /// Send a message to `username`, online or not.
    ///
    /// 201 once it is committed; it is then delivered to every socket of both people. A resend
    /// with the same `client_id` answers 200 with the stored message and delivers nothing again;
    /// the same `client_id` with another conversation or text is 409 `client_id_conflict`.
    #[oai(path = "/messages/:username", method = "post", operation_id = "sendMessage")]
    async fn send(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The other person's username (case-insensitive).
        username: Path<String>,
        body: Json<NewMessage>,
    ) -> Result<SendResponse, ApiError> {
        let sent = app.chat.send_and_wait(&auth.0, &To::Peer(username.0), &body.body, body.client_id.as_deref()).await?;
        Ok(SendResponse::from(sent))
    }

    /// Mark my conversation with `username` read up to a message id.
    ///
    /// The marker never moves back and never goes beyond the newest message; the stored marker is
    /// returned. Their sockets get a `read` frame, my other sockets `read_marker`.
    #[oai(path = "/messages/:username/read", method = "post", operation_id = "markRead")]
    async fn mark_read(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The other person's username (case-insensitive).
        username: Path<String>,
        body: Json<ReadMarker>,
    ) -> Result<Json<ReadState>, ApiError> {
        let peer = username.0.to_ascii_lowercase();
        let (_, up_to) = app.chat.mark_read(&auth.0, &To::Peer(username.0), MessageId(body.up_to.0), None).await?;
        Ok(Json(ReadState { peer, up_to: up_to.0 }))
    }
}
