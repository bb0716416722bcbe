//! Who is connected: every open, authenticated socket by user, presence, and the fan-out of what
//! the write path committed, turned into frames here.
//!
//! Frames are serialised once and handed to each socket's bounded outbox without waiting. A socket
//! whose outbox is full is too slow to keep up: it is dropped, and catches up with `sync` when it
//! reconnects, so one slow reader never holds up anyone else.
use std::sync::{
    Arc, Mutex, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::{
    outbox::{Outbound, Outbox, PendingWakes, Queued},
    protocol::{ServerFrame, entry_frame},
};
use crate::{
    domain::{
        MessageId, SocketId, UserId,
        chat::PresenceCircle,
        fanout::{Commit, Entry, Fanout, Notice},
    },
    monitoring,
};

/// The hub's handle on one socket.
#[derive(Clone)]
pub struct SocketHandle {
    pub id: SocketId,
    pub user: UserId,
    pub session_id: Arc<str>,
    outbox: Arc<Outbox>,
}

impl SocketHandle {
    pub fn new(id: SocketId, user: UserId, session_id: &str, outbox: Arc<Outbox>) -> Self {
        Self { id, user, session_id: session_id.into(), outbox }
    }

    /// Queues a frame; the writer wakes when `wakes` is woken (or dropped). A socket whose
    /// outbox is full is dropped (the outbox wakes its writer for that).
    fn send(&self, frame: &Arc<str>, wakes: &mut PendingWakes) {
        if self.outbox.push_quietly(Outbound::Text(frame.clone())) == Queued::First {
            wakes.add(&self.outbox);
        }
    }

    /// Closes the socket with `code`, after what is queued; a socket that stopped reading is
    /// dropped instead of waited for.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.outbox.close_with(code, reason);
    }
}

struct OnlineUser {
    username: String,
    sockets: Vec<SocketHandle>,
}

/// A user with sockets on other nodes of the cluster.
struct RemoteUser {
    username: String,
    nodes: Vec<NodeId>,
}

/// A node of the cluster, as its messages on the bus name it.
pub type NodeId = u64;

/// A user's first socket on this node opened, or their last one closed: what the other nodes
/// of a cluster are told.
#[derive(Debug)]
pub enum PresenceChange {
    Online { user: UserId, username: String, audience: Vec<UserId> },
    Offline { user: UserId, username: String, audience: Vec<UserId> },
}

#[derive(Default)]
pub struct Hub {
    online: DashMap<UserId, OnlineUser>,
    next_socket_id: AtomicU64,
    /// Serialises presence changes so "offline" and "online" for one user never overtake each other.
    presence: Mutex<()>,
    /// The newest stream id published. Held while a commit is fanned out, so that a socket
    /// registers either before a commit (and gets it live) or after it (and gets it from `sync`).
    published: Mutex<MessageId>,
    /// Sockets each user has open or is opening, counted before they register so that a burst of
    /// `auth` frames cannot get past `rate_limits.sockets_per_user`.
    slots: DashMap<UserId, usize>,
    /// Users online on other nodes.
    remote: DashMap<UserId, RemoteUser>,
    /// Where this node's presence changes go, in a cluster.
    presence_changes: OnceLock<mpsc::UnboundedSender<PresenceChange>>,
}

/// What registering a socket found.
pub struct Registration {
    /// Everything after this id arrives live; everything up to it comes from `sync`.
    pub registered_at: MessageId,
    pub online_contacts: Vec<String>,
}

/// A place among a user's sockets, held from authentication until the socket is gone.
pub struct SocketSlot {
    hub: Arc<Hub>,
    user: UserId,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.hub.slots.remove_if_mut(&self.user, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_socket_id(&self) -> SocketId {
        SocketId(self.next_socket_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Takes one of `user`'s `max` socket places (0: no limit), or `None` when all are taken.
    pub fn reserve_socket(self: &Arc<Self>, user: UserId, max: usize) -> Option<SocketSlot> {
        let mut count = self.slots.entry(user).or_insert(0);
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(SocketSlot { hub: self.clone(), user })
    }

    /// Adds an authenticated socket between two commits; the user's first socket makes them
    /// online to their audience.
    pub fn register(&self, socket: SocketHandle, username: &str, circle: &PresenceCircle) -> Registration {
        let published = self.published.lock().expect("stream lock");
        let _presence = self.presence.lock().expect("presence lock");
        let user = socket.user;
        let first_socket = {
            let mut entry = self
                .online
                .entry(user)
                .or_insert_with(|| OnlineUser { username: username.to_owned(), sockets: Vec::new() });
            entry.sockets.push(socket);
            entry.sockets.len() == 1
        };
        metrics::gauge!(monitoring::CONNECTED_SOCKETS).increment(1.0);
        if first_socket {
            metrics::gauge!(monitoring::ONLINE_USERS).increment(1.0);
            if !self.remote.contains_key(&user) {
                self.announce(&circle.audience, username, true);
            }
            self.tell_cluster(PresenceChange::Online { user, username: username.to_owned(), audience: circle.audience.clone() });
        }
        let mut online_contacts: Vec<String> = circle.visible.iter().filter_map(|c| self.name_if_online(*c)).collect();
        online_contacts.sort();
        Registration { registered_at: *published, online_contacts }
    }

    /// Removes a socket; true when it was the user's last, so that they are now offline.
    pub fn remove_socket(&self, user: UserId, socket: SocketId) -> bool {
        let _presence = self.presence.lock().expect("presence lock");
        let Some(mut entry) = self.online.get_mut(&user) else { return false };
        let before = entry.sockets.len();
        entry.sockets.retain(|s| s.id != socket);
        if entry.sockets.len() < before {
            metrics::gauge!(monitoring::CONNECTED_SOCKETS).decrement(1.0);
        }
        if !entry.sockets.is_empty() || before == 0 {
            return false;
        }
        drop(entry);
        self.online.remove_if(&user, |_, e| e.sockets.is_empty());
        metrics::gauge!(monitoring::ONLINE_USERS).decrement(1.0);
        true
    }

    /// Tells `audience` that `username` went offline, unless they are back online meanwhile
    /// (here or on another node).
    pub fn announce_offline(&self, user: UserId, username: &str, audience: &[UserId]) {
        let _presence = self.presence.lock().expect("presence lock");
        if !self.online.contains_key(&user) {
            if !self.remote.contains_key(&user) {
                self.announce(audience, username, false);
            }
            self.tell_cluster(PresenceChange::Offline { user, username: username.to_owned(), audience: audience.to_vec() });
        }
    }

    /// Sends this node's presence changes to `changes` from now on (a cluster's bus).
    pub fn share_presence(&self, changes: mpsc::UnboundedSender<PresenceChange>) {
        let _ = self.presence_changes.set(changes);
    }

    fn tell_cluster(&self, change: PresenceChange) {
        if let Some(changes) = self.presence_changes.get() {
            let _ = changes.send(change);
        }
    }

    /// Users with a socket on this node, for the other nodes.
    pub fn local_users(&self) -> Vec<(UserId, String)> {
        self.online.iter().map(|e| (*e.key(), e.username.clone())).collect()
    }

    /// `user` has a socket on `node` now; `audience` hears of it if they were offline everywhere.
    pub fn remote_online(&self, node: NodeId, user: UserId, username: &str, audience: &[UserId]) {
        let _presence = self.presence.lock().expect("presence lock");
        if self.mark_remote(node, user, username) {
            self.announce(audience, username, true);
        }
    }

    /// `user` has no socket on `node` any more; `audience` hears of it if that was their last.
    pub fn remote_offline(&self, node: NodeId, user: UserId, username: &str, audience: &[UserId]) {
        let _presence = self.presence.lock().expect("presence lock");
        if self.unmark_remote(node, user) {
            self.announce(audience, username, false);
        }
    }

    /// Whom `node` holds sockets of, as it says every few seconds (`None`: it went silent).
    /// Returns who came online and who went offline everywhere, for the caller to announce.
    pub fn reconcile_node(&self, node: NodeId, users: Option<&[(UserId, String)]>) -> (Vec<(UserId, String)>, Vec<(UserId, String)>) {
        let _presence = self.presence.lock().expect("presence lock");
        let held: Vec<(UserId, String)> = self
            .remote
            .iter()
            .filter(|e| e.nodes.contains(&node))
            .map(|e| (*e.key(), e.username.clone()))
            .collect();
        let users = users.unwrap_or_default();
        let came = users.iter().filter(|(user, name)| self.mark_remote(node, *user, name)).cloned().collect();
        let went = held
            .into_iter()
            .filter(|(user, _)| !users.iter().any(|(u, _)| u == user))
            .filter(|(user, _)| self.unmark_remote(node, *user))
            .collect();
        (came, went)
    }

    /// Tells `audience` that `username` came or went, if that is still so (after a reconcile).
    pub fn announce_if_still(&self, user: UserId, username: &str, audience: &[UserId], online: bool) {
        let _presence = self.presence.lock().expect("presence lock");
        if self.is_online(user) == online {
            self.announce(audience, username, online);
        }
    }

    /// Adds `node` to `user`'s; true if they were offline everywhere before.
    fn mark_remote(&self, node: NodeId, user: UserId, username: &str) -> bool {
        let was_online = self.is_online(user);
        let mut entry = self.remote.entry(user).or_insert_with(|| RemoteUser { username: username.to_owned(), nodes: Vec::new() });
        if !entry.nodes.contains(&node) {
            entry.nodes.push(node);
        }
        !was_online
    }

    /// Removes `node` from `user`'s; true if they are now offline everywhere.
    fn unmark_remote(&self, node: NodeId, user: UserId) -> bool {
        let Some(mut entry) = self.remote.get_mut(&user) else { return false };
        entry.nodes.retain(|n| *n != node);
        let empty = entry.nodes.is_empty();
        drop(entry);
        if empty {
            self.remote.remove_if(&user, |_, e| e.nodes.is_empty());
        }
        empty && !self.online.contains_key(&user)
    }

    /// The user's name if they are online here or on another node.
    fn name_if_online(&self, user: UserId) -> Option<String> {
        self.username_of(user).or_else(|| self.remote.get(&user).map(|e| e.username.clone()))
    }

    pub fn sockets_of(&self, user: UserId) -> usize {
        self.online.get(&user).map_or(0, |e| e.sockets.len())
    }

    pub fn online_users(&self) -> usize {
        self.online.len()
    }

    pub fn connected_sockets(&self) -> usize {
        self.online.iter().map(|e| e.sockets.len()).sum()
    }

    fn username_of(&self, user: UserId) -> Option<String> {
        self.online.get(&user).map(|e| e.username.clone())
    }

    /// Tells `audience` (those of them online) that `username` came or went.
    fn announce(&self, audience: &[UserId], username: &str, online: bool) {
        let frame = ServerFrame::Presence { username, online }.to_text();
        let mut wakes = PendingWakes::default();
        for &watcher in audience {
            self.queue_for_user(watcher, &frame, None, &mut wakes);
        }
    }

    /// `added` joined a conversation with `audience`: those who are online now see each other.
    fn introduce(&self, added: &[UserId], audience: &[UserId], wakes: &mut PendingWakes) {
        let _presence = self.presence.lock().expect("presence lock");
        let online: Vec<(UserId, String)> = audience.iter().filter_map(|&u| self.name_if_online(u).map(|name| (u, name))).collect();
        for &newcomer in added {
            let Some((_, name)) = online.iter().find(|(u, _)| *u == newcomer) else { continue };
            let frame = ServerFrame::Presence { username: name, online: true }.to_text();
            for (other, other_name) in online.iter().filter(|(u, _)| *u != newcomer) {
                self.queue_for_user(*other, &frame, None, wakes);
                let back = ServerFrame::Presence { username: other_name, online: true }.to_text();
                self.queue_for_user(newcomer, &back, None, wakes);
            }
        }
    }

    /// Queues `frame` on every socket of `user` except `except`; the sockets' writers wake when
    /// `wakes` does, so a commit's frames go out in one write per socket. Returns how many.
    fn queue_for_user(&self, user: UserId, frame: &Arc<str>, except: Option<SocketId>, wakes: &mut PendingWakes) -> usize {
        let Some(entry) = self.online.get(&user) else { return 0 };
        let mut queued = 0;
        for socket in entry.sockets.iter().filter(|s| Some(s.id) != except) {
            socket.send(frame, wakes);
            queued += 1;
        }
        queued
    }

    /// Queues `frame` on one particular socket, if it is still connected.
    fn queue_for_socket(&self, user: UserId, socket: SocketId, frame: &Arc<str>, wakes: &mut PendingWakes) {
        if let Some(entry) = self.online.get(&user)
            && let Some(s) = entry.sockets.iter().find(|s| s.id == socket)
        {
            s.send(frame, wakes);
        }
    }

    /// Queues a short-lived frame (typing) on `user`'s sockets; a socket that already has the
    /// same `key` waiting, or is behind, goes without.
    fn queue_ephemeral(&self, user: UserId, frame: &Arc<str>, key: u64) {
        let Some(entry) = self.online.get(&user) else { return };
        for socket in &entry.sockets {
            if socket.outbox.push_ephemeral_quietly(Outbound::Text(frame.clone()), key) == Queued::First {
                socket.outbox.wake();
            }
        }
    }

    /// Closes the sockets opened with a session that was just revoked.
    pub fn close_session(&self, user: UserId, session_id: &str, code: u16, reason: &'static str) {
        if let Some(entry) = self.online.get(&user) {
            for socket in entry.sockets.iter().filter(|s| &*s.session_id == session_id) {
                socket.close(code, reason);
            }
        }
    }

    /// Closes every socket of a user (signed out everywhere, disabled or removed).
    pub fn close_user(&self, user: UserId, code: u16, reason: &'static str) {
        if let Some(entry) = self.online.get(&user) {
            for socket in &entry.sockets {
                socket.close(code, reason);
            }
        }
    }

    /// Closes every socket, e.g. with 1001 when the server shuts down.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for entry in self.online.iter() {
            for socket in &entry.sockets {
                socket.close(code, reason);
            }
        }
    }
}

impl Fanout for Hub {
    fn publish(&self, commit: Commit) {
        // Every frame of the commit is queued first; each socket then wakes once.
        let mut wakes = PendingWakes::default();
        let mut published = self.published.lock().expect("stream lock");
        let mut delivered = 0;
        for entry in commit.entries {
            match entry {
                Entry::Message { message, audience, ack, created } => {
                    if let Some((sender, socket)) = ack {
                        let frame = ServerFrame::Ack { client_id: &message.client_id, message: (&*message).into() }.to_text();
                        self.queue_for_socket(sender, socket, &frame, &mut wakes);
                    }
                    if created {
                        let frame = entry_frame(&message);
                        let except = ack.map(|(_, socket)| socket);
                        delivered += audience.iter().map(|&member| self.queue_for_user(member, &frame, except, &mut wakes)).sum::<usize>();
                    }
                }
                Entry::Refused { sender, socket, client_id, error } => {
                    let frame =
                        ServerFrame::Error { code: error.code(), message: &error.to_string(), client_id: Some(&client_id) }.to_text();
                    self.queue_for_socket(sender, socket, &frame, &mut wakes);
                }
                Entry::Event { message, audience, added } => {
                    let frame = entry_frame(&message);
                    for &member in audience.iter() {
                        self.queue_for_user(member, &frame, None, &mut wakes);
                    }
                    if !added.is_empty() {
                        self.introduce(&added, &audience, &mut wakes);
                    }
                }
            }
        }
        *published = (*published).max(commit.up_to);
        drop(published);
        metrics::counter!(monitoring::MESSAGES_DELIVERED).increment(delivered as u64);
    }

    fn notify(&self, notice: Notice) {
        let mut wakes = PendingWakes::default();
        match notice {
            Notice::Typing { conversation, from, to, key } => {
                let frame = ServerFrame::Typing { conversation_id: conversation, from: &from }.to_text();
                for user in to {
                    self.queue_ephemeral(user, &frame, key);
                }
            }
            Notice::Read { conversation, reader, up_to, to } => {
                let frame = ServerFrame::Read { conversation_id: conversation, peer: &reader, up_to }.to_text();
                for user in to {
                    self.queue_for_user(user, &frame, None, &mut wakes);
                }
            }
            Notice::ReadMarker { user, conversation, peer, up_to, except } => {
                let frame = ServerFrame::ReadMarker { conversation_id: conversation, peer: peer.as_deref(), up_to }.to_text();
                self.queue_for_user(user, &frame, except, &mut wakes);
            }
            Notice::PresenceRevealed { user, watchers } => {
                let _presence = self.presence.lock().expect("presence lock");
                let Some(name) = self.name_if_online(user) else { return };
                let frame = ServerFrame::Presence { username: &name, online: true }.to_text();
                for watcher in watchers {
                    self.queue_for_user(watcher, &frame, None, &mut wakes);
                }
            }
        }
    }

    fn is_online(&self, user: UserId) -> bool {
        self.online.contains_key(&user) || self.remote.contains_key(&user)
    }
}
