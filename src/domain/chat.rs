//! Conversations and messages as a signed-in user sees them: sending (through the pipeline),
//! history, the conversation list, read markers, typing and catch-up.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use dashmap::DashMap;

use super::{
    rate_limits::RateLimiter,
    ClientId, ConversationId, ConversationSummary, CurrentUser, HistoryPage, Message, MessageBody, MessageId, UserId, Username,
    pipeline::{Origin, Pipeline, SendRequest, Sent},
};
use crate::{
    config::InputLimitsConfig,
    error::{Error, Result},
    realtime::{
        hub::{Hub, PresenceCircle, Registration, SocketHandle, SocketId},
        protocol::ServerFrame,
    },
    store::{Store, messages, users},
};

/// How many messages `sync` reads from the database at a time.
const SYNC_PAGE: u64 = 500;
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

/// Which part of a conversation's history to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: Option<u64>,
}

#[derive(Clone)]
pub struct Chat {
    store: Store,
    hub: Arc<Hub>,
    pipeline: Pipeline,
    limits: InputLimitsConfig,
    rate_limits: Arc<RateLimiter>,
    peers: Arc<DashMap<String, Peer>>,
}

impl Chat {
    pub async fn start(store: Store, hub: Arc<Hub>, limits: InputLimitsConfig, rate_limits: Arc<RateLimiter>) -> Result<Self> {
        let pipeline = Pipeline::start(store.clone(), hub.clone()).await?;
        Ok(Self { store, hub, pipeline, limits, rate_limits, peers: Arc::default() })
    }

    /// Sends over REST: waits for the commit. `client_id` is optional here; without one there
    /// is no idempotency, so clients that may retry should always send one.
    pub async fn send_and_wait(&self, me: &CurrentUser, to: &str, body: &str, client_id: Option<&str>) -> Result<Sent> {
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
    pub async fn send_from_socket(
        &self,
        me: &CurrentUser,
        socket: SocketId,
        to: &str,
        body: &str,
        client_id: &str,
    ) -> Result<()> {
        let client_id = ClientId::parse(client_id)?;
        let request = self.validate_send(me, to, body, client_id, Origin::Socket(socket)).await?;
        self.pipeline.send(request).await
    }

    async fn validate_send(
        &self,
        me: &CurrentUser,
        to: &str,
        body: &str,
        client_id: ClientId,
        origin: Origin,
    ) -> Result<SendRequest> {
        self.rate_limits.check_message(me.id)?;
        let body = MessageBody::parse(body, self.limits.max_message_chars)?;
        let recipient = self.find_peer(me, to).await?;
        Ok(SendRequest {
            sender: me.id,
            sender_name: me.username.clone(),
            recipient: recipient.id,
            recipient_name: recipient.username,
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
                let peer = Peer { id: user.id, username: user.username, fetched: Instant::now() };
                self.peers.insert(name.as_str().to_owned(), peer.clone());
                Ok(peer)
            }
            _ => {
                self.peers.remove(name.as_str());
                Err(Error::UserNotFound)
            }
        }
    }

    pub async fn history(&self, me: &CurrentUser, peer: &str, query: HistoryQuery) -> Result<HistoryPage> {
        let limit = query.limit.unwrap_or(50);
        if limit == 0 || limit > self.limits.max_page_size {
            return Err(Error::InvalidParameter(format!("limit must be between 1 and {}", self.limits.max_page_size)));
        }
        if query.before.is_some_and(|b| b < 0) || query.after.is_some_and(|a| a < 0) {
            return Err(Error::InvalidParameter("before and after must not be negative".into()));
        }
        let peer = self.find_peer(me, peer).await?;
        let Some(conversation) = messages::find_direct_conversation(&self.store.read, me.id, peer.id).await? else {
            return Ok(HistoryPage { messages: Vec::new(), has_more: false });
        };
        // One row more than asked for tells whether there is more beyond this page.
        // Without `after`, the newest page (read newest first, then turned around).
        let newest_first = query.after.is_none();
        let mut page = messages::messages_between(
            &self.store.read,
            conversation,
            query.after.unwrap_or(0),
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

    /// My conversations, most recent first, each with whether the peer is online (false for
    /// peers whose presence I may not see).
    pub async fn conversations(&self, me: &CurrentUser) -> Result<Vec<(ConversationSummary, bool)>> {
        let list = messages::conversations_of(&self.store.read, me.id).await?;
        let visible = self.presence_visible(me).await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let online = visible.contains(&c.peer_id) && self.hub.is_online(c.peer_id);
                (c, online)
            })
            .collect())
    }

    /// The users whose presence I may see (see [`users::presence_visible`]).
    pub async fn presence_visible(&self, me: &CurrentUser) -> Result<std::collections::HashSet<UserId>> {
        Ok(users::presence_visible(&self.store.read, me.id).await?.into_iter().collect())
    }

    /// Whether each of `users` is online, as far as I may know.
    pub async fn online_as_seen_by(&self, me: &CurrentUser, users: &[UserId]) -> Result<Vec<bool>> {
        let visible = self.presence_visible(me).await?;
        Ok(users.iter().map(|u| visible.contains(u) && self.hub.is_online(*u)).collect())
    }

    /// Marks my side of the conversation with `peer` read up to `up_to`, and tells the peer and
    /// my other devices.
    /// `origin` is the socket the request came from, which needs no echo.
    pub async fn mark_read(&self, me: &CurrentUser, peer: &str, up_to: MessageId, origin: Option<SocketId>) -> Result<MessageId> {
        if up_to < 0 {
            return Err(Error::InvalidParameter("up_to must not be negative".into()));
        }
        let peer = self.find_peer(me, peer).await?;
        let Some(conversation) = messages::find_direct_conversation(&self.store.read, me.id, peer.id).await? else {
            return Ok(0);
        };
        let (marker, moved) = messages::mark_read(&self.store.write, conversation, me.id, up_to).await?;
        if !moved {
            return Ok(marker); // nothing new to tell anyone
        }
        let frame = ServerFrame::Read { peer: &me.username, up_to: marker }.to_text();
        self.hub.send_to_user(peer.id, &frame, None);
        // My other devices clear their unread badges too.
        let mine = ServerFrame::ReadMarker { peer: &peer.username, up_to: marker }.to_text();
        self.hub.send_to_user(me.id, &mine, origin);
        Ok(marker)
    }

    /// Tells `to`'s sockets that I am typing, if we share a conversation. Typing is best effort:
    /// over the per-user rate it is dropped silently, and a socket that is behind goes without.
    pub async fn typing(&self, me: &CurrentUser, to: &str) -> Result<()> {
        if !self.rate_limits.allow_typing(me.id) {
            return Ok(());
        }
        let peer = self.find_peer(me, to).await?;
        let Some(conversation) = messages::find_direct_conversation(&self.store.read, me.id, peer.id).await? else {
            return Ok(());
        };
        let frame = ServerFrame::Typing { from: &me.username }.to_text();
        self.hub.send_ephemeral_to_user(peer.id, &frame, typing_key(me.id, conversation));
        Ok(())
    }

    /// Registers a socket for live delivery; returns the id up to which it must catch up with
    /// `sync` (everything later arrives live), the newest message id involving me up to that point,
    /// and my online contacts.
    pub async fn connect_socket(&self, me: &CurrentUser, socket: SocketHandle) -> Result<(MessageId, MessageId, Registration)> {
        let circle = PresenceCircle {
            audience: users::presence_audience(&self.store.read, me.id).await?,
            visible: users::presence_visible(&self.store.read, me.id).await?,
        };
        let (registered_at, registration) = self.pipeline.register(socket, me.username.clone(), circle).await?;
        let last_id = messages::latest_message_id_for(&self.store.read, me.id, registered_at).await?;
        Ok((registered_at, last_id, registration))
    }

    /// Removes a socket; with my last one gone, the people who may see me learn I am offline.
    pub async fn disconnect_socket(&self, me: &CurrentUser, socket: SocketId) {
        if !self.hub.remove_socket(me.id, socket) {
            return;
        }
        match users::presence_audience(&self.store.read, me.id).await {
            Ok(audience) => self.hub.announce_offline(me.id, &me.username, &audience),
            Err(error) => tracing::warn!(?error, "cannot tell contacts that a user went offline"),
        }
    }

    /// Starts catching a socket up: everything involving me with `after < id <= registered_at`,
    /// oldest first, page by page from [`Chat::next_sync_page`].
    pub fn sync_from(&self, me: &CurrentUser, after: MessageId, registered_at: MessageId) -> Result<SyncPages> {
        if after < 0 {
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
    ((sender as u64) << 32) ^ (conversation as u64)
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
