//! The one write path: validate (in `chat` and `conversations`), then here commit, then deliver
//! (in `delivery`).
//!
//! A single task owns every write to the stream. It takes whatever sends are queued and commits
//! them in one transaction; it applies each change to a conversation (create, rename, members…)
//! in a transaction of its own, deciding it with the state it reads there. It numbers messages
//! and events itself, from one counter, so ids rise in commit order; and only after a commit does
//! it hand the result to the delivery task, which answers the senders and publishes to the
//! fan-out while the next batch commits. Because one task decides who is in a conversation and
//! what is sent to it, a message is delivered to exactly the members it was committed for.
//!
//! Another process (the command line, or another node of a cluster) may also commit. Every
//! transaction takes the stream's lock first (`messages::lock_stream`), so ids still rise in
//! commit order; the writer forgets what it cached of conversations another writer changed, and
//! the delivery task publishes the other writers' entries in their place in the stream.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use sea_orm::DatabaseTransaction;
use tokio::sync::{mpsc, oneshot};

use super::{
    Change, ConversationId, Kind, MemberRole, Message, MessageId, Role, UserId, Visibility,
    delivery::{self, Cluster, Delivery, Span},
    fanout::{Commit, Entry, Fanout},
    now_millis,
    rules::{self, Actor, Standing},
    writes::{Audience, ChangeRequest, Operation, Outcome, SendRequest, Target},
};
use crate::{
    error::{Error, Result},
    monitoring,
    store::{
        Store,
        conversations::{self, ConversationState},
        messages::{self, EVENT, NewMessage, TEXT},
    },
};

/// The most sends committed in one transaction. Big batches matter: every commit rewrites the
/// index pages it touched, so fewer, larger commits write far less (docs/benchmarks.md).
const MAX_BATCH: usize = 8192;
/// Sends waiting for the writer before senders have to wait too.
const QUEUE_DEPTH: usize = 32768;
/// Committed batches waiting for the delivery task before the writer waits too.
const DELIVERY_DEPTH: usize = 4;
/// Bound on each of the writer's caches; past it one starts over (a miss costs a query).
const CACHE_BOUND: usize = 1 << 20;

enum Command {
    Send(SendRequest),
    Change(ChangeRequest),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Pipeline {
    queue: mpsc::Sender<Command>,
}

impl Pipeline {
    pub async fn start(store: Store, fanout: Arc<dyn Fanout>, cluster: Option<Cluster>) -> Result<Self> {
        let high_water = messages::last_assigned_message_id(&store.read).await?;
        fanout.publish(Commit { entries: Vec::new(), up_to: high_water });
        let (queue, commands) = mpsc::channel(QUEUE_DEPTH);
        let (deliveries, committed) = mpsc::channel(DELIVERY_DEPTH);
        tokio::spawn(delivery::run(store.clone(), fanout, cluster, high_water, committed));
        let writer = Writer {
            store,
            deliveries,
            direct: HashMap::new(),
            audiences: HashMap::new(),
            posted: HashSet::new(),
            high_water,
        };
        tokio::spawn(writer.run(commands));
        Ok(Self { queue })
    }

    pub async fn send(&self, request: SendRequest) -> Result<()> {
        self.queue.send(Command::Send(request)).await.map_err(|_| Error::Unavailable)
    }

    /// Applies a change to a conversation; returns its id once the change is committed and
    /// published.
    pub async fn change(&self, actor: Actor, operation: Operation) -> Result<ConversationId> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Command::Change(ChangeRequest { actor, operation, reply })).await.map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
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
    direct: HashMap<(UserId, UserId), ConversationId>,
    /// Who is in each conversation, as last committed.
    audiences: HashMap<ConversationId, Arc<Audience>>,
    /// Members known to have written in a conversation, so only a first message marks it.
    posted: HashSet<(ConversationId, UserId)>,
    /// The newest stream id this writer knows of: ids above it were given out by another writer.
    high_water: MessageId,
}

/// A batch as committed: each send with its outcome, and what the caches learnt.
struct StoredBatch {
    outcomes: Vec<Result<Outcome>>,
    direct: Vec<((UserId, UserId), ConversationId)>,
    audiences: Vec<(ConversationId, Arc<Audience>)>,
    posted: Vec<(ConversationId, UserId)>,
    span: Span,
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
                    Command::Change(change) => {
                        self.commit(std::mem::take(&mut batch)).await;
                        self.apply(change).await;
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
        match self.store_batch(&batch).await {
            Ok(stored) => {
                metrics::histogram!(monitoring::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::histogram!(monitoring::COMMIT_BATCH_SIZE).record(batch.len() as f64);
                let span = stored.span;
                let outcomes = self.remember(stored);
                self.deliver(Delivery::Sends { settled: batch.into_iter().zip(outcomes).collect(), span }).await;
            }
            Err(error) if batch.len() > 1 => {
                // One bad message (say, to a user deleted a moment ago) must not sink the others:
                // retry them one by one so only the culprit fails. Each is a commit of its own,
                // delivered on its own: another writer may commit between two of them.
                tracing::warn!(error = ?error, batch = batch.len(), "batch failed; committing its messages one by one");
                for request in batch {
                    self.commit_one(request).await;
                }
            }
            Err(error) => {
                tracing::error!(error = ?error, "message was not committed");
                let settled = batch.into_iter().map(|request| (request, Err(Error::Unavailable))).collect();
                self.deliver(Delivery::Sends { settled, span: Span::default() }).await;
            }
        }
    }

    async fn commit_one(&mut self, request: SendRequest) {
        let (outcome, span) = match self.store_batch(std::slice::from_ref(&request)).await {
            Ok(stored) => {
                let span = stored.span;
                (self.remember(stored).remove(0), span)
            }
            Err(error) => {
                tracing::error!(error = ?error, "message was not committed");
                (Err(Error::Unavailable), Span::default())
            }
        };
        self.deliver(Delivery::Sends { settled: vec![(request, outcome)], span }).await;
    }

    /// Takes in what a committed batch made true; returns the batch's outcomes.
    fn remember(&mut self, stored: StoredBatch) -> Vec<Result<Outcome>> {
        bounded_extend(&mut self.direct, stored.direct);
        bounded_extend(&mut self.audiences, stored.audiences);
        if self.posted.len() + stored.posted.len() > CACHE_BOUND {
            self.posted.clear();
        }
        self.posted.extend(stored.posted);
        self.high_water = self.high_water.max(stored.span.up_to);
        stored.outcomes
    }

    /// Takes the stream's lock for `txn`; what another writer committed since this one last
    /// looked may have changed conversations it cached, so those are forgotten. Returns the last
    /// id given out.
    async fn lock_stream(&mut self, txn: &DatabaseTransaction) -> Result<MessageId> {
        let last = messages::lock_stream(txn).await?;
        if last > self.high_water {
            for conversation in messages::conversations_changed_between(txn, self.high_water, last).await? {
                self.audiences.remove(&conversation);
            }
            self.high_water = last;
        }
        Ok(last)
    }

    /// The conversation of a send and who it goes to, creating a direct conversation on its first
    /// message. `Ok(Err(..))` is a refusal of this send only.
    async fn place(
        &self,
        txn: &DatabaseTransaction,
        request: &SendRequest,
        created: &[((UserId, UserId), ConversationId, Arc<Audience>)],
    ) -> Result<Result<(ConversationId, Arc<Audience>, bool)>> {
        match &request.target {
            Target::Direct { recipient, recipient_name } => {
                let pair = (request.sender.min(*recipient), request.sender.max(*recipient));
                if let Some((_, id, audience)) = created.iter().find(|(p, ..)| *p == pair) {
                    return Ok(Ok((*id, audience.clone(), false)));
                }
                let existing = match self.direct.get(&pair) {
                    Some(id) => Some(*id),
                    None => messages::find_direct_conversation(txn, pair.0, pair.1).await?,
                };
                let audience = Arc::new(Audience::direct(
                    (request.sender, request.sender_name.clone()),
                    (*recipient, recipient_name.clone()),
                ));
                match existing {
                    Some(id) => Ok(Ok((id, self.audiences.get(&id).cloned().unwrap_or(audience), false))),
                    // A key already used elsewhere cannot belong to a conversation that does not
                    // exist yet: refuse before creating an empty one.
                    None if messages::find_by_client_id(txn, request.sender, &request.client_id).await?.is_some() => {
                        Ok(Err(Error::ClientIdConflict))
                    }
                    None => {
                        let id = messages::create_direct_conversation(txn, pair.0, pair.1, now_millis()).await?;
                        Ok(Ok((id, audience, true)))
                    }
                }
            }
            Target::Conversation(id) => {
                let audience = match self.audiences.get(id) {
                    Some(audience) => audience.clone(),
                    None => match conversations::load_audience(txn, *id).await? {
                        Some((kind, archived, members)) => Arc::new(audience_of(kind, archived, members)),
                        None => return Ok(Err(Error::ConversationNotFound)),
                    },
                };
                if !audience.is_member(request.sender) {
                    let known = match conversations::kind_and_visibility(txn, *id).await? {
                        Some((Kind::Room, Some(Visibility::Public))) => true,
                        Some((Kind::Room, _)) => request.sender_is_admin,
                        _ => false,
                    };
                    return Ok(Err(if known { Error::Forbidden("join the room to write in it") } else { Error::ConversationNotFound }));
                }
                if audience.archived {
                    return Ok(Err(Error::Archived));
                }
                Ok(Ok((*id, audience, false)))
            }
        }
    }

    /// One transaction for the whole batch. A per-message problem (a reused `client_id`, a
    /// conversation the sender is not in) fails only that message; a database failure fails them
    /// all and commits nothing.
    async fn store_batch(&mut self, batch: &[SendRequest]) -> Result<StoredBatch> {
        let txn = self.store.begin_write().await?;
        let after = self.lock_stream(&txn).await?;
        let mut last_id = after;
        let mut created: Vec<((UserId, UserId), ConversationId, Arc<Audience>)> = Vec::new();
        let mut placed: Vec<Result<(ConversationId, Arc<Audience>)>> = Vec::with_capacity(batch.len());
        for request in batch {
            let place = self.place(&txn, request, &created).await?;
            if let (Target::Direct { recipient, .. }, Ok((id, audience, true))) = (&request.target, &place) {
                created.push(((request.sender.min(*recipient), request.sender.max(*recipient)), *id, audience.clone()));
            }
            placed.push(place.map(|(id, audience, _)| (id, audience)));
        }
        // Then the new messages, numbered here: this task is the only writer, so ids come out in
        // commit order. A key already stored (or seen earlier in this batch) is a resend.
        let keys: Vec<(UserId, &str)> = batch
            .iter()
            .zip(&placed)
            .filter(|(_, placed)| placed.is_ok())
            .map(|(request, _)| (request.sender, request.client_id.as_str()))
            .collect();
        let stored = messages::stored_keys(&txn, &keys).await?;
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
                last_id = MessageId(last_id.0 + 1);
                rows.push(NewMessage {
                    id: last_id,
                    conversation: *conversation,
                    sender: request.sender,
                    client_id: &request.client_id,
                    body: &request.body,
                    created_at,
                    kind: TEXT,
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
        let mut audiences = Vec::new();
        for ((request, placed), id) in batch.iter().zip(placed).zip(ids) {
            let outcome = match (placed, id) {
                (Err(error), _) => Err(error),
                (Ok((conversation, audience)), Some(id)) => {
                    audiences.push((conversation, audience.clone()));
                    Ok(Outcome::Created {
                        message: Message {
                            id,
                            conversation_id: conversation,
                            from: request.sender_name.clone(),
                            to: audience.peer_of(request.sender).map(str::to_owned),
                            body: request.body.clone(),
                            created_at,
                            client_id: request.client_id.clone(),
                            event: None,
                        },
                        audience,
                        first_post: first_posts.contains(&id),
                    })
                }
                (Ok((conversation, _)), None) => match messages::find_by_client_id(&txn, request.sender, &request.client_id).await? {
                    Some(message) if message.conversation_id == conversation => Ok(Outcome::Resent(message)),
                    _ => Err(Error::ClientIdConflict),
                },
            };
            outcomes.push(outcome);
        }
        if last_id > after {
            messages::advance_stream(&txn, last_id).await?;
        }
        txn.commit().await?;
        let direct = created.into_iter().map(|(pair, id, _)| (pair, id)).collect();
        Ok(StoredBatch { outcomes, direct, audiences, posted, span: Span { after, up_to: last_id } })
    }

    /// Applies one change in a transaction of its own, then hands its event to the delivery task,
    /// which answers once it is published.
    async fn apply(&mut self, request: ChangeRequest) {
        let ChangeRequest { actor, operation, reply } = request;
        let target = operation.conversation();
        match self.apply_in_transaction(&actor, operation).await {
            Ok(applied) => {
                self.audiences.remove(&applied.conversation);
                if let Some(id) = target {
                    self.audiences.remove(&id);
                }
                self.high_water = self.high_water.max(applied.span.up_to);
                let entries = applied.entry.into_iter().collect();
                let span = applied.span;
                self.deliver(Delivery::Entries { entries, span, reply: Some((reply, Ok(applied.conversation))) }).await;
            }
            Err(error) => {
                if let Error::Internal(cause) = &error {
                    tracing::error!(error = ?cause, "change was not committed");
                }
                let _ = reply.send(Err(error));
            }
        }
    }

    async fn apply_in_transaction(&mut self, actor: &Actor, operation: Operation) -> Result<Applied> {
        let txn = self.store.begin_write().await?;
        let last = self.lock_stream(&txn).await?;
        let event_id = MessageId(last.0 + 1);
        let now = now_millis();
        let Decided { conversation, change, sender, added } = match decide(&txn, actor, operation, event_id, now).await? {
            Decision::Changed(decided) => decided,
            Decision::Unchanged(conversation) => {
                txn.rollback().await?;
                return Ok(Applied { conversation, entry: None, span: Span { after: last, up_to: last } });
            }
        };
        let body = serde_json::to_string(&change).map_err(Error::internal)?;
        let client_id = format!("{}{event_id}", crate::domain::types::EVENT_CLIENT_ID_PREFIX);
        let row = NewMessage { id: event_id, conversation, sender, client_id: &client_id, body: &body, created_at: now, kind: EVENT };
        messages::insert_messages(&txn, std::slice::from_ref(&row)).await?;
        if matches!(change, Change::ConversationRemoved { .. }) {
            conversations::remove(&txn, conversation, event_id).await?;
        }
        let watchers = conversations::audience_at(&txn, conversation, event_id).await?;
        let from = conversations::username_of(&txn, sender).await?;
        messages::advance_stream(&txn, event_id).await?;
        txn.commit().await?;
        let audience: Arc<[UserId]> = watchers.iter().map(|(id, _)| *id).collect();
        let message = Message {
            id: event_id,
            conversation_id: conversation,
            from,
            to: None,
            body: change.describe(),
            created_at: now,
            client_id,
            event: Some(change),
        };
        let entry = Entry::Event { message: Arc::new(message), audience, added };
        Ok(Applied { conversation, entry: Some(entry), span: Span { after: last, up_to: event_id } })
    }
}

/// A change as committed.
struct Applied {
    conversation: ConversationId,
    entry: Option<Entry>,
    span: Span,
}

/// A change decided and written (all but its event row): which conversation, what happened, who
/// the event is from, and whom it added.
struct Decided {
    conversation: ConversationId,
    change: Change,
    sender: UserId,
    added: Vec<UserId>,
}

/// What a change comes to.
enum Decision {
    Changed(Decided),
    /// Nothing to change (already a member, the same name…): nothing is written.
    Unchanged(ConversationId),
}

/// Checks `operation` against the rules with the state read in `txn`, and writes it (members,
/// names, roles) with `event_id` as the id of the event that will record it.
async fn decide(txn: &DatabaseTransaction, actor: &Actor, operation: Operation, event_id: MessageId, now: i64) -> Result<Decision> {
    let by = actor.name().map(str::to_owned);
    match operation {
        Operation::Create { kind, name, topic, visibility, members, owner } => {
            let creator = match (actor, owner) {
                (Actor::User { id, username, .. }, _) => (*id, username.clone()),
                (Actor::Administrator, Some(owner)) => resolve(txn, std::slice::from_ref(&owner)).await?.remove(0),
                (Actor::Administrator, None) => return Err(Error::InvalidParameter("a room made from the command line needs an owner".into())),
            };
            let mut names: Vec<_> = members.into_iter().filter(|n| n.as_str() != creator.1).collect();
            names.dedup_by(|a, b| a == b);
            let others = resolve(txn, &names).await?;
            let total = others.len() + 1;
            let (creator_role, visibility) = match kind {
                Kind::Direct => return Err(Error::InvalidParameter("a direct conversation starts with a first message".into())),
                Kind::Group => {
                    if topic.is_some() || visibility.is_some() {
                        return Err(Error::InvalidParameter("a group has no topic and no visibility".into()));
                    }
                    if total < rules::GROUP_MIN_MEMBERS {
                        return Err(Error::TooFewMembers);
                    }
                    if total > rules::GROUP_MAX_MEMBERS {
                        return Err(Error::TooManyMembers(rules::GROUP_MAX_MEMBERS));
                    }
                    (Role::Member, None)
                }
                Kind::Room => {
                    let Some(name) = &name else { return Err(Error::InvalidName("a room needs a name")) };
                    if conversations::room_name_taken(txn, name.as_str()).await? {
                        return Err(Error::NameTaken);
                    }
                    if total > rules::ROOM_MAX_MEMBERS {
                        return Err(Error::TooManyMembers(rules::ROOM_MAX_MEMBERS));
                    }
                    (Role::Owner, Some(visibility.unwrap_or(Visibility::Public)))
                }
            };
            let topic = topic.map(|t| t.into_inner()).filter(|t| !t.is_empty());
            let name = name.map(|n| n.as_str().to_owned());
            let id = conversations::create(txn, kind, name.as_deref(), topic.as_deref(), visibility, now).await?;
            let mut listed = vec![MemberRole { username: creator.1.clone(), role: creator_role }];
            conversations::add_member(txn, id, creator.0, creator_role, event_id, now).await?;
            for (user, username) in &others {
                conversations::add_member(txn, id, *user, Role::Member, event_id, now).await?;
                listed.push(MemberRole { username: username.clone(), role: Role::Member });
            }
            let added = std::iter::once(creator.0).chain(others.iter().map(|(id, _)| *id)).collect();
            let change = Change::ConversationCreated { by, kind, name, topic, visibility, members: listed };
            Ok(Decision::Changed(Decided { conversation: id, change, sender: creator.0, added }))
        }
        Operation::Update { id, name, topic, archived } => {
            let state = load(txn, id).await?;
            let standing = rules::standing(actor, &state)?;
            rules::may_update(standing, &state, name.is_some(), topic.is_some(), archived)?;
            let name = name.filter(|n| state.name.as_deref() != Some(n.as_str()));
            let topic = topic.map(|t| t.into_inner()).filter(|t| state.topic.as_deref().unwrap_or_default() != t);
            let archived = archived.filter(|a| *a != state.archived);
            if name.is_none() && topic.is_none() && archived.is_none() {
                return Ok(Decision::Unchanged(id));
            }
            if let Some(name) = &name {
                if state.kind == Kind::Room && conversations::find_room_by_name(txn, name.as_str()).await?.is_some_and(|other| other != id) {
                    return Err(Error::NameTaken);
                }
                conversations::rename(txn, id, state.kind, name.as_str()).await?;
            }
            if let Some(topic) = &topic {
                conversations::set_topic(txn, id, topic).await?;
            }
            if let Some(archived) = archived {
                conversations::set_archived(txn, id, archived).await?;
            }
            let sender = event_sender(actor, &state, None)?;
            let change = Change::ConversationUpdated { by, name: name.map(|n| n.as_str().to_owned()), topic, archived };
            Ok(Decision::Changed(Decided { conversation: id, change, sender, added: Vec::new() }))
        }
        Operation::AddMembers { id, usernames, role } => {
            let state = load(txn, id).await?;
            let standing = rules::standing(actor, &state)?;
            let people = resolve(txn, &usernames).await?;
            let new: Vec<_> = people.into_iter().filter(|(user, _)| state.member(*user).is_none()).collect();
            if new.is_empty() {
                if matches!(standing, Standing::Outsider) {
                    return Err(Error::Forbidden("join the room to add people to it"));
                }
                return Ok(Decision::Unchanged(id));
            }
            rules::may_add(standing, &state, role, new.len())?;
            for (user, _) in &new {
                conversations::add_member(txn, id, *user, role, event_id, now).await?;
            }
            let sender = event_sender(actor, &state, Some(new[0].0))?;
            let members = new.iter().map(|(_, username)| MemberRole { username: username.clone(), role }).collect();
            let added = new.iter().map(|(user, _)| *user).collect();
            Ok(Decision::Changed(Decided { conversation: id, change: Change::MemberAdded { by, members }, sender, added }))
        }
        Operation::RemoveMember { id, username } => {
            let state = load(txn, id).await?;
            let standing = rules::standing(actor, &state)?;
            let Some(target) = state.members.iter().find(|m| m.username == username.as_str()).cloned() else {
                if resolve(txn, std::slice::from_ref(&username)).await.is_err() {
                    return Err(Error::UserNotFound);
                }
                return Ok(Decision::Unchanged(id));
            };
            let leaving = actor.user() == Some(target.id);
            rules::may_remove(standing, &state, target.role, leaving)?;
            conversations::remove_member(txn, id, target.id, event_id).await?;
            let sender = event_sender(actor, &state, Some(target.id))?;
            let change = Change::MemberRemoved { by, username: target.username };
            Ok(Decision::Changed(Decided { conversation: id, change, sender, added: Vec::new() }))
        }
        Operation::SetRole { id, username, role } => {
            let state = load(txn, id).await?;
            let standing = rules::standing(actor, &state)?;
            let Some(target) = state.members.iter().find(|m| m.username == username.as_str()).cloned() else {
                return Err(Error::NotAMember);
            };
            rules::may_set_role(standing, &state, target.role, role)?;
            if target.role == role {
                return Ok(Decision::Unchanged(id));
            }
            conversations::set_role(txn, id, target.id, role).await?;
            let sender = event_sender(actor, &state, Some(target.id))?;
            let change = Change::RoleChanged { by, username: target.username, role };
            Ok(Decision::Changed(Decided { conversation: id, change, sender, added: Vec::new() }))
        }
        Operation::Join { id } => {
            let state = load(txn, id).await?;
            let standing = rules::standing(actor, &state)?;
            let Actor::User { id: user, username, .. } = actor else {
                return Err(Error::InvalidParameter("only a person can join a room".into()));
            };
            rules::may_join(standing, &state)?;
            if matches!(standing, Standing::Member(_)) {
                return Ok(Decision::Unchanged(id));
            }
            conversations::add_member(txn, id, *user, Role::Member, event_id, now).await?;
            let members = vec![MemberRole { username: username.clone(), role: Role::Member }];
            Ok(Decision::Changed(Decided { conversation: id, change: Change::MemberAdded { by, members }, sender: *user, added: vec![*user] }))
        }
        Operation::Delete { id } => {
            let state = load(txn, id).await?;
            let standing = rules::standing(actor, &state)?;
            rules::may_delete(standing, &state)?;
            let sender = event_sender(actor, &state, None)?;
            Ok(Decision::Changed(Decided { conversation: id, change: Change::ConversationRemoved { by }, sender, added: Vec::new() }))
        }
    }
}

async fn load(txn: &DatabaseTransaction, id: ConversationId) -> Result<ConversationState> {
    conversations::load_state(txn, id).await?.ok_or(Error::ConversationNotFound)
}

/// Who an event is stored as from: the person who acted, or for the command line `subject` (the
/// member it is about) or the room's first owner.
fn event_sender(actor: &Actor, state: &ConversationState, subject: Option<UserId>) -> Result<UserId> {
    actor
        .user()
        .or(subject)
        .or_else(|| state.members.iter().find(|m| m.role == Role::Owner).map(|m| m.id))
        .or_else(|| state.members.first().map(|m| m.id))
        .ok_or_else(|| Error::internal(anyhow::anyhow!("conversation {} has no members", state.id)))
}

/// The users named, in order; `user_not_found` names every one that does not exist or is disabled.
async fn resolve(txn: &DatabaseTransaction, names: &[super::Username]) -> Result<Vec<(UserId, String)>> {
    let wanted: Vec<String> = names.iter().map(|n| n.as_str().to_owned()).collect();
    let found = conversations::users_named(txn, &wanted).await?;
    let mut missing = Vec::new();
    let mut people = Vec::with_capacity(names.len());
    for name in &wanted {
        match found.iter().find(|(_, username, disabled)| username == name && !disabled) {
            Some((id, username, _)) if !people.iter().any(|(p, _)| p == id) => people.push((*id, username.clone())),
            Some(_) => {}
            None => missing.push(name.clone()),
        }
    }
    if missing.is_empty() { Ok(people) } else { Err(Error::UsersNotFound(missing)) }
}

fn audience_of(kind: Kind, archived: bool, members: Vec<(UserId, String)>) -> Audience {
    let ids: Arc<[UserId]> = members.iter().map(|(id, _)| *id).collect();
    let direct_names = if kind == Kind::Direct { members } else { Vec::new() };
    Audience { kind, archived, members: ids, direct_names }
}

fn bounded_extend<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, items: Vec<(K, V)>) {
    if map.len() + items.len() > CACHE_BOUND {
        map.clear();
    }
    map.extend(items);
}
