//! After a commit: answer each REST sender and hand what was committed to the fan-out, in the
//! order of the stream, each entry exactly once.
//!
//! This runs in its own task so that the writer can commit the next batch meanwhile. It is also
//! where entries committed elsewhere join the stream: by another process (the command line) or,
//! in a cluster, by another node. Every commit covers the ids `after < id <= up_to`, and since a
//! writer numbers its entries under the stream's lock, the ranges meet end to end. So a commit
//! whose `after` is past what was published waits for the missing range: from the bus, or after
//! `gap_wait`, from the database, where it is already committed.
use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    Change, ConversationId, Kind, MessageId, UserId,
    fanout::{Commit, Entry, Fanout, Notice, Peers, SharedCommit, SharedEntry},
    now_millis,
    writes::{Origin, Outcome, SendRequest, Sent},
};
use crate::{
    error::Result,
    monitoring,
    store::{Store, conversations, messages},
};

/// Entries read back from the database per query when filling a gap.
const FILL_PAGE: u64 = 1000;
/// How often the database's counter is compared with what was published, for what was committed
/// elsewhere with no word of it (the command line; a node that died before telling the bus).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What the writer hands over, in commit order.
pub(super) enum Delivery {
    /// A committed (or failed) batch of sends, each with what became of it.
    Sends { settled: Vec<(SendRequest, Result<Outcome>)>, span: Span },
    /// A committed change (or none), and the answer to give once it is published.
    Entries { entries: Vec<Entry>, span: Span, reply: Option<(oneshot::Sender<Result<ConversationId>>, Result<ConversationId>)> },
    /// Everything before this has been committed and delivered.
    Flush(oneshot::Sender<()>),
}

/// The stream ids a transaction gave out: `after < id <= up_to` (none when they are equal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub after: MessageId,
    pub up_to: MessageId,
}

/// The cluster side of the delivery task: where this node's commits go, and where the other
/// nodes' come from.
pub struct Cluster {
    pub peers: Arc<dyn Peers>,
    pub inbound: mpsc::Receiver<SharedCommit>,
    /// How long a missing range may wait for the bus before it is read from the database.
    pub gap_wait: Duration,
}

struct Sequencer {
    store: Store,
    fanout: Arc<dyn Fanout>,
    peers: Option<Arc<dyn Peers>>,
    gap_wait: Duration,
    /// Every entry up to here has been published.
    published: MessageId,
    local: VecDeque<Delivery>,
    /// Other nodes' commits that arrived ahead of a missing range, by `after`.
    remote: BTreeMap<MessageId, SharedCommit>,
    /// Since when a commit has waited for a missing range.
    gap_since: Option<Instant>,
    /// The database's counter at the previous look.
    seen_at_last_look: MessageId,
}

pub(super) async fn run(
    store: Store,
    fanout: Arc<dyn Fanout>,
    cluster: Option<Cluster>,
    published: MessageId,
    mut deliveries: mpsc::Receiver<Delivery>,
) {
    let (peers, mut inbound, gap_wait) = match cluster {
        Some(c) => (Some(c.peers), Some(c.inbound), c.gap_wait),
        None => (None, None, Duration::ZERO),
    };
    let mut sequencer = Sequencer {
        store,
        fanout,
        peers,
        gap_wait,
        published,
        local: VecDeque::new(),
        remote: BTreeMap::new(),
        gap_since: None,
        seen_at_last_look: published,
    };
    let mut look = tokio::time::interval(LOOK_EVERY);
    loop {
        let deadline = sequencer.gap_since.map(|since| since + sequencer.gap_wait);
        tokio::select! {
            delivery = deliveries.recv() => match delivery {
                Some(delivery) => sequencer.take_local(delivery),
                None => return,
            },
            Some(commit) = async { inbound.as_mut()?.recv().await }, if inbound.is_some() => sequencer.take_remote(commit),
            _ = look.tick() => sequencer.look_for_missing().await,
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                sequencer.fill_gap().await;
            }
        }
        sequencer.drain();
    }
}

impl Sequencer {
    fn take_local(&mut self, delivery: Delivery) {
        if let Some(peers) = &self.peers {
            let entries = match &delivery {
                Delivery::Sends { settled, .. } => settled
                    .iter()
                    .filter_map(|(_, outcome)| match outcome {
                        Ok(Outcome::Created { message, audience, .. }) => {
                            Some(SharedEntry { message: message.clone(), audience: audience.members.to_vec(), added: Vec::new() })
                        }
                        _ => None,
                    })
                    .collect(),
                Delivery::Entries { entries, .. } => entries.iter().filter_map(SharedEntry::from_entry).collect(),
                Delivery::Flush(_) => Vec::new(),
            };
            if let Some(span) = delivery.span().filter(|s| s.up_to > s.after) {
                peers.share(&SharedCommit { after: span.after, up_to: span.up_to, committed_at: now_millis(), entries });
            }
        }
        self.local.push_back(delivery);
    }

    fn take_remote(&mut self, commit: SharedCommit) {
        metrics::counter!(monitoring::CLUSTER_RECEIVED).increment(1);
        let lag = (now_millis() - commit.committed_at).max(0) as f64 / 1000.0;
        metrics::histogram!(monitoring::CLUSTER_BUS_LAG_SECONDS).record(lag);
        if commit.up_to > self.published {
            self.remote.insert(commit.after, commit);
        }
    }

    /// Publishes whatever can go out in stream order.
    fn drain(&mut self) {
        loop {
            while self.remote.first_key_value().is_some_and(|(_, c)| c.up_to <= self.published) {
                self.remote.pop_first();
            }
            if let Some(span) = self.local.front().map(|d| d.span()) {
                if span.is_none_or(|s| s.after <= self.published) {
                    let delivery = self.local.pop_front().expect("a front");
                    self.publish_local(delivery);
                    continue;
                }
            }
            if self.remote.first_key_value().is_some_and(|(after, _)| *after <= self.published) {
                let (_, commit) = self.remote.pop_first().expect("a first");
                let entries = commit.entries.into_iter().filter(|e| e.message.id > self.published).map(SharedEntry::into_entry);
                self.publish(entries.collect(), commit.up_to);
                continue;
            }
            break;
        }
        let waiting = !self.local.is_empty() || !self.remote.is_empty();
        match (waiting, self.gap_since) {
            (true, None) => self.gap_since = Some(Instant::now()),
            (false, Some(_)) => self.gap_since = None,
            _ => {}
        }
    }

    fn publish(&mut self, entries: Vec<Entry>, up_to: MessageId) {
        self.published = self.published.max(up_to);
        self.fanout.publish(Commit { entries, up_to: self.published });
    }

    fn publish_local(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Sends { settled, span } => {
                let (entries, replies) = settled_entries(self.fanout.as_ref(), settled, self.published);
                self.publish(entries, span.up_to);
                for (reply, answer) in replies {
                    let _ = reply.send(answer);
                }
            }
            Delivery::Entries { entries, span, reply } => {
                let entries = entries.into_iter().filter(|e| entry_id(e).is_none_or(|id| id > self.published)).collect();
                self.publish(entries, span.up_to);
                if let Some((reply, answer)) = reply {
                    let _ = reply.send(answer);
                }
            }
            Delivery::Flush(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// Where the missing range ends: the start of the first commit waiting for it.
    fn gap_end(&self) -> Option<MessageId> {
        let local = self.local.iter().filter_map(Delivery::span).map(|s| s.after).find(|after| *after > self.published);
        let remote = self.remote.keys().next().copied().filter(|after| *after > self.published);
        local.into_iter().chain(remote).min()
    }

    /// Compares the database's counter with what was published. A range committed with no word
    /// of it is read back at once without a bus, and with one at the next look if still missing
    /// (its word may be on the way).
    async fn look_for_missing(&mut self) {
        let last = match messages::last_assigned_message_id(&self.store.read).await {
            Ok(last) => last,
            Err(error) => return tracing::warn!(?error, "cannot read the stream's counter"),
        };
        let due = if self.gap_wait.is_zero() { last } else { std::mem::replace(&mut self.seen_at_last_look, last) };
        if due > self.published {
            self.fill_to(due).await;
        }
    }

    async fn fill_gap(&mut self) {
        self.gap_since = None;
        if let Some(end) = self.gap_end().filter(|end| *end > self.published) {
            self.fill_to(end).await;
        }
    }

    /// Publishes, from the database, every entry with `published < id <= up_to`, each to the
    /// members its id falls in.
    async fn fill_to(&mut self, up_to: MessageId) {
        metrics::counter!(monitoring::CLUSTER_RESYNCS).increment(1);
        loop {
            let page = match messages::messages_between_ids(&self.store.read, self.published, up_to, FILL_PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(?error, "cannot read entries committed elsewhere");
                    return;
                }
            };
            let Some(last) = page.last().map(|m| m.id) else {
                self.publish(Vec::new(), up_to);
                return;
            };
            let mut entries = Vec::with_capacity(page.len());
            for message in page {
                let watchers = match conversations::audience_at(&self.store.read, message.conversation_id, message.id).await {
                    Ok(watchers) => watchers,
                    Err(error) => {
                        tracing::error!(?error, "cannot read who sees an entry committed elsewhere");
                        return;
                    }
                };
                let audience: Arc<[UserId]> = watchers.iter().map(|(id, _)| *id).collect();
                entries.push(match &message.event {
                    Some(change) => {
                        let added = added_ids(change, &watchers);
                        Entry::Event { message: Arc::new(message), audience, added }
                    }
                    None => Entry::Message { message: Arc::new(message), audience, ack: None, created: true },
                });
            }
            let end = if (entries.len() as u64) < FILL_PAGE { up_to } else { last };
            self.publish(entries, end);
            if end >= up_to {
                return;
            }
        }
    }
}

impl Delivery {
    fn span(&self) -> Option<Span> {
        match self {
            Delivery::Sends { span, .. } | Delivery::Entries { span, .. } => Some(*span),
            Delivery::Flush(_) => None,
        }
    }
}

fn entry_id(entry: &Entry) -> Option<MessageId> {
    match entry {
        Entry::Message { message, .. } | Entry::Event { message, .. } => Some(message.id),
        Entry::Refused { .. } => None,
    }
}

type Reply = (oneshot::Sender<Result<Sent>>, Result<Sent>);

/// A batch's entries for the fan-out and its REST answers. An entry already published (read back
/// from the database while this batch was on its way) keeps only its ack.
fn settled_entries(fanout: &dyn Fanout, settled: Vec<(SendRequest, Result<Outcome>)>, published: MessageId) -> (Vec<Entry>, Vec<Reply>) {
    let mut entries = Vec::with_capacity(settled.len());
    let mut replies = Vec::new();
    for (request, outcome) in settled {
        metrics::histogram!(monitoring::SEND_TO_ACK_SECONDS).record(request.queued_at.elapsed().as_secs_f64());
        let (sender, client_id) = (request.sender, request.client_id);
        match (outcome, request.origin) {
            (Ok(Outcome::Created { message, audience, first_post }), origin) => {
                metrics::counter!(monitoring::MESSAGES_STORED).increment(1);
                if first_post && audience.kind == Kind::Direct {
                    let watchers: Vec<UserId> = audience.members.iter().copied().filter(|m| *m != sender).collect();
                    fanout.notify(Notice::PresenceRevealed { user: sender, watchers });
                }
                let created = message.id > published;
                let message = Arc::new(message);
                let ack = match origin {
                    Origin::Socket(socket) => Some((sender, socket)),
                    Origin::Request(reply) => {
                        replies.push((reply, Ok(Sent { message: (*message).clone(), created: true })));
                        None
                    }
                };
                entries.push(Entry::Message { message, audience: audience.members.clone(), ack, created });
            }
            (Ok(Outcome::Resent(message)), Origin::Socket(socket)) => {
                let message = Arc::new(message);
                entries.push(Entry::Message { message, audience: Arc::from([]), ack: Some((sender, socket)), created: false });
            }
            (Ok(Outcome::Resent(message)), Origin::Request(reply)) => replies.push((reply, Ok(Sent { message, created: false }))),
            (Err(error), Origin::Socket(socket)) => entries.push(Entry::Refused { sender, socket, client_id, error }),
            (Err(error), Origin::Request(reply)) => replies.push((reply, Err(error))),
        }
    }
    (entries, replies)
}

/// The ids of the members a change added, among those who see it.
pub(super) fn added_ids(change: &Change, watchers: &[(UserId, String)]) -> Vec<UserId> {
    let names: Vec<&str> = match change {
        Change::ConversationCreated { members, .. } | Change::MemberAdded { members, .. } => {
            members.iter().map(|m| m.username.as_str()).collect()
        }
        _ => return Vec::new(),
    };
    watchers.iter().filter(|(_, name)| names.contains(&name.as_str())).map(|(id, _)| *id).collect()
}
