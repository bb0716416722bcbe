//! The one write path for messages: validate (in `chat`), then here commit, then ack and deliver.
//!
//! A single task owns message writes. It takes whatever sends are queued, commits them in one
//! SQLite transaction, and only after the commit acks each sender and delivers to every other
//! socket of both members. Because the task also registers new sockets between batches, each
//! socket knows the exact id from which it receives messages live (`registered_at`): everything
//! up to that id comes from `sync`, everything after it arrives as `receive_message`, so a
//! reconnecting client gets each message exactly once.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use sea_orm::TransactionTrait;
use tokio::sync::{mpsc, oneshot};

use super::{ConversationId, Message, MessageId, UserId, now_millis};
use crate::{
    error::{Error, Result},
    monitoring,
    realtime::{
        hub::{Hub, Registration, SocketHandle, SocketId},
        protocol::ServerFrame,
    },
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
    Register {
        socket: SocketHandle,
        username: String,
        contacts: HashSet<UserId>,
        reply: oneshot::Sender<(MessageId, Registration)>,
    },
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
        let writer = Writer { store, hub, last_committed, conversations: HashMap::new() };
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
        contacts: HashSet<UserId>,
    ) -> Result<(MessageId, Registration)> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Register { socket, username, contacts, reply })
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
    hub: Arc<Hub>,
    last_committed: MessageId,
    /// Direct conversations by (lower user id, higher user id); only ever holds committed rows.
    conversations: HashMap<(UserId, UserId), ConversationId>,
}

enum Outcome {
    Created { message: Message, new_conversation: bool },
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
                    Command::Register { socket, username, contacts, reply } => {
                        self.commit(std::mem::take(&mut batch)).await;
                        let registration = self.hub.add_socket(socket, &username, contacts);
                        let _ = reply.send((self.last_committed, registration));
                    }
                    Command::Flush(reply) => {
                        self.commit(std::mem::take(&mut batch)).await;
                        let _ = reply.send(());
                    }
                }
                next = commands.try_recv().ok();
            }
            self.commit(std::mem::take(&mut batch)).await;
        }
    }

    async fn commit(&mut self, batch: Vec<SendRequest>) {
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        match self.store_batch(&batch).await {
            Ok((outcomes, new_conversations)) => {
                metrics::histogram!(monitoring::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::histogram!(monitoring::COMMIT_BATCH_SIZE).record(batch.len() as f64);
                self.conversations.extend(new_conversations);
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    self.acknowledge_and_deliver(request, outcome);
                }
            }
            Err(error) if batch.len() > 1 => {
                // One bad message (say, to a user deleted a moment ago) must not sink the others:
                // retry them one by one so only the culprit fails.
                tracing::warn!(error = ?error, batch = batch.len(), "batch failed; committing its messages one by one");
                for request in batch {
                    self.commit_one(request).await;
                }
            }
            Err(error) => {
                tracing::error!(error = ?error, "message was not committed");
                for request in batch {
                    self.reject(request, Error::Unavailable);
                }
            }
        }
    }

    async fn commit_one(&mut self, request: SendRequest) {
        match self.store_batch(std::slice::from_ref(&request)).await {
            Ok((mut outcomes, new_conversations)) => {
                self.conversations.extend(new_conversations);
                self.acknowledge_and_deliver(request, outcomes.remove(0));
            }
            Err(error) => {
                tracing::error!(error = ?error, "message was not committed");
                self.reject(request, Error::Unavailable);
            }
        }
    }

    /// One transaction for the whole batch. A per-message problem (a reused `client_id`) fails
    /// only that message; a database failure fails them all and commits nothing.
    async fn store_batch(
        &mut self,
        batch: &[SendRequest],
    ) -> Result<(Vec<Result<Outcome>>, Vec<((UserId, UserId), ConversationId)>)> {
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
        // Then every message in as few statements as possible.
        let created_at = now_millis();
        let rows: Vec<NewMessage> = batch
            .iter()
            .zip(&placed)
            .filter_map(|(request, placed)| {
                let (conversation, _) = placed.as_ref().ok()?;
                Some(NewMessage {
                    conversation: *conversation,
                    sender: request.sender,
                    client_id: &request.client_id,
                    body: &request.body,
                    created_at,
                })
            })
            .collect();
        // SQLite uses up an AUTOINCREMENT id even for a row that ON CONFLICT then skips, so a
        // batch holding a resend would leave a hole in the ids. Then undo it and store only the
        // new rows (each key once): ids stay gap-free in commit order.
        let attempt = txn.begin().await?;
        let mut inserted = messages::insert_messages(&attempt, &rows).await?;
        if inserted.len() < rows.len() {
            attempt.rollback().await?;
            let mut seen = HashSet::new();
            let fresh: Vec<NewMessage> = rows
                .into_iter()
                .filter(|row| inserted.contains_key(&(row.sender, row.client_id.to_owned())) && seen.insert((row.sender, row.client_id)))
                .collect();
            inserted = messages::insert_messages(&txn, &fresh).await?;
        } else {
            attempt.commit().await?;
        }
        // A key missing from `inserted` was stored before (or earlier in this batch): a resend.
        let mut outcomes = Vec::with_capacity(batch.len());
        for (request, placed) in batch.iter().zip(placed) {
            let outcome = match placed {
                Err(error) => Err(error),
                Ok((conversation, new_conversation)) => {
                    match inserted.remove(&(request.sender, request.client_id.clone())) {
                        Some(id) => Ok(Outcome::Created {
                            message: Message {
                                id,
                                from: request.sender_name.clone(),
                                to: request.recipient_name.clone(),
                                body: request.body.clone(),
                                created_at,
                                client_id: request.client_id.clone(),
                            },
                            new_conversation,
                        }),
                        None => match messages::find_by_client_id(&txn, request.sender, &request.client_id).await? {
                            Some((stored_in, message)) if stored_in == conversation => Ok(Outcome::Resent(message)),
                            _ => Err(Error::ClientIdConflict),
                        },
                    }
                }
            };
            outcomes.push(outcome);
        }
        txn.commit().await?;
        Ok((outcomes, new_conversations))
    }

    fn acknowledge_and_deliver(&mut self, request: SendRequest, outcome: Result<Outcome>) {
        let (message, created, new_conversation) = match outcome {
            Ok(Outcome::Created { message, new_conversation }) => (message, true, new_conversation),
            Ok(Outcome::Resent(message)) => (message, false, false),
            Err(error) => return self.reject(request, error),
        };
        let origin_socket = match request.origin {
            Origin::Socket(socket) => {
                let ack = ServerFrame::Ack { client_id: &message.client_id, message: &message }.to_text();
                self.hub.send_to_socket(request.sender, socket, &ack);
                Some(socket)
            }
            Origin::Request(reply) => {
                let _ = reply.send(Ok(Sent { message: message.clone(), created }));
                None
            }
        };
        metrics::histogram!(monitoring::SEND_TO_ACK_SECONDS).record(request.queued_at.elapsed().as_secs_f64());
        if !created {
            return; // a resend: everyone already has it
        }
        metrics::counter!(monitoring::MESSAGES_STORED).increment(1);
        self.last_committed = self.last_committed.max(message.id);
        if new_conversation {
            self.hub.link_contacts(request.sender, request.recipient);
        }
        let frame = ServerFrame::ReceiveMessage { message: &message }.to_text();
        let delivered = self.hub.send_to_user(request.recipient, &frame, None)
            + self.hub.send_to_user(request.sender, &frame, origin_socket);
        metrics::counter!(monitoring::MESSAGES_DELIVERED).increment(delivered as u64);
    }

    fn reject(&self, request: SendRequest, error: Error) {
        match request.origin {
            Origin::Socket(socket) => {
                let frame = ServerFrame::Error {
                    code: error.code(),
                    message: &error.to_string(),
                    client_id: Some(&request.client_id),
                }
                .to_text();
                self.hub.send_to_socket(request.sender, socket, &frame);
            }
            Origin::Request(reply) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}
