//! Who is connected: every open, authenticated socket by user, presence, and fan-out.
//!
//! Frames are serialised once and handed to each socket's bounded queue without waiting. A socket
//! whose queue is full is too slow to keep up: it is told to close, and catches up with `sync`
//! when it reconnects, so one slow reader never holds up anyone else.
use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use dashmap::DashMap;

use super::{
    outbox::{Outbound, Outbox, PendingWakes, Queued},
    protocol::ServerFrame,
};
use crate::{domain::UserId, monitoring};

pub type SocketId = u64;

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

    /// Queues a close frame. If the queue is full the socket is dropped without one.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.outbox.push(Outbound::Close(code, reason));
    }
}

struct OnlineUser {
    username: String,
    sockets: Vec<SocketHandle>,
    /// Users who share a conversation with this one: the only ones told about its presence.
    contacts: HashSet<UserId>,
}

#[derive(Default)]
pub struct Hub {
    online: DashMap<UserId, OnlineUser>,
    next_socket_id: AtomicU64,
    /// Serialises presence changes so "offline" and "online" for one user never overtake each other.
    presence: Mutex<()>,
}

/// What registering a socket found.
pub struct Registration {
    pub first_socket: bool,
    pub online_contacts: Vec<String>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_socket_id(&self) -> SocketId {
        self.next_socket_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds an authenticated socket; the user's first socket makes them online to their contacts.
    pub fn add_socket(&self, socket: SocketHandle, username: &str, contacts: HashSet<UserId>) -> Registration {
        let _presence = self.presence.lock().expect("presence lock");
        let user = socket.user;
        let first_socket = {
            let mut entry = self.online.entry(user).or_insert_with(|| OnlineUser {
                username: username.to_owned(),
                sockets: Vec::new(),
                contacts: HashSet::new(),
            });
            entry.contacts = contacts;
            entry.sockets.push(socket);
            entry.sockets.len() == 1
        };
        metrics::gauge!(monitoring::CONNECTED_SOCKETS).increment(1.0);
        if first_socket {
            metrics::gauge!(monitoring::ONLINE_USERS).increment(1.0);
        }
        if first_socket {
            let contacts: Vec<UserId> =
                self.online.get(&user).map(|e| e.contacts.iter().copied().collect()).unwrap_or_default();
            self.announce(&contacts, username, true);
        }
        Registration { first_socket, online_contacts: self.online_contacts(user) }
    }

    /// Removes a socket; the user's last socket makes them offline to their contacts.
    pub fn remove_socket(&self, user: UserId, socket: SocketId) {
        let _presence = self.presence.lock().expect("presence lock");
        let Some(mut entry) = self.online.get_mut(&user) else { return };
        let before = entry.sockets.len();
        entry.sockets.retain(|s| s.id != socket);
        if entry.sockets.len() < before {
            metrics::gauge!(monitoring::CONNECTED_SOCKETS).decrement(1.0);
        }
        if !entry.sockets.is_empty() || before == 0 {
            return;
        }
        metrics::gauge!(monitoring::ONLINE_USERS).decrement(1.0);
        let username = entry.username.clone();
        let contacts: Vec<UserId> = entry.contacts.iter().copied().collect();
        drop(entry);
        self.online.remove_if(&user, |_, e| e.sockets.is_empty());
        self.announce(&contacts, &username, false);
    }

    pub fn sockets_of(&self, user: UserId) -> usize {
        self.online.get(&user).map_or(0, |e| e.sockets.len())
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.online.contains_key(&user)
    }

    pub fn online_users(&self) -> usize {
        self.online.len()
    }

    pub fn connected_sockets(&self) -> usize {
        self.online.iter().map(|e| e.sockets.len()).sum()
    }

    fn online_contacts(&self, user: UserId) -> Vec<String> {
        let contacts: Vec<UserId> = match self.online.get(&user) {
            Some(entry) => entry.contacts.iter().copied().collect(),
            None => return Vec::new(),
        };
        let mut names: Vec<String> =
            contacts.iter().filter_map(|c| self.online.get(c).map(|e| e.username.clone())).collect();
        names.sort();
        names
    }

    /// Tells `contacts` (those of them online) that `username` came or went.
    fn announce(&self, contacts: &[UserId], username: &str, online: bool) {
        let frame = ServerFrame::Presence { username, online }.to_text();
        for &contact in contacts {
            self.send_to_user(contact, &frame, None);
        }
    }

    /// Two users now share a conversation: from here on each sees the other's presence.
    pub fn link_contacts(&self, a: UserId, b: UserId) {
        let _presence = self.presence.lock().expect("presence lock");
        let name_of = |user: UserId| {
            let mut entry = self.online.get_mut(&user)?;
            entry.contacts.insert(if user == a { b } else { a });
            Some(entry.username.clone())
        };
        if let (Some(a_name), Some(b_name)) = (name_of(a), name_of(b)) {
            self.send_to_user(a, &ServerFrame::Presence { username: &b_name, online: true }.to_text(), None);
            self.send_to_user(b, &ServerFrame::Presence { username: &a_name, online: true }.to_text(), None);
        }
    }

    /// Sends `frame` to every socket of `user`, except the one it came from; returns how many.
    pub fn send_to_user(&self, user: UserId, frame: &Arc<str>, except: Option<SocketId>) -> usize {
        self.queue_for_user(user, frame, except, &mut PendingWakes::default())
    }

    /// Like [`Hub::send_to_user`], but the sockets' writers wake only when `wakes` does: a
    /// commit's frames go out in one write per socket.
    pub fn queue_for_user(&self, user: UserId, frame: &Arc<str>, except: Option<SocketId>, wakes: &mut PendingWakes) -> usize {
        let Some(entry) = self.online.get(&user) else { return 0 };
        let mut queued = 0;
        for socket in entry.sockets.iter().filter(|s| Some(s.id) != except) {
            socket.send(frame, wakes);
            queued += 1;
        }
        queued
    }

    /// Queues `frame` on one particular socket, if it is still connected; it wakes with `wakes`.
    pub fn queue_for_socket(&self, user: UserId, socket: SocketId, frame: &Arc<str>, wakes: &mut PendingWakes) {
        if let Some(entry) = self.online.get(&user) {
            if let Some(s) = entry.sockets.iter().find(|s| s.id == socket) {
                s.send(frame, wakes);
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
