//! Messages as a signed-in user sees them: sending (through the pipeline), history, read
//! markers, typing, presence and catch-up. Conversations themselves (create, members, rooms) are
//! in `conversations`.
use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use dashmap::DashMap;

use super::{
    ClientId, ConversationId, CurrentUser, HistoryPage, Kind, Message, MessageBody, MessageId, SocketId, UserId, Username,
    Visibility,
    delivery::Cluster,
    fanout::{Fanout, Notice},
    pipeline::Pipeline,
    rate_limits::RateLimiter,
    writes::{Origin, SendRequest, Sent, Target},
};
use crate::{
    config::InputLimitsConfig,
    error::{Error, Result},
    store::{Store, conversations, messages, users},
};

/// How many entries `sync` reads from the database at a time.
const SYNC_PAGE: u64 = 500;
/// Entries in a page of history when the client does not say.
pub const DEFAULT_HISTORY_PAGE: u64 = 50;
/// How long a looked-up recipient is trusted before asking the database again, so that an account
/// disabled or removed by the admin CLI (another process) stops receiving within seconds.
const PEER_CACHE_TTL: Duration = Duration::from_secs(10);

/// A user someone may write to, as last read from the database.
#[derive(Clone)]
struct Peer {
    id: UserId,
    username: String,
    fetched: Instant,
}

/// Which conversation a request means: by the other person's name (a direct conversation, as
/// the first protocol had it), or by id.
#[derive(Clone, Debug)]
pub enum To {
    Peer(String),
    Conversation(ConversationId),
}

/// Which part of a conversation's history to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: Option<u64>,
}

/// Whose presence matters to a user coming online: who may see them, and whom they may see.
#[derive(Debug, Default)]
pub struct PresenceCircle {
    pub audience: Vec<UserId>,
    pub visible: Vec<UserId>,
}

#[derive(Clone)]
pub struct Chat {
    pub(super) store: Store,
    pub(super) fanout: Arc<dyn Fanout>,
    pub(super) pipeline: Pipeline,
    pub(super) limits: InputLimitsConfig,
    rate_limits: Arc<RateLimiter>,
    peers: Arc<DashMap<String, Peer>>,
}

impl Chat {
    pub async fn start(
        store: Store,
        fanout: Arc<dyn Fanout>,
        cluster: Option<Cluster>,
        limits: InputLimitsConfig,
        rate_limits: Arc<RateLimiter>,
    ) -> Result<Self> {
        let pipeline = Pipeline::start(store.clone(), fanout.clone(), cluster).await?;
        Ok(Self { store, fanout, pipeline, limits, rate_limits, peers: Arc::default() })
    }

    /// Sends over REST: waits for the commit. `client_id` is optional here; without one there
    /// is no idempotency, so clients that may retry should always send one.
    pub async fn send_and_wait(&self, me: &CurrentUser, to: &To, body: &str, client_id: Option<&str>) -> Result<Sent> {
        let client_id = match client_id {
            Some(raw) => ClientId::parse(raw)?,
            None => ClientId::generate(),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = self.validate_send(me, to, body, client_id, Origin::Request(reply)).await?;
        self.pipeline.send(request).await?;
        answer.await.map_err(|_| Error::Unavailable)?
    }

    /// Sends over a WebSocket: returns once queued; the ack (or an error frame) follows the commit.
    pub async fn send_from_socket(&self, me: &CurrentUser, socket: SocketId, to: &To, body: &str, client_id: &str) -> Result<()> {
        let client_id = ClientId::parse(client_id)?;
        let request = self.validate_send(me, to, body, client_id, Origin::Socket(socket)).await?;
        self.pipeline.send(request).await
    }

    async fn validate_send(&self, me: &CurrentUser, to: &To, body: &str, client_id: ClientId, origin: Origin) -> Result<SendRequest> {
        self.rate_limits.check_message(me.id)?;
        let body = MessageBody::parse(body, self.limits.max_message_chars)?;
        // Membership of a conversation is checked by the writer, which alone changes it.
        let target = match to {
            To::Peer(name) => {
                let peer = self.find_peer(me, name).await?;
                Target::Direct { recipient: peer.id, recipient_name: peer.username }
            }
            To::Conversation(id) => Target::Conversation(*id),
        };
        Ok(SendRequest {
            sender: me.id,
            sender_name: me.username.clone(),
            sender_is_admin: me.is_admin,
            target,
            body: body.into_inner(),
            client_id: client_id.into_inner(),
            origin,
            queued_at: Instant::now(),
        })
    }

    /// Another enabled user, by name. Sending is the hot path, so lookups are cached briefly.
    async fn find_peer(&self, me: &CurrentUser, name: &str) -> Result<Peer> {
        let name = Username::parse(name).map_err(|_| Error::UserNotFound)?;
        if name.as_str() == me.username {
            return Err(Error::CannotMessageSelf);
        }
        if let Some(peer) = self.peers.get(name.as_str()).filter(|p| p.fetched.elapsed() < PEER_CACHE_TTL) {
            return Ok(peer.clone());
        }
        match users::find_by_username(&self.store.read, name.as_str()).await? {
            Some(user) if !user.disabled => {
                let peer = Peer { id: UserId(user.id), username: user.username, fetched: Instant::now() };
                self.peers.insert(name.as_str().to_owned(), peer.clone());
                Ok(peer)
            }
            _ => {
                self.peers.remove(name.as_str());
                Err(Error::UserNotFound)
            }
        }
    }

    /// The conversation `to` names, if it exists and I may read it: I am a member, or it is a
    /// public room. A direct conversation not started yet is `None`.
    async fn readable(&self, me: &CurrentUser, to: &To) -> Result<Option<(ConversationId, Kind, bool)>> {
        match to {
            To::Peer(name) => {
                let peer = self.find_peer(me, name).await?;
                let found = messages::find_direct_conversation(&self.store.read, me.id, peer.id).await?;
                Ok(found.map(|id| (id, Kind::Direct, true)))
            }
            To::Conversation(id) => {
                let Some((kind, visibility)) = conversations::kind_and_visibility(&self.store.read, *id).await? else {
                    return Err(Error::ConversationNotFound);
                };
                let member = conversations::is_member(&self.store.read, *id, me.id).await?;
                if !member && !(kind == Kind::Room && visibility == Some(Visibility::Public)) {
                    return Err(if me.is_admin && kind == Kind::Room {
                        Error::Forbidden("server admins manage private rooms but do not read them")
                    } else {
                        Error::ConversationNotFound
                    });
                }
                Ok(Some((*id, kind, member)))
            }
        }
    }

    /// A page of history: the newest `limit` by default, older ones with `before`, newer ones
    /// with `after`.
    pub async fn history(&self, me: &CurrentUser, to: &To, query: HistoryQuery) -> Result<HistoryPage> {
        let limit = query.limit.unwrap_or(DEFAULT_HISTORY_PAGE);
        if limit == 0 || limit > self.limits.max_page_size {
            return Err(Error::InvalidParameter(format!("limit must be between 1 and {}", self.limits.max_page_size)));
        }
        if query.before.is_some_and(|b| b.0 < 0) || query.after.is_some_and(|a| a.0 < 0) {
            return Err(Error::InvalidParameter("before and after must not be negative".into()));
        }
        let Some((conversation, ..)) = self.readable(me, to).await? else {
            return Ok(HistoryPage { messages: Vec::new(), has_more: false });
        };
        // One row more than asked for tells whether there is more beyond this page.
        // Without `after`, the newest page (read newest first, then turned around).
        let newest_first = query.after.is_none();
        let mut page = messages::messages_between(
            &self.store.read,
            conversation,
            query.after.unwrap_or_default(),
            query.before,
            limit + 1,
            newest_first,
        )
        .await?;
        let has_more = page.len() as u64 > limit;
        page.truncate(limit as usize);
        if newest_first {
            page.reverse();
        }
        Ok(HistoryPage { messages: page, has_more })
    }

    /// Moves my read marker in a conversation and tells my other devices, and (in direct and
    /// group conversations) the other members. `origin` is the socket the request came from,
    /// which needs no echo. Returns the conversation and the marker as stored.
    pub async fn mark_read(&self, me: &CurrentUser, to: &To, up_to: MessageId, origin: Option<SocketId>) -> Result<(ConversationId, MessageId)> {
        if up_to.0 < 0 {
            return Err(Error::InvalidParameter("up_to must not be negative".into()));
        }
        let Some((conversation, kind, member)) = self.readable(me, to).await? else {
            return Ok((ConversationId(0), MessageId(0)));
        };
        if !member {
            return Err(Error::Forbidden("join the room to keep a read marker in it"));
        }
        let (marker, moved) = messages::mark_read(&self.store.write, conversation, me.id, up_to).await?;
        if !moved {
            return Ok((conversation, marker)); // nothing new to tell anyone
        }
        let others = conversations::other_members(&self.store.read, conversation, me.id).await?;
        // Rooms are large and keep no receipts; people see what they have read themselves.
        if kind != Kind::Room {
            self.fanout.notify(Notice::Read { conversation, reader: me.username.clone(), up_to: marker, to: others.clone() });
        }
        let peer = match (kind, to) {
            (Kind::Direct, To::Peer(name)) => Some(name.to_ascii_lowercase()),
            (Kind::Direct, To::Conversation(_)) => match others.first() {
                Some(other) => Some(conversations::username_of(&self.store.read, *other).await?),
                None => None,
            },
            _ => None,
        };
        self.fanout.notify(Notice::ReadMarker { user: me.id, conversation, peer, up_to: marker, except: origin });
        Ok((conversation, marker))
    }

    /// Tells the other members that I am typing. Best effort: over the per-user rate it is
    /// dropped silently, and so is typing where I am not a member.
    pub async fn typing(&self, me: &CurrentUser, to: &To) -> Result<()> {
        if !self.rate_limits.allow_typing(me.id) {
            return Ok(());
        }
        let conversation = match to {
            To::Peer(name) => {
                let peer = self.find_peer(me, name).await?;
                messages::find_direct_conversation(&self.store.read, me.id, peer.id).await?
            }
            To::Conversation(id) => Some(*id),
        };
        let Some(conversation) = conversation else { return Ok(()) };
        if !conversations::is_member(&self.store.read, conversation, me.id).await? {
            return Ok(());
        }
        let to = conversations::other_members(&self.store.read, conversation, me.id).await?;
        let key = typing_key(me.id, conversation);
        self.fanout.notify(Notice::Typing { conversation, from: me.username.clone(), to, key });
        Ok(())
    }

    /// Who may see me and whom I may see (see [`users::presence_audience`]).
    pub async fn presence_circle(&self, me: &CurrentUser) -> Result<PresenceCircle> {
        Ok(PresenceCircle {
            audience: users::presence_audience(&self.store.read, me.id).await?,
            visible: users::presence_visible(&self.store.read, me.id).await?,
        })
    }

    /// The people who may see my presence, for telling them I went offline.
    pub async fn presence_audience(&self, me: &CurrentUser) -> Result<Vec<UserId>> {
        users::presence_audience(&self.store.read, me.id).await
    }

    /// The users whose presence I may see.
    pub async fn presence_visible(&self, me: &CurrentUser) -> Result<HashSet<UserId>> {
        Ok(users::presence_visible(&self.store.read, me.id).await?.into_iter().collect())
    }

    /// Whether each of `users` is online, as far as I may know.
    pub async fn online_as_seen_by(&self, me: &CurrentUser, users: &[UserId]) -> Result<Vec<bool>> {
        let visible = self.presence_visible(me).await?;
        Ok(users.iter().map(|u| visible.contains(u) && self.fanout.is_online(*u)).collect())
    }

    /// The newest stream id I could see, up to `registered_at` (a socket's `ready.last_id`).
    pub async fn latest_id_for(&self, me: &CurrentUser, registered_at: MessageId) -> Result<MessageId> {
        messages::latest_message_id_for(&self.store.read, me.id, registered_at).await
    }

    /// Starts catching a socket up: everything I could see with `after < id <= registered_at`,
    /// oldest first, page by page from [`Chat::next_sync_page`].
    pub fn sync_from(&self, me: &CurrentUser, after: MessageId, registered_at: MessageId) -> Result<SyncPages> {
        if after.0 < 0 {
            return Err(Error::InvalidParameter("after must not be negative".into()));
        }
        self.rate_limits.check_sync(me.id)?;
        Ok(SyncPages { user: me.id, cursor: after, until: registered_at, done: false })
    }

    /// The next page of a sync, or `None` when it is complete.
    pub async fn next_sync_page(&self, pages: &mut SyncPages) -> Result<Option<Vec<Message>>> {
        if pages.done {
            return Ok(None);
        }
        let page = messages::messages_for_user_between(&self.store.read, pages.user, pages.cursor, pages.until, SYNC_PAGE).await?;
        pages.done = (page.len() as u64) < SYNC_PAGE;
        match page.last() {
            Some(last) => pages.cursor = last.id,
            None => return Ok(None),
        }
        Ok(Some(page))
    }

    /// Waits until every queued message is committed and delivered (used at shutdown).
    pub async fn flush(&self) {
        self.pipeline.flush().await;
    }
}

/// Identifies "`sender` is typing in `conversation`", so a socket holds at most one such frame.
fn typing_key(sender: UserId, conversation: ConversationId) -> u64 {
    ((sender.0 as u64) << 32) ^ (conversation.0 as u64)
}

/// Where a socket's catch-up has got to (see [`Chat::sync_from`]).
pub struct SyncPages {
    user: UserId,
    cursor: MessageId,
    until: MessageId,
    done: bool,
}

impl SyncPages {
    /// The highest id sent so far (the `after` it started from until a page came).
    pub fn covered(&self) -> MessageId {
        self.cursor
    }
}
