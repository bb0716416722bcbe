//! Several nodes on one PostgreSQL database: what each node tells the others over NATS.
//!
//! The database stays the one source of truth. The bus only carries word of it, fast: each
//! node's commits (so other nodes deliver them without reading them back), typing and read
//! notices, presence, and wrong passwords (so sign-in limits hold across the cluster). A word
//! lost on the bus (NATS down, a node killed between commit and publish) costs time, not data:
//! the delivery task notices the missing range of ids and reads it from the database.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    config::ClusterConfig,
    domain::{
        UserId,
        delivery::Cluster,
        fanout::{Commit, Fanout, Notice, Peers, SharedCommit, SharedEntry},
        rate_limits::RateLimiter,
    },
    monitoring,
    realtime::hub::{Hub, NodeId, PresenceChange},
    store::{Store, users},
};

/// How often a node says whom it holds sockets of.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A node silent this long is taken for dead: its users go offline for everyone.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a commit waits for a missing range to arrive from the bus before reading it back.
const GAP_WAIT: Duration = Duration::from_millis(250);
/// Words waiting to be published; past it they are dropped (the database has them).
const OUTGOING_DEPTH: usize = 16384;
/// Bytes of entries per published commit: NATS refuses messages over its `max_payload` (1 MiB
/// by default).
const COMMIT_CHUNK_BYTES: usize = 256 * 1024;

enum Outgoing {
    Commit(SharedCommit),
    Notice(Notice),
    SigninFailure { account: String, address: IpAddr },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    node: NodeId,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize, Deserialize)]
struct PresenceWord {
    user: UserId,
    username: String,
    online: bool,
    audience: Vec<UserId>,
}

#[derive(Serialize, Deserialize)]
struct Alive {
    name: String,
    users: Vec<(UserId, String)>,
}

#[derive(Serialize, Deserialize)]
struct SigninFailure {
    account: String,
    address: IpAddr,
}

/// This node's seat on the bus.
pub struct Node {
    client: async_nats::Client,
    prefix: String,
    id: NodeId,
    name: String,
    outgoing: mpsc::Sender<Outgoing>,
    /// Other nodes by id: when each was last heard from.
    peers: Mutex<HashMap<NodeId, Instant>>,
    dropped: AtomicU64,
}

/// What joining gives the rest of the App.
pub struct Joined {
    pub node: Arc<Node>,
    pub fanout: Arc<dyn Fanout>,
    pub cluster: Cluster,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Connects to NATS (in the background if it is down now) and starts this node's tasks.
pub async fn join(config: &ClusterConfig, hub: Arc<Hub>, store: Store, limits: Arc<RateLimiter>) -> anyhow::Result<Joined> {
    let id: NodeId = rand::random();
    let name = if config.node_name.is_empty() {
        format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()), std::process::id())
    } else {
        config.node_name.clone()
    };
    let client = async_nats::ConnectOptions::new()
        .name(format!("chatd {name}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(2000)))
        .connect(config.nats_url.as_str())
        .await
        .with_context(|| format!("cannot use the NATS server {}", config.nats_url))?;
    let (outgoing, queue) = mpsc::channel(OUTGOING_DEPTH);
    let node = Arc::new(Node {
        client,
        prefix: config.subject_prefix.clone(),
        id,
        name,
        outgoing,
        peers: Mutex::new(HashMap::new()),
        dropped: AtomicU64::new(0),
    });
    let subscription = node.client.subscribe(format!("{}.>", node.prefix)).await.context("cannot subscribe on NATS")?;
    let (presence_changes, presence_queue) = mpsc::unbounded_channel();
    hub.share_presence(presence_changes);
    let shared = node.clone();
    limits.share_signin_failures(move |account, address| {
        shared.queue(Outgoing::SigninFailure { account: account.to_owned(), address });
    });
    let (inbound, commits) = mpsc::channel(1024);
    let tasks = vec![
        tokio::spawn(node.clone().publish(queue, presence_queue, hub.clone())),
        tokio::spawn(node.clone().listen(subscription, inbound, hub.clone(), store.clone(), limits)),
        tokio::spawn(node.clone().watch_peers(hub.clone(), store)),
    ];
    tracing::info!(node = %node.name, nats = %config.nats_url, "joined the cluster");
    let fanout = Arc::new(ClusterFanout { hub, node: node.clone() });
    let peers: Arc<dyn Peers> = node.clone();
    Ok(Joined { node, fanout, cluster: Cluster { peers, inbound: commits, gap_wait: GAP_WAIT }, tasks })
}

impl Node {
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Other nodes heard from lately.
    pub fn peer_count(&self) -> usize {
        self.peers.lock().expect("peers lock").len()
    }

    fn queue(&self, word: Outgoing) {
        if self.outgoing.try_send(word).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(monitoring::CLUSTER_DROPPED).increment(1);
        }
    }

    fn subject(&self, kind: &str) -> String {
        format!("{}.{kind}", self.prefix)
    }

    async fn send<T: Serialize>(&self, kind: &str, body: T) {
        let payload = match serde_json::to_vec(&Envelope { node: self.id, body }) {
            Ok(payload) => payload,
            Err(error) => return tracing::error!(%error, "cannot encode a word for the bus"),
        };
        match self.client.publish(self.subject(kind), payload.into()).await {
            Ok(()) => metrics::counter!(monitoring::CLUSTER_PUBLISHED).increment(1),
            Err(error) => tracing::debug!(%error, "cannot publish on the bus"),
        }
    }

    /// Publishes, in order, what this node has to say; every few seconds, whom it holds.
    async fn publish(
        self: Arc<Self>,
        mut queue: mpsc::Receiver<Outgoing>,
        mut presence: mpsc::UnboundedReceiver<PresenceChange>,
        hub: Arc<Hub>,
    ) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            tokio::select! {
                Some(word) = queue.recv() => match word {
                    Outgoing::Commit(commit) => {
                        for chunk in chunks(commit) {
                            self.send("commit", chunk).await;
                        }
                    }
                    Outgoing::Notice(notice) => self.send("notice", notice).await,
                    Outgoing::SigninFailure { account, address } => self.send("signin", SigninFailure { account, address }).await,
                },
                Some(change) = presence.recv() => {
                    let word = match change {
                        PresenceChange::Online { user, username, audience } => PresenceWord { user, username, online: true, audience },
                        PresenceChange::Offline { user, username, audience } => PresenceWord { user, username, online: false, audience },
                    };
                    self.send("presence", word).await;
                }
                _ = heartbeat.tick() => self.send("alive", Alive { name: self.name.clone(), users: hub.local_users() }).await,
                else => return,
            }
        }
    }

    /// Takes in what the other nodes say.
    async fn listen(
        self: Arc<Self>,
        mut subscription: async_nats::Subscriber,
        inbound: mpsc::Sender<SharedCommit>,
        hub: Arc<Hub>,
        store: Store,
        limits: Arc<RateLimiter>,
    ) {
        while let Some(message) = subscription.next().await {
            let Some(kind) = message.subject.strip_prefix(&self.prefix).and_then(|s| s.strip_prefix('.')) else { continue };
            let payload = &message.payload;
            match kind {
                "commit" => {
                    if let Some((_, commit)) = self.decode::<SharedCommit>(payload) {
                        let _ = inbound.send(commit).await;
                    }
                }
                "notice" => {
                    if let Some((_, notice)) = self.decode::<Notice>(payload) {
                        hub.notify(notice);
                    }
                }
                "presence" => {
                    if let Some((node, word)) = self.decode::<PresenceWord>(payload) {
                        if word.online {
                            hub.remote_online(node, word.user, &word.username, &word.audience);
                        } else {
                            hub.remote_offline(node, word.user, &word.username, &word.audience);
                        }
                    }
                }
                "alive" => {
                    if let Some((node, alive)) = self.decode::<Alive>(payload) {
                        let new = self.peers.lock().expect("peers lock").insert(node, Instant::now()).is_none();
                        if new {
                            tracing::info!(node = %alive.name, "a node joined the cluster");
                            // It knows nothing of this node yet: say whom it holds without waiting.
                            self.send("alive", Alive { name: self.name.clone(), users: hub.local_users() }).await;
                        }
                        let (came, went) = hub.reconcile_node(node, Some(&alive.users));
                        announce(&hub, &store, came, true).await;
                        announce(&hub, &store, went, false).await;
                    }
                }
                "signin" => {
                    if let Some((_, failure)) = self.decode::<SigninFailure>(payload) {
                        limits.count_signin_failure(&failure.account, failure.address);
                    }
                }
                _ => {}
            }
        }
    }

    /// A word from another node (`None` for this node's own, or one that does not parse).
    fn decode<T: DeserializeOwned>(&self, payload: &[u8]) -> Option<(NodeId, T)> {
        match serde_json::from_slice::<Envelope<T>>(payload) {
            Ok(envelope) if envelope.node == self.id => None,
            Ok(envelope) => Some((envelope.node, envelope.body)),
            Err(error) => {
                tracing::warn!(%error, "a word on the bus does not parse");
                None
            }
        }
    }

    /// Takes nodes silent for [`NODE_TIMEOUT`] for dead: their users go offline.
    async fn watch_peers(self: Arc<Self>, hub: Arc<Hub>, store: Store) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticker.tick().await;
            let silent: Vec<NodeId> = {
                let mut peers = self.peers.lock().expect("peers lock");
                let silent = peers.iter().filter(|(_, heard)| heard.elapsed() > NODE_TIMEOUT).map(|(node, _)| *node).collect();
                peers.retain(|_, heard| heard.elapsed() <= NODE_TIMEOUT);
                silent
            };
            metrics::gauge!(monitoring::CLUSTER_NODES).set(self.peer_count() as f64 + 1.0);
            for node in silent {
                tracing::warn!(node, "a node went silent; its users are offline");
                let (_, went) = hub.reconcile_node(node, None);
                announce(&hub, &store, went, false).await;
            }
        }
    }
}

/// Tells each user's presence audience that they came or went (if that is still so).
async fn announce(hub: &Hub, store: &Store, users: Vec<(UserId, String)>, online: bool) {
    for (user, username) in users {
        match users::presence_audience(&store.read, user).await {
            Ok(audience) => hub.announce_if_still(user, &username, &audience, online),
            Err(error) => tracing::warn!(?error, "cannot read who sees a user's presence"),
        }
    }
}

/// A commit in pieces small enough for the bus; each covers a range of its own, end to end.
fn chunks(commit: SharedCommit) -> Vec<SharedCommit> {
    let SharedCommit { mut after, up_to, committed_at, entries } = commit;
    let mut pieces = Vec::new();
    let mut piece: Vec<SharedEntry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        bytes += entry.message.body.len() + entry.audience.len() * 8 + 200;
        piece.push(entry);
        if bytes >= COMMIT_CHUNK_BYTES {
            let end = piece.last().map_or(after, |e| e.message.id);
            pieces.push(SharedCommit { after, up_to: end, committed_at, entries: std::mem::take(&mut piece) });
            after = end;
            bytes = 0;
        }
    }
    if after < up_to {
        pieces.push(SharedCommit { after, up_to, committed_at, entries: piece });
    }
    pieces
}

impl Peers for Node {
    fn share(&self, commit: &SharedCommit) {
        self.queue(Outgoing::Commit(commit.clone()));
    }
}

/// This node's sockets, and word to the other nodes of what happens outside the stream.
struct ClusterFanout {
    hub: Arc<Hub>,
    node: Arc<Node>,
}

impl Fanout for ClusterFanout {
    fn publish(&self, commit: Commit) {
        self.hub.publish(commit);
    }

    fn notify(&self, notice: Notice) {
        self.node.queue(Outgoing::Notice(notice.clone()));
        self.hub.notify(notice);
    }

    fn is_online(&self, user: UserId) -> bool {
        self.hub.is_online(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConversationId, Message, MessageId};

    fn entry(id: i64, body_len: usize) -> SharedEntry {
        let message = Message {
            id: MessageId(id),
            conversation_id: ConversationId(1),
            from: "a".into(),
            to: None,
            body: "x".repeat(body_len),
            created_at: 0,
            client_id: format!("c{id}"),
            event: None,
        };
        SharedEntry { message, audience: vec![UserId(1)], added: Vec::new() }
    }

    #[test]
    fn a_big_commit_is_cut_into_pieces_whose_ranges_meet_end_to_end() {
        let entries = (11..=30).map(|id| entry(id, 40_000)).collect();
        let pieces = chunks(SharedCommit { after: MessageId(10), up_to: MessageId(30), committed_at: 0, entries });
        assert!(pieces.len() > 1);
        assert_eq!(pieces[0].after, MessageId(10));
        assert_eq!(pieces.last().unwrap().up_to, MessageId(30));
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].up_to, pair[1].after);
        }
        assert_eq!(pieces.iter().map(|p| p.entries.len()).sum::<usize>(), 20);
    }

    #[test]
    fn a_small_commit_stays_whole() {
        let entries = vec![entry(11, 10), entry(12, 10)];
        let pieces = chunks(SharedCommit { after: MessageId(10), up_to: MessageId(12), committed_at: 0, entries });
        assert_eq!(pieces.len(), 1);
        assert_eq!((pieces[0].after, pieces[0].up_to), (MessageId(10), MessageId(12)));
    }
}
