//! The one write path for messages: validate (in `chat`), then here commit, then ack and deliver
//! (in `delivery`).
//!
//! A single task owns message writes. It takes whatever sends are queued, commits them in one
//! SQLite transaction, and only after the commit hands them to the delivery task, which acks each
//! sender and delivers to every other socket of both members while the next batch commits.
//! New sockets register through the same two tasks, between batches, so each socket knows the
//! exact id from which it receives messages live (`registered_at`): everything up to that id
//! comes from `sync`, everything after it arrives as `receive_message`, so a reconnecting client
//! gets each message exactly once.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use sea_orm::TransactionTrait;
use tokio::sync::{mpsc, oneshot};

use super::{
    ConversationId, Message, MessageId, UserId,
    delivery::{Deliverer, Delivery, SocketRegistration},
    now_millis,
};
use crate::{
    error::{Error, Result},
    monitoring,
    realtime::hub::{Hub, PresenceCircle, Registration, SocketHandle, SocketId},
    store::{
        Store,
        messages::{self, NewMessage},
    },
};

/// The most sends committed in one transaction. Big batches matter: every commit rewrites the
/// index pages it touched, so fewer, larger commits write far less (measured: 512 → 8192 took
/// scenario 1 from ~17k to ~71k msg/s).
const MAX_BATCH: usize = 8192;
/// Sends waiting for the writer before senders have to wait too.
const QUEUE_DEPTH: usize = 32768;
/// Committed batches waiting for the delivery task before the writer waits too.
const DELIVERY_DEPTH: usize = 4;

/// A validated message on its way to the database.
pub struct SendRequest {
    pub sender: UserId,
    pub sender_name: String,
    pub recipient: UserId,
    pub recipient_name: String,
    pub body: String,
    pub client_id: String,
    pub origin: Origin,
    /// When validation finished, for the send-to-ack latency metric.
    pub queued_at: Instant,
}

/// Where the ack goes.
pub enum Origin {
    /// A WebSocket: the ack frame goes to that socket, other sockets get `receive_message`.
    Socket(SocketId),
    /// A REST call waiting for its answer.
    Request(oneshot::Sender<Result<Sent>>),
}

/// A stored message; `created` is false when it was a resend of one stored earlier.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    pub created: bool,
}

enum Command {
    Send(SendRequest),
    Register(SocketRegistration),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Pipeline {
    queue: mpsc::Sender<Command>,
}

impl Pipeline {
    pub async fn start(store: Store, hub: Arc<Hub>) -> Result<Self> {
        let last_committed = messages::latest_message_id(&store.read).await?;
        let (queue, commands) = mpsc::channel(QUEUE_DEPTH);
        let (deliveries, committed) = mpsc::channel(DELIVERY_DEPTH);
        tokio::spawn(Deliverer::new(hub, last_committed).run(committed));
        let writer = Writer { store, deliveries, conversations: HashMap::new(), posted: HashSet::new() };
        tokio::spawn(writer.run(commands));
        Ok(Self { queue })
    }

    pub async fn send(&self, request: SendRequest) -> Result<()> {
        self.queue.send(Command::Send(request)).await.map_err(|_| Error::Unavailable)
    }

    /// Adds a socket to the hub between two commits; returns the last id committed before it.
    pub async fn register(
        &self,
        socket: SocketHandle,
        username: String,
        circle: PresenceCircle,
    ) -> Result<(MessageId, Registration)> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Register(SocketRegistration { socket, username, circle, reply }))
            .await
            .map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)
    }

    /// Waits until everything queued so far is committed (or failed) and delivered.
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.queue.send(Command::Flush(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

struct Writer {
    store: Store,
    deliveries: mpsc::Sender<Delivery>,
    /// Direct conversations by (lower user id, higher user id); only ever holds committed rows.
    conversations: HashMap<(UserId, UserId), ConversationId>,
    /// Members known to have written in a conversation, so only a first message marks it.
    posted: HashSet<(ConversationId, UserId)>,
}

/// Bound on [`Writer::posted`]; past it the set starts over (a miss costs one no-op UPDATE).
const POSTED_CACHE: usize = 1 << 20;

/// What became of one send once its batch was committed.
pub(super) enum Outcome {
    /// `first_post`: the sender had not written in this conversation before, so the recipient may
    /// now see their presence.
    Created { message: Message, first_post: bool },
    Resent(Message),
}

impl Writer {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::new();
        while let Some(command) = commands.recv().await {
            let mut next = Some(command);
            while let Some(command) = next.take() {
                match command {
                    Command::Send(request) => {
                        batch.push(request);
                        if batch.len() >= MAX_BATCH {
                            self.commit(std::mem::take(&mut batch)).await;
                        }
                    }
                    // Both go through the delivery task after the batches before them.
                    Command::Register(registration) => {
                        self.commit(std::mem::take(&mut batch)).await;
                        self.deliver(Delivery::Register(registration)).await;
                    }
                    Command::Flush(reply) => {
                        self.commit(std::mem::take(&mut batch)).await;
                        self.deliver(Delivery::Flush(reply)).await;
                    }
                }
                next = commands.try_recv().ok();
            }
            self.commit(std::mem::take(&mut batch)).await;
        }
    }

    async fn deliver(&self, delivery: Delivery) {
        // The delivery task lives as long as the writer; if it is gone, so is the server.
        let _ = self.deliveries.send(delivery).await;
    }

    async fn commit(&mut self, batch: Vec<SendRequest>) {
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let settled = match self.store_batch(&batch).await {
            Ok((outcomes, new_conversations, posted)) => {
                metrics::histogram!(monitoring::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::histogram!(monitoring::COMMIT_BATCH_SIZE).record(batch.len() as f64);
                self.remember(new_conversations, posted);
                batch.into_iter().zip(outcomes).collect()
            }
            Err(error) if batch.len() > 1 => {
                // One bad message (say, to a user deleted a moment ago) must not sink the others:
                // retry them one by one so only the culprit fails.
                tracing::warn!(error = ?error, batch = batch.len(), "batch failed; committing its messages one by one");
                let mut settled = Vec::with_capacity(batch.len());
                for request in batch {
                    settled.push(self.commit_one(request).await);
                }
                settled
            }
            Err(error) => {
                tracing::error!(error = ?error, "message was not committed");
                batch.into_iter().map(|request| (request, Err(Error::Unavailable))).collect()
            }
        };
        self.deliver(Delivery::Committed(settled)).await;
    }

    async fn commit_one(&mut self, request: SendRequest) -> (SendRequest, Result<Outcome>) {
        match self.store_batch(std::slice::from_ref(&request)).await {
            Ok((mut outcomes, new_conversations, posted)) => {
                self.remember(new_conversations, posted);
                (request, outcomes.remove(0))
            }
            Err(error) => {
                tracing::error!(error = ?error, "message was not committed");
                (request, Err(Error::Unavailable))
            }
        }
    }

    /// What a committed transaction made true; only committed facts go into the caches.
    fn remember(&mut self, conversations: Vec<((UserId, UserId), ConversationId)>, posted: Vec<(ConversationId, UserId)>) {
        self.conversations.extend(conversations);
        if self.posted.len() + posted.len() > POSTED_CACHE {
            self.posted.clear();
        }
        self.posted.extend(posted);
    }

    /// One transaction for the whole batch. A per-message problem (a reused `client_id`) fails
    /// only that message; a database failure fails them all and commits nothing.
    #[allow(clippy::type_complexity)]
    async fn store_batch(
        &mut self,
        batch: &[SendRequest],
    ) -> Result<(Vec<Result<Outcome>>, Vec<((UserId, UserId), ConversationId)>, Vec<(ConversationId, UserId)>)> {
        let txn = self.store.write.begin().await?;
        let mut new_conversations: Vec<((UserId, UserId), ConversationId)> = Vec::new();
        // First the conversation of each message, creating those that do not exist yet.
        let mut placed: Vec<Result<(ConversationId, bool)>> = Vec::with_capacity(batch.len());
        for request in batch {
            let pair = (request.sender.min(request.recipient), request.sender.max(request.recipient));
            let known = self
                .conversations
                .get(&pair)
                .or_else(|| new_conversations.iter().find(|(p, _)| *p == pair).map(|(_, id)| id))
                .copied();
            let conversation = match known {
                Some(id) => Ok((id, false)),
                None => match messages::find_direct_conversation(&txn, pair.0, pair.1).await? {
                    Some(id) => Ok((id, false)),
                    // A key already used elsewhere cannot belong to a conversation that does not
                    // exist yet: refuse before creating an empty one.
                    None if messages::find_by_client_id(&txn, request.sender, &request.client_id).await?.is_some() => {
                        Err(Error::ClientIdConflict)
                    }
                    None => Ok((messages::create_direct_conversation(&txn, pair.0, pair.1, now_millis()).await?, true)),
                },
            };
            if let (None, Ok((id, _))) = (known, &conversation) {
                new_conversations.push((pair, *id));
            }
            placed.push(conversation);
        }
        // Then the new messages, numbered here: this task is the only writer, so ids come out
        // gap-free in commit order. A key already stored (or seen earlier in this batch) is a resend.
        let keys: Vec<(UserId, &str)> = batch
            .iter()
            .zip(&placed)
            .filter(|(_, placed)| placed.is_ok())
            .map(|(request, _)| (request.sender, request.client_id.as_str()))
            .collect();
        let stored = messages::stored_keys(&txn, &keys).await?;
        let mut last_id = messages::last_assigned_message_id(&txn).await?;
        let created_at = now_millis();
        let mut fresh_keys = HashSet::with_capacity(keys.len());
        let mut rows = Vec::with_capacity(keys.len());
        let ids: Vec<Option<MessageId>> = batch
            .iter()
            .zip(&placed)
            .map(|(request, placed)| {
                let (conversation, _) = placed.as_ref().ok()?;
                let key = (request.sender, request.client_id.as_str());
                let resend = !stored.is_empty() && stored.contains(&(key.0, key.1.to_owned()));
                if resend || !fresh_keys.insert(key) {
                    return None;
                }
                last_id += 1;
                rows.push(NewMessage {
                    id: last_id,
                    conversation: *conversation,
                    sender: request.sender,
                    client_id: &request.client_id,
                    body: &request.body,
                    created_at,
                });
                Some(last_id)
            })
            .collect();
        messages::insert_messages(&txn, &rows).await?;
        let mut posted = Vec::new();
        let mut first_posts = HashSet::new();
        for row in &rows {
            let member = (row.conversation, row.sender);
            if !self.posted.contains(&member) && !posted.contains(&member) {
                posted.push(member);
                if messages::mark_posted(&txn, row.conversation, row.sender).await? {
                    first_posts.insert(row.id);
                }
            }
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for ((request, placed), id) in batch.iter().zip(placed).zip(ids) {
            let outcome = match (placed, id) {
                (Err(error), _) => Err(error),
                (Ok(_), Some(id)) => Ok(Outcome::Created {
                    message: Message {
                        id,
                        from: request.sender_name.clone(),
                        to: request.recipient_name.clone(),
                        body: request.body.clone(),
                        created_at,
                        client_id: request.client_id.clone(),
                    },
                    first_post: first_posts.contains(&id),
                }),
                (Ok((conversation, _)), None) => {
                    match messages::find_by_client_id(&txn, request.sender, &request.client_id).await? {
                        Some((stored_in, message)) if stored_in == conversation => Ok(Outcome::Resent(message)),
                        _ => Err(Error::ClientIdConflict),
                    }
                }
            };
            outcomes.push(outcome);
        }
        txn.commit().await?;
        Ok((outcomes, new_conversations, posted))
    }
}
