//! Conversations of every kind as people use them: start a group or a room, rename it, add and
//! remove people, change roles, join public rooms, archive and delete; and read them back. Every
//! change goes through the writer (`pipeline`), which checks it against `rules` with the state it
//! reads in its own transaction.
use super::{
    ConversationId, ConversationName, ConversationView, CurrentUser, DirectoryEntry, Kind, Role, Topic, Username, Visibility,
    chat::Chat,
    rules::Actor,
    writes::Operation,
};
use crate::{
    error::{Error, Result},
    store::conversations,
};

/// Members listed per conversation in the conversation list (a room's first ones).
const LISTED_MEMBERS: u64 = 20;
/// Members listed by one conversation's view.
const VIEWED_MEMBERS: u64 = 500;
/// Largest page of the public-room directory.
pub const MAX_DIRECTORY_PAGE: u64 = 100;
pub const DEFAULT_DIRECTORY_PAGE: u64 = 50;

/// A new group or room as asked for.
pub struct NewConversation<'a> {
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub visibility: Option<&'a str>,
    pub members: &'a [String],
}

/// A change of a conversation's name, topic or archived flag.
#[derive(Default)]
pub struct ConversationPatch<'a> {
    pub name: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub archived: Option<bool>,
}

fn actor(me: &CurrentUser) -> Actor {
    Actor::User { id: me.id, username: me.username.clone(), is_admin: me.is_admin }
}

fn usernames(names: &[String]) -> Result<Vec<Username>> {
    let mut missing = Vec::new();
    let mut parsed = Vec::with_capacity(names.len());
    for name in names {
        match Username::parse(name) {
            Ok(name) => parsed.push(name),
            Err(_) => missing.push(name.clone()),
        }
    }
    if missing.is_empty() { Ok(parsed) } else { Err(Error::UsersNotFound(missing)) }
}

impl Chat {
    pub async fn create_conversation(&self, me: &CurrentUser, new: NewConversation<'_>) -> Result<ConversationView> {
        let operation = creation(new, None)?;
        let id = self.pipeline.change(actor(me), operation).await?;
        self.conversation(me, id).await
    }

    /// One conversation I may read (a member, or anyone for a public room); `conversation_not_found`
    /// otherwise, exactly as for one that does not exist.
    pub async fn conversation(&self, me: &CurrentUser, id: ConversationId) -> Result<ConversationView> {
        let view = conversations::view(&self.store.read, id, me.id, VIEWED_MEMBERS).await?.ok_or(Error::ConversationNotFound)?;
        // Server admins manage every room, so they see its name and members, not its messages.
        let public = view.kind == Kind::Room && view.visibility == Some(Visibility::Public);
        let managed = view.kind == Kind::Room && me.is_admin;
        if view.my_role.is_none() && !public && !managed {
            return Err(Error::ConversationNotFound);
        }
        Ok(self.with_presence(me, vec![view]).await?.remove(0))
    }

    /// My conversations of every kind, most recent activity first.
    pub async fn conversations(&self, me: &CurrentUser) -> Result<Vec<ConversationView>> {
        let list = conversations::conversations_of(&self.store.read, me.id, LISTED_MEMBERS).await?;
        self.with_presence(me, list).await
    }

    /// Marks who is online among each conversation's members, as far as I may see.
    async fn with_presence(&self, me: &CurrentUser, mut list: Vec<ConversationView>) -> Result<Vec<ConversationView>> {
        let visible = self.presence_visible(me).await?;
        for view in &mut list {
            // Groups and rooms share presence among their members; a direct conversation only
            // once the other person has written.
            let shared = view.kind != Kind::Direct && view.my_role.is_some();
            for member in &mut view.members {
                let may_see = member.id == me.id || shared || visible.contains(&member.id);
                member.online = may_see && self.fanout.is_online(member.id);
            }
        }
        Ok(list)
    }

    pub async fn update_conversation(&self, me: &CurrentUser, id: ConversationId, patch: ConversationPatch<'_>) -> Result<ConversationView> {
        let operation = Operation::Update {
            id,
            name: patch.name.map(ConversationName::parse).transpose()?,
            topic: patch.topic.map(Topic::parse).transpose()?,
            archived: patch.archived,
        };
        self.pipeline.change(actor(me), operation).await?;
        self.conversation(me, id).await
    }

    pub async fn add_members(&self, me: &CurrentUser, id: ConversationId, names: &[String], role: Option<&str>) -> Result<ConversationView> {
        let role = role.map(Role::parse).transpose()?.unwrap_or(Role::Member);
        let operation = Operation::AddMembers { id, usernames: usernames(names)?, role };
        self.pipeline.change(actor(me), operation).await?;
        self.conversation(me, id).await
    }

    /// Removes `username`; my own name means I leave.
    pub async fn remove_member(&self, me: &CurrentUser, id: ConversationId, username: &str) -> Result<()> {
        let username = Username::parse(username).map_err(|_| Error::UserNotFound)?;
        self.pipeline.change(actor(me), Operation::RemoveMember { id, username }).await?;
        Ok(())
    }

    pub async fn set_role(&self, me: &CurrentUser, id: ConversationId, username: &str, role: &str) -> Result<ConversationView> {
        let role = Role::parse(role)?;
        let username = Username::parse(username).map_err(|_| Error::UserNotFound)?;
        self.pipeline.change(actor(me), Operation::SetRole { id, username, role }).await?;
        self.conversation(me, id).await
    }

    pub async fn join(&self, me: &CurrentUser, id: ConversationId) -> Result<ConversationView> {
        self.pipeline.change(actor(me), Operation::Join { id }).await?;
        self.conversation(me, id).await
    }

    pub async fn delete_conversation(&self, me: &CurrentUser, id: ConversationId) -> Result<()> {
        self.pipeline.change(actor(me), Operation::Delete { id }).await?;
        Ok(())
    }

    /// Public rooms whose name or topic contains `query`.
    pub async fn directory(&self, me: &CurrentUser, query: &str, limit: Option<u64>) -> Result<Vec<DirectoryEntry>> {
        let limit = limit.unwrap_or(DEFAULT_DIRECTORY_PAGE);
        if limit == 0 || limit > MAX_DIRECTORY_PAGE {
            return Err(Error::InvalidParameter(format!("limit must be between 1 and {MAX_DIRECTORY_PAGE}")));
        }
        conversations::directory(&self.store.read, query.trim(), me.id, limit).await
    }

    /// A change made from the command line, by whoever administers the server.
    pub async fn administer(&self, operation: Operation) -> Result<ConversationId> {
        self.pipeline.change(Actor::Administrator, operation).await
    }
}

/// The operation that creates `new`; `owner` is for rooms made from the command line.
pub fn creation(new: NewConversation<'_>, owner: Option<Username>) -> Result<Operation> {
    let kind = match new.kind {
        "group" => Kind::Group,
        "room" => Kind::Room,
        "direct" => return Err(Error::InvalidParameter("a direct conversation starts with a first message".into())),
        other => return Err(Error::InvalidParameter(format!("kind must be `group` or `room`, not `{other}`"))),
    };
    let visibility = new
        .visibility
        .map(|v| Visibility::parse(v).ok_or_else(|| Error::InvalidParameter("visibility must be `public` or `private`".into())))
        .transpose()?;
    Ok(Operation::Create {
        kind,
        name: new.name.map(ConversationName::parse).transpose()?,
        topic: new.topic.map(Topic::parse).transpose()?,
        visibility,
        members: usernames(new.members)?,
        owner,
    })
}
