//! Conversations of every kind, by id: create groups and rooms, change them, manage members and
//! roles, join public rooms, and read and write their messages. The caller is always the token's
//! user; a conversation they may not see answers 404, exactly as one that does not exist.
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{
    ApiTags, HistoryDto, MessageDto, NewMessage, ReadMarker, SendResponse,
    fields::{NameRule, Text, Timestamp, TopicRule, UsernameRule},
};
use crate::{
    App,
    domain::{
        self, ConversationId, ConversationView, DirectoryEntry, Member, MessageId,
        chat::{HistoryQuery, To},
        conversations::{ConversationPatch, NewConversation},
    },
    http::{auth::BearerAuth, error::ApiError},
};

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum KindDto {
    Direct,
    Group,
    Room,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum NewKind {
    /// 3–50 people, no roles; its title is its members' names unless renamed.
    Group,
    /// Named, with a topic, public or private, up to 10,000 members, with roles.
    Room,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum VisibilityDto {
    /// Listed in the directory; anyone may read it and join.
    Public,
    /// Invisible to non-members.
    Private,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RoleDto {
    Owner,
    Admin,
    Member,
}

impl RoleDto {
    fn as_str(self) -> &'static str {
        match self {
            RoleDto::Owner => "owner",
            RoleDto::Admin => "admin",
            RoleDto::Member => "member",
        }
    }
}

impl From<domain::Role> for RoleDto {
    fn from(role: domain::Role) -> Self {
        match role {
            domain::Role::Owner => RoleDto::Owner,
            domain::Role::Admin => RoleDto::Admin,
            domain::Role::Member => RoleDto::Member,
        }
    }
}

#[derive(Debug, Object)]
pub struct MemberDto {
    pub username: String,
    /// `member` for everyone in direct and group conversations.
    pub role: RoleDto,
    /// Whether they are online (as far as the caller may know).
    pub online: bool,
    /// How far they have read (for "seen by" in groups).
    pub read_up_to: i64,
}

impl From<Member> for MemberDto {
    fn from(m: Member) -> Self {
        Self { username: m.username, role: m.role.into(), online: m.online, read_up_to: m.read_up_to.0 }
    }
}

/// A conversation as the caller sees it.
#[derive(Debug, Object)]
pub struct ConversationDto {
    pub id: i64,
    pub kind: KindDto,
    /// A room's name, or a renamed group's; null otherwise.
    pub name: Option<String>,
    /// A room's topic; null otherwise.
    pub topic: Option<String>,
    /// A room's visibility; null otherwise.
    pub visibility: Option<VisibilityDto>,
    pub archived: bool,
    /// Owners first, then admins, then members, by name; the first 500 of a larger room (the
    /// conversation list gives the first 20).
    pub members: Vec<MemberDto>,
    pub member_count: u64,
    /// The caller's role; null when they are not a member (a public room they look at).
    pub my_role: Option<RoleDto>,
    /// Messages from others above the caller's read marker (counted up to 9999).
    pub unread: u64,
    /// The caller's read marker.
    pub read_up_to: i64,
    /// The newest message (events do not count).
    pub last_message: Option<MessageDto>,
    /// The newest stream id in the conversation, message or event: what "recent activity" sorts by.
    pub last_activity_id: i64,
    pub created_at: Timestamp,
}

impl From<ConversationView> for ConversationDto {
    fn from(c: ConversationView) -> Self {
        Self {
            id: c.id.0,
            kind: match c.kind {
                domain::Kind::Direct => KindDto::Direct,
                domain::Kind::Group => KindDto::Group,
                domain::Kind::Room => KindDto::Room,
            },
            name: c.name,
            topic: c.topic,
            visibility: c.visibility.map(|v| match v {
                domain::Visibility::Public => VisibilityDto::Public,
                domain::Visibility::Private => VisibilityDto::Private,
            }),
            archived: c.archived,
            members: c.members.into_iter().map(MemberDto::from).collect(),
            member_count: c.member_count,
            my_role: c.my_role.map(RoleDto::from),
            unread: c.unread,
            read_up_to: c.read_up_to.0,
            last_message: c.last_message.map(MessageDto::from),
            last_activity_id: c.last_activity.0,
            created_at: Timestamp::from_millis(c.created_at),
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewConversationBody {
    pub kind: NewKind,
    /// Required for a room (unique, ignoring case); optional for a group.
    pub name: Option<Text<NameRule>>,
    /// Rooms only.
    pub topic: Option<Text<TopicRule>>,
    /// Rooms only; `public` when left out.
    pub visibility: Option<VisibilityDto>,
    /// The people to start with, besides the caller (who becomes a room's owner); no one twice,
    /// at most 1,000.
    #[oai(default, validator(max_items = 1000, unique_items))]
    pub members: Vec<Text<UsernameRule>>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ConversationPatchBody {
    /// A new name (rooms and groups).
    pub name: Option<Text<NameRule>>,
    /// A new topic (rooms); empty clears it.
    pub topic: Option<Text<TopicRule>>,
    /// Archive (read-only, still readable) or unarchive a room.
    pub archived: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AddMembers {
    /// No one twice, at most 1,000 at once.
    #[oai(validator(max_items = 1000, unique_items))]
    pub usernames: Vec<Text<UsernameRule>>,
    /// The role to give them in a room; `member` when left out.
    pub role: Option<RoleDto>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RoleBody {
    pub role: RoleDto,
}

#[derive(Debug, Object)]
pub struct RoomDto {
    pub id: i64,
    pub name: String,
    pub topic: Option<String>,
    pub member_count: u64,
    /// Whether the caller is a member.
    pub joined: bool,
}

impl From<DirectoryEntry> for RoomDto {
    fn from(r: DirectoryEntry) -> Self {
        Self { id: r.id.0, name: r.name, topic: r.topic, member_count: r.member_count, joined: r.joined }
    }
}

#[derive(Debug, Object)]
pub struct ConversationReadState {
    pub conversation_id: i64,
    /// My read marker as stored (never beyond the newest message, never moving back).
    pub up_to: i64,
}

#[derive(ApiResponse)]
pub enum CreatedConversation {
    /// Created; every member's sockets learn it (`conversation_created`).
    #[oai(status = 201)]
    Created(Json<ConversationDto>),
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done; the members' sockets learn it.
    #[oai(status = 204)]
    Done,
}

fn default_directory_page() -> u64 {
    domain::conversations::DEFAULT_DIRECTORY_PAGE
}

fn names(list: &[Text<UsernameRule>]) -> Vec<String> {
    list.iter().map(|n| n.as_str().to_owned()).collect()
}

pub struct ConversationsApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl ConversationsApi {
    /// My conversations of every kind.
    ///
    /// Most recent activity first (`last_activity_id`), each with up to 20 members, my role,
    /// unread count and read marker, and the last message (null when there is none).
    #[oai(path = "/conversations", method = "get", operation_id = "listConversations")]
    async fn list(&self, app: Data<&App>, auth: BearerAuth) -> Result<Json<Vec<ConversationDto>>, ApiError> {
        let list = app.chat.conversations(&auth.0).await?;
        Ok(Json(list.into_iter().map(ConversationDto::from).collect()))
    }

    /// Start a group or a room.
    ///
    /// A group has 3–50 people with the caller and no roles; a room is named (unique, ignoring
    /// case), public or private, and the caller becomes its owner. Every member's sockets get
    /// `conversation_created`. A direct conversation needs no creating: send its first message.
    #[oai(path = "/conversations", method = "post", operation_id = "createConversation")]
    async fn create(&self, app: Data<&App>, auth: BearerAuth, body: Json<NewConversationBody>) -> Result<CreatedConversation, ApiError> {
        let members = names(&body.members);
        let new = NewConversation {
            kind: match body.kind {
                NewKind::Group => "group",
                NewKind::Room => "room",
            },
            name: body.name.as_deref(),
            topic: body.topic.as_deref(),
            visibility: body.visibility.map(|v| match v {
                VisibilityDto::Public => "public",
                VisibilityDto::Private => "private",
            }),
            members: &members,
        };
        let view = app.chat.create_conversation(&auth.0, new).await?;
        Ok(CreatedConversation::Created(Json(view.into())))
    }

    /// One conversation with its members.
    ///
    /// Up to 500 members, owners first. A conversation the caller may not see answers 404, like
    /// one that does not exist; a public room can be looked at before joining (`my_role` null).
    #[oai(path = "/conversations/:id", method = "get", operation_id = "getConversation")]
    async fn get(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
    ) -> Result<Json<ConversationDto>, ApiError> {
        Ok(Json(app.chat.conversation(&auth.0, ConversationId(id.0)).await?.into()))
    }

    /// Rename, set the topic, archive or unarchive.
    ///
    /// A room's owners and admins may change it; anyone in a group may rename it. Fields left
    /// out stay as they are. An archived room can be read but not written to.
    #[oai(path = "/conversations/:id", method = "patch", operation_id = "updateConversation")]
    async fn update(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
        body: Json<ConversationPatchBody>,
    ) -> Result<Json<ConversationDto>, ApiError> {
        let patch = ConversationPatch { name: body.name.as_deref(), topic: body.topic.as_deref(), archived: body.archived };
        Ok(Json(app.chat.update_conversation(&auth.0, ConversationId(id.0), patch).await?.into()))
    }

    /// Delete a room, with its messages.
    ///
    /// Its owners and server admins may; members' sockets get `conversation_deleted`. This cannot
    /// be undone.
    #[oai(path = "/conversations/:id", method = "delete", operation_id = "deleteConversation")]
    async fn delete(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
    ) -> Result<Done, ApiError> {
        app.chat.delete_conversation(&auth.0, ConversationId(id.0)).await?;
        Ok(Done::Done)
    }

    /// Add people to a group or room.
    ///
    /// Those already in are left as they are. In a room, owners and admins add people (with a
    /// role); in a group, any member may.
    #[oai(path = "/conversations/:id/members", method = "post", operation_id = "addMembers")]
    async fn add_members(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
        body: Json<AddMembers>,
    ) -> Result<Json<ConversationDto>, ApiError> {
        let role = body.role.map(RoleDto::as_str);
        Ok(Json(app.chat.add_members(&auth.0, ConversationId(id.0), &names(&body.usernames), role).await?.into()))
    }

    /// Remove someone, or leave.
    ///
    /// My own name means I leave. The last owner of a room must make someone else owner first
    /// (409 `last_owner`).
    #[oai(path = "/conversations/:id/members/:username", method = "delete", operation_id = "removeMember")]
    async fn remove_member(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
        /// The member's username (case-insensitive); my own to leave.
        username: Path<String>,
    ) -> Result<Done, ApiError> {
        app.chat.remove_member(&auth.0, ConversationId(id.0), &username.0).await?;
        Ok(Done::Done)
    }

    /// Give a member of a room another role.
    ///
    /// Its owners may. The last owner cannot step down (409 `last_owner`).
    #[oai(path = "/conversations/:id/members/:username/role", method = "put", operation_id = "setRole")]
    async fn set_role(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
        /// The member's username (case-insensitive).
        username: Path<String>,
        body: Json<RoleBody>,
    ) -> Result<Json<ConversationDto>, ApiError> {
        Ok(Json(app.chat.set_role(&auth.0, ConversationId(id.0), &username.0, body.role.as_str()).await?.into()))
    }

    /// Join a public room.
    ///
    /// Joining a room one is already in changes nothing. Private rooms are joined by being added.
    #[oai(path = "/conversations/:id/join", method = "post", operation_id = "joinRoom")]
    async fn join(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
    ) -> Result<Json<ConversationDto>, ApiError> {
        Ok(Json(app.chat.join(&auth.0, ConversationId(id.0)).await?.into()))
    }

    /// A page of a conversation's timeline: messages and events.
    ///
    /// Without `before` and `after`: the newest `limit` entries. With `before`: the newest
    /// `limit` entries older than it. With `after`: the oldest `limit` entries newer than it
    /// (catching up). With both: entries strictly between them, oldest first from `after`. Pages
    /// are always in ascending id order; `has_more` says whether more entries lie beyond the
    /// page in the direction of travel (older without `after`, newer with it).
    #[oai(path = "/conversations/:id/messages", method = "get", operation_id = "getConversationMessages")]
    async fn history(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
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
        let page = app.chat.history(&auth.0, &To::Conversation(ConversationId(id.0)), query).await?;
        Ok(Json(HistoryDto::from(page)))
    }

    /// Send a message to a conversation I am a member of.
    ///
    /// 201 once it is committed; it is then delivered to every member's sockets. A resend with
    /// the same `client_id` answers 200 with the stored message and delivers nothing again.
    #[oai(path = "/conversations/:id/messages", method = "post", operation_id = "sendToConversation")]
    async fn send(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
        body: Json<NewMessage>,
    ) -> Result<SendResponse, ApiError> {
        let to = To::Conversation(ConversationId(id.0));
        let sent = app.chat.send_and_wait(&auth.0, &to, &body.body, body.client_id.as_deref()).await?;
        Ok(SendResponse::from(sent))
    }

    /// Move my read marker.
    ///
    /// It never moves back and never beyond the newest entry; the stored marker is returned. My
    /// other sockets get `read_marker`, the other members of a direct or group conversation `read`.
    #[oai(path = "/conversations/:id/read", method = "post", operation_id = "markConversationRead")]
    async fn mark_read(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// The conversation's id.
        id: Path<i64>,
        body: Json<ReadMarker>,
    ) -> Result<Json<ConversationReadState>, ApiError> {
        let to = To::Conversation(ConversationId(id.0));
        let (conversation, up_to) = app.chat.mark_read(&auth.0, &to, MessageId(body.up_to.0), None).await?;
        Ok(Json(ConversationReadState { conversation_id: conversation.0, up_to: up_to.0 }))
    }
}

pub struct RoomsApi;

#[OpenApi(tag = "ApiTags::Rooms")]
impl RoomsApi {
    /// The directory of public rooms.
    ///
    /// Those whose name or topic contains `q` (all when empty), with whether I am in each.
    #[oai(path = "/rooms", method = "get", operation_id = "listRooms")]
    async fn directory(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// Part of a name or topic; case-insensitive.
        #[oai(validator(max_length = 80))]
        q: Query<Option<String>>,
        /// How many rooms to return at most.
        #[oai(default = "default_directory_page", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u64>,
    ) -> Result<Json<Vec<RoomDto>>, ApiError> {
        let rooms = app.chat.directory(&auth.0, q.0.as_deref().unwrap_or_default(), Some(limit.0)).await?;
        Ok(Json(rooms.into_iter().map(RoomDto::from).collect()))
    }
}
