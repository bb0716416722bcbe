//! Message traffic between sender → receiver pairs, closed-loop (a window of unacked messages per
//! sender) or open-loop (a global schedule at a set rate). Every message carries its send time and
//! the sender's sequence number, so the receiver times it and spots losses and duplicates.
use std::{
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{
    client::{Account, Nodes, Ws, parse_body, parse_frame, send_frame},
    stats::{Figures, Latency, SeqSet, instant_at, now_ns, us},
};

/// Scheduled sends a sender may have waiting before the schedule counts as overrun.
const FEED_DEPTH: usize = 65_536;
/// Read buffer of the benchmark's busy sockets.
pub const BUSY_READ_BUFFER: usize = 16 * 1024;
/// How many error messages are kept for the report.
const KEPT_ERRORS: usize = 5;

pub struct Pair {
    pub sender: Sender,
    pub receiver: Receiver,
    pub sender_account: Account,
    pub receiver_account: Account,
}

pub struct Sender {
    index: u32,
    to: String,
    ws: Ws,
    next_seq: u64,
    acked: SeqSet,
}

pub struct Receiver {
    ws: Ws,
    expect_sender: u32,
    received: SeqSet,
    last_id: i64,
}

#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// Each sender keeps at most `window` messages unacked; stops after `per_sender` if given.
    Closed { window: u64, per_sender: Option<u64> },
    /// `rate` messages per second in total, spread evenly over the senders.
    Open { rate: f64 },
}

/// One burst of traffic. Times are on the benchmark clock ([`now_ns`]).
pub struct Plan {
    pub load: Load,
    pub start_ns: u64,
    pub send_until_ns: u64,
    /// Measurement windows: latency counts messages *sent* inside, throughput those *received* inside.
    pub windows: Vec<Range<u64>>,
    /// How long to wait for outstanding acks and deliveries after sending stops.
    pub drain: Duration,
    /// Appended to each body to reach the wanted size.
    pub padding: String,
}

impl Plan {
    /// Sending starts shortly, warms up, then one measurement window of `measure`.
    pub fn simple(load: Load, warmup: Duration, measure: Duration, drain: Duration, body_bytes: usize) -> Self {
        let start_ns = now_ns() + 50_000_000;
        let measure_from = start_ns + warmup.as_nanos() as u64;
        let send_until_ns = measure_from + measure.as_nanos() as u64;
        Plan { load, start_ns, send_until_ns, windows: vec![measure_from..send_until_ns], drain, padding: padding(body_bytes) }
    }
}

/// Dots that bring a body of the form `t=… s=… q=…` to roughly `body_bytes`.
pub fn padding(body_bytes: usize) -> String {
    const TYPICAL_BODY: usize = 32;
    if body_bytes > TYPICAL_BODY { format!(" {}", ".".repeat(body_bytes - TYPICAL_BODY - 1)) } else { String::new() }
}

/// What one window measured.
#[derive(Default)]
pub struct WindowResult {
    pub delivery: Latency,
    pub ack: Latency,
    pub received: u64,
    pub seconds: f64,
}

/// What a whole plan measured, and everything that went wrong.
#[derive(Default)]
pub struct Outcome {
    pub windows: Vec<WindowResult>,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub unacked: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub duplicate_acks: u64,
    pub out_of_order: u64,
    pub closed_sockets: u64,
    pub unexpected_frames: u64,
    pub schedule_overruns: u64,
    pub error_samples: Vec<String>,
    pub elapsed_s: f64,
}

impl Outcome {
    /// Window `w`'s figures: `msgs_per_s`, `rx_*` (send → receive) and `ack_*` (send → ack).
    pub fn add_window(&self, w: usize, prefix: &str, figures: &mut Figures) {
        let window = &self.windows[w];
        figures.set(&format!("{prefix}msgs_per_s"), window.received as f64 / window.seconds);
        window.delivery.add_to(&format!("{prefix}rx"), figures);
        window.ack.add_to(&format!("{prefix}ack"), figures);
    }

    pub fn add_totals(&self, figures: &mut Figures) {
        figures.set("sent", self.sent as f64);
        figures.set("acked", self.acked as f64);
        figures.set("errors", self.errors as f64);
        figures.set("lost", self.lost as f64);
        figures.set("duplicates", self.duplicates as f64);
        figures.set("unacked", self.unacked as f64);
    }

    /// Protocol failures; any of them fails the run.
    pub fn failures(&self) -> Vec<String> {
        let counts = [
            (self.errors, "error frames"),
            (self.unacked, "messages not acked before the drain timeout (an overloaded server, or a lost ack)"),
            (self.lost, "lost messages (acked, never received)"),
            (self.duplicates, "duplicate deliveries"),
            (self.duplicate_acks, "duplicate acks"),
            (self.out_of_order, "deliveries with a non-increasing id"),
            (self.closed_sockets, "sockets closed during traffic"),
            (self.unexpected_frames, "unparseable or foreign frames"),
            (self.schedule_overruns, "open-loop sends dropped by an overrun schedule"),
        ];
        let mut failures: Vec<String> =
            counts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
        if !failures.is_empty() {
            failures.extend(self.error_samples.iter().cloned());
        }
        failures
    }
}

#[derive(Default)]
struct Progress {
    acked: AtomicU64,
    received: AtomicU64,
}

/// Creates `pairs` sender/receiver users named after `prefix`, signs them in, opens their sockets.
/// On several nodes pair k's sender sits on node k and its receiver on node k + 1 (modulo the node
/// count): every message crosses from one node to another, and every node both commits and delivers.
pub async fn setup_pairs(nodes: &Nodes, prefix: &str, pairs: usize) -> anyhow::Result<Vec<Pair>> {
    let names = pair_placement(nodes.len(), pairs).into_iter().enumerate().map(|(i, node)| {
        let role = if i % 2 == 0 { 's' } else { 'r' };
        (format!("{prefix}{role}{}", i / 2), node)
    });
    let accounts = nodes.create_accounts(names.collect()).await?;
    let tokens = accounts.iter().map(|a| (a.token.clone(), a.node)).collect();
    let sockets = nodes.connect_all(tokens, BUSY_READ_BUFFER).await?;
    let mut sockets = sockets.into_iter();
    let mut accounts = accounts.into_iter();
    let mut out = Vec::with_capacity(pairs);
    for index in 0..pairs as u32 {
        let (Some(sender_account), Some(receiver_account)) = (accounts.next(), accounts.next()) else { break };
        let (Some(sender_ws), Some(receiver_ws)) = (sockets.next(), sockets.next()) else { break };
        out.push(Pair {
            sender: Sender {
                index,
                to: receiver_account.username.clone(),
                ws: sender_ws,
                next_seq: 0,
                acked: SeqSet::default(),
            },
            receiver: Receiver { ws: receiver_ws, expect_sender: index, received: SeqSet::default(), last_id: 0 },
            sender_account,
            receiver_account,
        });
    }
    Ok(out)
}

/// The node of each user in sender, receiver, sender, … order.
fn pair_placement(nodes: usize, pairs: usize) -> Vec<usize> {
    (0..pairs).flat_map(|k| [k % nodes.max(1), (k + 1) % nodes.max(1)]).collect()
}

/// Runs `plan` over `pairs` and hands the pairs back for the next plan.
pub async fn run(pairs: Vec<Pair>, plan: Plan) -> anyhow::Result<(Vec<Pair>, Outcome)> {
    let started = Instant::now();
    let plan = Arc::new(plan);
    let progress = Arc::new(Progress::default());
    let (stop, stopped) = watch::channel(false);
    let mut receivers = Vec::with_capacity(pairs.len());
    let mut senders = Vec::with_capacity(pairs.len());
    let mut feeds = Vec::new();
    let mut accounts = Vec::with_capacity(pairs.len());
    for pair in pairs {
        accounts.push((pair.sender_account, pair.receiver_account));
        receivers.push(tokio::spawn(drive_receiver(pair.receiver, plan.clone(), stopped.clone(), progress.clone())));
        let feed = match plan.load {
            Load::Open { .. } => {
                let (queue, feed) = mpsc::channel(FEED_DEPTH);
                feeds.push(queue);
                Some(feed)
            }
            Load::Closed { .. } => None,
        };
        senders.push(tokio::spawn(drive_sender(pair.sender, plan.clone(), feed, progress.clone())));
    }
    let overruns = Arc::new(AtomicU64::new(0));
    let pacer = match plan.load {
        Load::Open { rate } => {
            let (overruns, start, until) = (overruns.clone(), plan.start_ns, plan.send_until_ns);
            Some(std::thread::spawn(move || pace(feeds, rate, start, until, &overruns)))
        }
        Load::Closed { .. } => None,
    };

    let mut outcome = Outcome::default();
    let mut sender_results = Vec::with_capacity(senders.len());
    for sender in senders {
        sender_results.push(sender.await?);
    }
    if let Some(pacer) = pacer {
        pacer.join().map_err(|_| anyhow::anyhow!("pacer thread panicked"))?;
    }
    let drain_deadline = Instant::now() + plan.drain;
    while progress.received.load(Ordering::Relaxed) < progress.acked.load(Ordering::Relaxed)
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(true);
    let mut receiver_results = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        receiver_results.push(receiver.await?);
    }

    outcome.windows = plan
        .windows
        .iter()
        .map(|w| WindowResult { seconds: (w.end - w.start) as f64 / 1e9, ..WindowResult::default() })
        .collect();
    outcome.schedule_overruns = overruns.load(Ordering::Relaxed);
    let mut pairs = Vec::with_capacity(accounts.len());
    for (((sender, sent), (receiver, got)), (sender_account, receiver_account)) in
        sender_results.into_iter().zip(receiver_results).zip(accounts)
    {
        outcome.sent += sent.sent;
        outcome.acked += sent.acked;
        outcome.errors += sent.errors;
        outcome.unacked += sent.unacked;
        outcome.duplicate_acks += sent.duplicate_acks;
        outcome.closed_sockets += u64::from(sent.closed) + u64::from(got.closed);
        outcome.unexpected_frames += sent.unexpected + got.unexpected;
        outcome.duplicates += got.duplicates;
        outcome.out_of_order += got.out_of_order;
        outcome.lost += sender.acked.missing_from(&receiver.received, sent.seqs.clone());
        for message in sent.error_samples.into_iter().chain(got.error_samples) {
            if outcome.error_samples.len() < KEPT_ERRORS {
                outcome.error_samples.push(message);
            }
        }
        for (w, window) in outcome.windows.iter_mut().enumerate() {
            window.ack.record_all_ns(&sent.ack_us[w]);
            window.delivery.record_all_ns(&got.delivery_us[w]);
            window.received += got.received_in[w];
        }
        pairs.push(Pair { sender, receiver, sender_account, receiver_account });
    }
    outcome.elapsed_s = started.elapsed().as_secs_f64();
    Ok((pairs, outcome))
}

/// Hands each scheduled send time to its sender: message k is due at `start + k / rate` and goes
/// to sender `k mod n`. Runs on its own thread so that timer granularity does not shift the schedule.
fn pace(feeds: Vec<mpsc::Sender<u64>>, rate: f64, start_ns: u64, until_ns: u64, overruns: &AtomicU64) {
    if feeds.is_empty() || rate <= 0.0 {
        return;
    }
    let interval = 1e9 / rate;
    let total = ((until_ns.saturating_sub(start_ns)) as f64 / interval) as u64;
    let mut k = 0u64;
    while k < total {
        let due = start_ns + (k as f64 * interval) as u64;
        let now = now_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
            continue;
        }
        if feeds[(k % feeds.len() as u64) as usize].try_send(due).is_err() {
            overruns.fetch_add(1, Ordering::Relaxed);
        }
        k += 1;
    }
}

fn window_of(windows: &[Range<u64>], t: u64) -> Option<usize> {
    windows.iter().position(|w| w.contains(&t))
}

struct SenderReport {
    sent: u64,
    acked: u64,
    errors: u64,
    unacked: u64,
    duplicate_acks: u64,
    unexpected: u64,
    closed: bool,
    seqs: Range<u64>,
    ack_us: Vec<Vec<u32>>,
    error_samples: Vec<String>,
}

async fn drive_sender(
    mut s: Sender,
    plan: Arc<Plan>,
    mut feed: Option<mpsc::Receiver<u64>>,
    progress: Arc<Progress>,
) -> (Sender, SenderReport) {
    let first_seq = s.next_seq;
    let mut report = SenderReport {
        sent: 0,
        acked: 0,
        errors: 0,
        unacked: 0,
        duplicate_acks: 0,
        unexpected: 0,
        closed: false,
        seqs: first_seq..first_seq,
        ack_us: vec![Vec::new(); plan.windows.len()],
        error_samples: Vec::new(),
    };
    let (window, limit) = match plan.load {
        Load::Closed { window, per_sender } => (window, per_sender.unwrap_or(u64::MAX)),
        Load::Open { .. } => (0, u64::MAX),
    };
    let send_until = instant_at(plan.send_until_ns);
    let drain_deadline = send_until + plan.drain;
    tokio::time::sleep_until(instant_at(plan.start_ns).into()).await;
    let mut timer = Box::pin(tokio::time::sleep_until(send_until.into()));
    let mut timer_at_drain = false;
    let mut feed_open = feed.is_some();
    let mut inflight = 0u64;

    'traffic: loop {
        let now = Instant::now();
        if now >= drain_deadline {
            break;
        }
        let sending = now < send_until;
        if !sending && !timer_at_drain {
            timer.as_mut().reset(drain_deadline.into());
            timer_at_drain = true;
        }
        if feed.is_none() && sending && inflight < window && report.sent < limit {
            while inflight < window && report.sent < limit {
                let frame = send_frame(&s.to, now_ns(), s.index, s.next_seq, &plan.padding);
                if s.ws.feed(frame).await.is_err() {
                    report.closed = true;
                    break 'traffic;
                }
                s.next_seq += 1;
                report.sent += 1;
                inflight += 1;
            }
            if s.ws.flush().await.is_err() {
                report.closed = true;
                break;
            }
        }
        let done_sending = match feed {
            Some(_) => !feed_open,
            None => !sending || report.sent >= limit,
        };
        if done_sending && inflight == 0 {
            break;
        }
        tokio::select! {
            biased;
            frame = s.ws.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    let now = now_ns();
                    let Ok(frame) = parse_frame(&text) else {
                        report.unexpected += 1;
                        continue;
                    };
                    match frame.kind.as_ref() {
                        "ack" => {
                            let Some((t, _, seq)) = frame.message.as_ref().and_then(|m| parse_body(&m.body)) else {
                                report.unexpected += 1;
                                continue;
                            };
                            if !s.acked.insert(seq) {
                                report.duplicate_acks += 1;
                                continue;
                            }
                            inflight = inflight.saturating_sub(1);
                            report.acked += 1;
                            progress.acked.fetch_add(1, Ordering::Relaxed);
                            if let Some(w) = window_of(&plan.windows, t) {
                                report.ack_us[w].push(us(now.saturating_sub(t)));
                            }
                        }
                        "error" => {
                            report.errors += 1;
                            if frame.client_id.is_some() {
                                inflight = inflight.saturating_sub(1);
                            }
                            if report.error_samples.len() < KEPT_ERRORS {
                                report.error_samples.push(format!("error frame: {}", text.as_str()));
                            }
                        }
                        "pong" | "presence" | "online_users" | "typing" | "read" | "receive_message" => {}
                        _ => report.unexpected += 1,
                    }
                }
                Some(Ok(WsMessage::Close(close))) => {
                    report.closed = true;
                    report.error_samples.push(format!("sender socket closed: {close:?}"));
                    break;
                }
                Some(Err(error)) => {
                    report.closed = true;
                    report.error_samples.push(format!("sender socket failed: {error}"));
                    break;
                }
                None => {
                    report.closed = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
            due = next_due(&mut feed), if feed_open => match due {
                Some(first) => {
                    let mut due = Some(first);
                    // Everything already scheduled goes out in one flush.
                    for _ in 0..1024 {
                        let Some(t) = due.take() else { break };
                        if s.ws.feed(send_frame(&s.to, t, s.index, s.next_seq, &plan.padding)).await.is_err() {
                            report.closed = true;
                            break 'traffic;
                        }
                        s.next_seq += 1;
                        report.sent += 1;
                        inflight += 1;
                        due = feed.as_mut().and_then(|f| f.try_recv().ok());
                    }
                    if let Some(t) = due {
                        // More than one flush's worth was waiting: send it next turn.
                        if s.ws.feed(send_frame(&s.to, t, s.index, s.next_seq, &plan.padding)).await.is_err() {
                            report.closed = true;
                            break 'traffic;
                        }
                        s.next_seq += 1;
                        report.sent += 1;
                        inflight += 1;
                    }
                    if s.ws.flush().await.is_err() {
                        report.closed = true;
                        break;
                    }
                }
                None => feed_open = false,
            },
            _ = &mut timer => {}
        }
    }
    report.unacked = inflight;
    report.seqs = first_seq..s.next_seq;
    (s, report)
}

async fn next_due(feed: &mut Option<mpsc::Receiver<u64>>) -> Option<u64> {
    match feed {
        Some(feed) => feed.recv().await,
        None => None,
    }
}

struct ReceiverReport {
    duplicates: u64,
    out_of_order: u64,
    unexpected: u64,
    closed: bool,
    delivery_us: Vec<Vec<u32>>,
    received_in: Vec<u64>,
    error_samples: Vec<String>,
}

async fn drive_receiver(
    mut r: Receiver,
    plan: Arc<Plan>,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> (Receiver, ReceiverReport) {
    let mut report = ReceiverReport {
        duplicates: 0,
        out_of_order: 0,
        unexpected: 0,
        closed: false,
        delivery_us: vec![Vec::new(); plan.windows.len()],
        received_in: vec![0; plan.windows.len()],
        error_samples: Vec::new(),
    };
    // Bounded by the stop signal, which `run` always sends after the drain deadline.
    loop {
        tokio::select! {
            biased;
            frame = r.ws.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    let now = now_ns();
                    let Ok(frame) = parse_frame(&text) else {
                        report.unexpected += 1;
                        continue;
                    };
                    if frame.kind != "receive_message" {
                        if frame.kind == "error" {
                            report.unexpected += 1;
                            report.error_samples.push(format!("receiver got: {}", text.as_str()));
                        }
                        continue;
                    }
                    let Some(message) = frame.message else {
                        report.unexpected += 1;
                        continue;
                    };
                    let Some((t, sender, seq)) = parse_body(&message.body) else {
                        report.unexpected += 1;
                        continue;
                    };
                    if sender != r.expect_sender {
                        report.unexpected += 1;
                        continue;
                    }
                    if !r.received.insert(seq) {
                        report.duplicates += 1;
                        continue;
                    }
                    if message.id <= r.last_id {
                        report.out_of_order += 1;
                    }
                    r.last_id = r.last_id.max(message.id);
                    progress.received.fetch_add(1, Ordering::Relaxed);
                    if let Some(w) = window_of(&plan.windows, t) {
                        report.delivery_us[w].push(us(now.saturating_sub(t)));
                    }
                    for (w, window) in plan.windows.iter().enumerate() {
                        if window.contains(&now) {
                            report.received_in[w] += 1;
                        }
                    }
                }
                Some(Ok(WsMessage::Close(close))) => {
                    report.closed = true;
                    report.error_samples.push(format!("receiver socket closed: {close:?}"));
                    break;
                }
                Some(Err(error)) => {
                    report.closed = true;
                    report.error_samples.push(format!("receiver socket failed: {error}"));
                    break;
                }
                None => {
                    report.closed = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => break,
        }
    }
    (r, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_spans_two_nodes_and_every_node_sends() {
        assert_eq!(pair_placement(1, 2), [0, 0, 0, 0]);
        assert_eq!(pair_placement(2, 2), [0, 1, 1, 0]);
        let three = pair_placement(3, 3);
        assert_eq!(three, [0, 1, 1, 2, 2, 0]);
        assert!(three.chunks(2).all(|pair| pair[0] != pair[1]));
    }
}
