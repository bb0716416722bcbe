//! The suite's eight scenarios (issue 4's table). Each prints one JSON result on stdout.
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{
    ScenarioArgs,
    client::{Account, Nodes, Target, Ws, parse_frame},
    stats::{Figures, Latency, now_ns},
    traffic::{self, Load, Pair, Plan},
};

/// Read buffer of sockets that only sit there.
const IDLE_READ_BUFFER: usize = 4096;
const PING_WORKERS: usize = 8;
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// What one scenario measured: every run's figures, their medians, and what went wrong.
#[derive(Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: u8,
    pub name: String,
    pub params: serde_json::Value,
    pub runs: Vec<Figures>,
    pub figures: Figures,
    pub failures: Vec<String>,
    /// The servers' storage, `sqlite` or `postgres`; filled in by `chatd-bench report`.
    #[serde(default = "sqlite")]
    pub backend: String,
    /// How many `chatd serve` nodes the traffic was spread over.
    #[serde(default = "one")]
    pub nodes: usize,
    /// Where the figures came from; filled in by `chatd-bench report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
}

fn sqlite() -> String {
    "sqlite".to_owned()
}

fn one() -> usize {
    1
}

pub async fn run(args: ScenarioArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut result = match args.number {
        1 => throughput(&args, 1, "max throughput, window 64", 64).await?,
        2 => throughput(&args, 2, "max throughput, wait for each ack", 1).await?,
        3 | 6 => steady(&args).await?,
        4 => idle_sockets(&args).await?,
        5 => history(&args).await?,
        7 => cold_start(&args).await?,
        8 => binary_size(&args)?,
        9 => room_fan_out(&args).await?,
        n => bail!("no scenario {n}"),
    };
    if !matches!(args.number, 7 | 8) {
        result.nodes = args.url.len();
    }
    eprintln!(
        "scenario {} ({}) finished in {:.1} s: {}",
        result.scenario,
        result.name,
        started.elapsed().as_secs_f64(),
        if result.failures.is_empty() { "ok".to_owned() } else { result.failures.join("; ") }
    );
    println!("{}", serde_json::to_string(&result)?);
    Ok(result.failures.is_empty())
}

pub async fn wait_ready(urls: &[String], timeout: f64, pid: Option<u32>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout.clamp(0.0, 600.0));
    for url in urls {
        let target = Target::new(url)?;
        loop {
            if target.is_ready().await {
                break;
            }
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                bail!("the server exited before it was ready");
            }
            ensure!(Instant::now() < deadline, "{url} was not ready within {timeout} s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// A prefix that keeps this run's usernames apart from any earlier run's on the same server.
fn run_prefix() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("b{:x}{:x}", secs % 0x10_0000, std::process::id() % 0x1000)
}

fn log(message: impl AsRef<str>) {
    eprintln!("[{:8.3}s] {}", now_ns() as f64 / 1e9, message.as_ref());
}

async fn setup_pairs(nodes: &Nodes, prefix: &str, pairs: usize) -> anyhow::Result<Vec<Pair>> {
    let started = Instant::now();
    let pairs = traffic::setup_pairs(nodes, prefix, pairs).await?;
    log(format!("{} pairs signed up, signed in and connected in {:.1} s", pairs.len(), started.elapsed().as_secs_f64()));
    Ok(pairs)
}

/// Scenarios 1 and 2: closed loop, as fast as the window allows.
async fn throughput(args: &ScenarioArgs, number: u8, name: &str, default_window: u64) -> anyhow::Result<ScenarioResult> {
    let nodes = Nodes::new(&args.url)?;
    let pair_count = args.pick(args.pairs, 500, 10);
    let window = args.window.unwrap_or(default_window).max(1);
    let runs = args.pick(args.runs, 3, 1).max(1);
    let warmup = args.secs(args.warmup, 2.0, 0.3);
    let duration = args.secs(args.duration, 10.0, 1.0);
    let drain = Duration::from_secs_f64(args.drain);
    let mut pairs = setup_pairs(&nodes, &run_prefix(), pair_count).await?;
    let mut result = ScenarioResult::new(
        number,
        name,
        json!({ "pairs": pair_count, "window": window, "runs": runs, "warmup_s": warmup.as_secs_f64(),
                "duration_s": duration.as_secs_f64(), "body_bytes": args.body_bytes }),
    );
    for run in 0..runs {
        let plan = Plan::simple(Load::Closed { window, per_sender: None }, warmup, duration, drain, args.body_bytes);
        let cpu = CpuMeter::start(args);
        let (back, outcome) = traffic::run(pairs, plan).await?;
        pairs = back;
        let mut figures = Figures::default();
        cpu.finish(outcome.acked, &mut figures);
        outcome.add_window(0, "", &mut figures);
        outcome.add_totals(&mut figures);
        log(format!(
            "run {}: {:.0} msg/s, delivery p50 {:.2} ms p99 {:.2} ms, ack p99 {:.2} ms",
            run + 1,
            figures.get("msgs_per_s").unwrap_or(0.0),
            figures.get("rx_p50_ms").unwrap_or(0.0),
            figures.get("rx_p99_ms").unwrap_or(0.0),
            figures.get("ack_p99_ms").unwrap_or(0.0)
        ));
        result.add_run(figures, outcome.failures());
    }
    Ok(result.finish())
}

/// Scenario 3: a steady open-loop rate with idle users connected. Scenario 6 adds a sign-in storm
/// right after each run's baseline window and compares the chat latency during it.
async fn steady(args: &ScenarioArgs) -> anyhow::Result<ScenarioResult> {
    let storm_mode = args.number == 6;
    let nodes = Nodes::new(&args.url)?;
    let pair_count = args.pick(args.pairs, 500, 10);
    let rate = args.pick(args.rate, 10_000.0, 500.0);
    let idle = args.pick(args.idle, 5_000, 20);
    let runs = args.pick(args.runs, 3, 1).max(1);
    let warmup = args.secs(args.warmup, 2.0, 0.3);
    let duration = args.secs(args.duration, 10.0, 1.0);
    let storm = args.pick(args.storm, 200, 10);
    let storm_window = args.secs(args.storm_window, 5.0, 1.0);
    let drain = Duration::from_secs_f64(args.drain);
    let prefix = run_prefix();

    // Idle users first: creating thousands takes minutes, and the pairs' sockets should not sit
    // unread that long (the server drops sockets that stay silent).
    let started = Instant::now();
    let idle_accounts = nodes.create_accounts(nodes.round_robin((0..idle).map(|i| format!("{prefix}i{i}")))).await?;
    let idle_sockets = nodes.connect_all(idle_accounts.iter().map(|a| (a.token.clone(), a.node)).collect(), IDLE_READ_BUFFER).await?;
    let idle_sockets = keep_alive(idle_sockets);
    log(format!("{} idle users connected in {:.1} s", idle.min(idle_accounts.len()), started.elapsed().as_secs_f64()));
    let mut pairs = setup_pairs(&nodes, &prefix, pair_count).await?;

    let (number, name) =
        if storm_mode { (6, "sign-in storm during steady traffic") } else { (3, "steady rate with idle users") };
    let mut result = ScenarioResult::new(
        number,
        name,
        json!({ "pairs": pair_count, "rate": rate, "idle_users": idle, "runs": runs,
                "warmup_s": warmup.as_secs_f64(), "duration_s": duration.as_secs_f64(),
                "storm_signins": if storm_mode { storm } else { 0 },
                "storm_window_s": if storm_mode { storm_window.as_secs_f64() } else { 0.0 },
                "body_bytes": args.body_bytes }),
    );
    for run in 0..runs {
        let mut plan = Plan::simple(Load::Open { rate }, warmup, duration, drain, args.body_bytes);
        let storm_at = plan.send_until_ns;
        if storm_mode {
            // Baseline window, then the storm window; traffic continues through both.
            plan.send_until_ns = storm_at + storm_window.as_nanos() as u64;
            plan.windows.push(storm_at..plan.send_until_ns);
        }
        let storm_task = storm_mode.then(|| {
            let accounts: Vec<Account> = idle_accounts.iter().chain(pairs.iter().map(|p| &p.sender_account)).cloned().collect();
            tokio::spawn(sign_in_storm(nodes.clone(), accounts, storm, storm_at))
        });
        let cpu = CpuMeter::start(args);
        let (back, outcome) = traffic::run(pairs, plan).await?;
        pairs = back;
        let mut figures = Figures::default();
        if !storm_mode {
            cpu.finish(outcome.acked, &mut figures);
        }
        outcome.add_window(0, "", &mut figures);
        outcome.add_totals(&mut figures);
        let mut failures = outcome.failures();
        if let Some(storm_task) = storm_task {
            outcome.add_window(1, "storm_", &mut figures);
            let (signins, failed, seconds) = storm_task.await??;
            figures.set("signins", signins as f64);
            figures.set("signin_failures", failed as f64);
            figures.set("storm_s", seconds);
            figures.set("signins_per_s", signins as f64 / seconds);
            if let (Some(base), Some(during)) = (figures.get("rx_p99_ms"), figures.get("storm_rx_p99_ms")) {
                figures.set("storm_p99_ratio", during / base);
            }
            if failed > 0 {
                failures.push(format!("{failed} sign-ins failed"));
            }
            if seconds > storm_window.as_secs_f64() {
                log("the storm outlasted its measurement window; raise --storm-window");
            }
        }
        log(format!(
            "run {}: {:.0} msg/s, delivery p50 {:.3} ms p99 {:.3} ms{}",
            run + 1,
            figures.get("msgs_per_s").unwrap_or(0.0),
            figures.get("rx_p50_ms").unwrap_or(0.0),
            figures.get("rx_p99_ms").unwrap_or(0.0),
            match figures.get("signins_per_s") {
                Some(rate) => format!(
                    "; storm {:.0} sign-ins/s, delivery p99 during it {:.3} ms",
                    rate,
                    figures.get("storm_rx_p99_ms").unwrap_or(0.0)
                ),
                None => String::new(),
            }
        ));
        result.add_run(figures, failures);
    }
    let still_open = idle_sockets.iter().filter(|task| !task.is_finished()).count();
    if still_open < idle {
        let last = result.runs.len();
        result.failures.push(format!("run {last}: {} idle sockets closed", idle - still_open));
    }
    idle_sockets.iter().for_each(|task| task.abort());
    Ok(result.finish())
}

/// Idle sockets still answer the server's heartbeat pings: each gets a task that only reads
/// (the WebSocket library answers pings while reading). A task ends when its socket closes, or
/// after an hour at most; callers abort the rest.
fn keep_alive(sockets: Vec<Ws>) -> Vec<tokio::task::JoinHandle<()>> {
    const LIFETIME: Duration = Duration::from_secs(3600);
    sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(LIFETIME, async {
                    while let Some(Ok(frame)) = ws.next().await {
                        if let WsMessage::Close(_) = frame {
                            break;
                        }
                    }
                })
                .await;
            })
        })
        .collect()
}

/// Fires `count` sign-ins at once at `at_ns`, each on the node the account lives on; returns
/// (succeeded, failed, seconds until the last).
async fn sign_in_storm(nodes: Nodes, accounts: Vec<Account>, count: usize, at_ns: u64) -> anyhow::Result<(u64, u64, f64)> {
    ensure!(!accounts.is_empty(), "no accounts to sign in");
    tokio::time::sleep_until(crate::stats::instant_at(at_ns).into()).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let account = &accounts[i % accounts.len()];
            let (target, username) = (nodes.at(account.node).clone(), account.username.clone());
            tokio::spawn(async move { target.sign_in(&username).await })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok(_) => ok += 1,
            Err(error) => {
                failed += 1;
                log(format!("sign-in failed: {error:#}"));
            }
        }
    }
    Ok((ok, failed, started.elapsed().as_secs_f64()))
}

/// Scenario 4: many idle authenticated sockets; server memory per socket and ping round trips.
async fn idle_sockets(args: &ScenarioArgs) -> anyhow::Result<ScenarioResult> {
    let nodes = Nodes::new(&args.url)?;
    let sockets = args.pick(args.sockets, 18_500, 100);
    // Twenty sockets per user: the most the server's default `sockets_per_user` allows.
    let users = args.pick(args.socket_users, sockets.div_ceil(20), sockets.div_ceil(20)).clamp(1, sockets.max(1));
    let pings = args.pick(args.pings, 2_000, 100);
    let pids = &args.server_pid;
    let prefix = run_prefix();
    let accounts = nodes.create_accounts(nodes.round_robin((0..users).map(|i| format!("{prefix}u{i}")))).await?;
    // Memory per socket is the slope between a tenth of the sockets and all of them, so that
    // one-time allocations and what sign-ups left behind are not charged to the sockets. Sockets
    // go round-robin over the nodes, and the nodes' memory is summed.
    let tokens: Vec<(String, usize)> = (0..sockets).map(|i| (accounts[i % users].token.clone(), i)).collect();
    let first = (sockets / 10).max(1).min(sockets);
    let mut open = nodes.connect_all(tokens[..first].to_vec(), IDLE_READ_BUFFER).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = total_rss_kib(pids)?;
    let started = Instant::now();
    open.extend(nodes.connect_all(tokens[first..].to_vec(), IDLE_READ_BUFFER).await?);
    let open_seconds = started.elapsed().as_secs_f64();
    log(format!("{} idle sockets open ({} in {open_seconds:.1} s)", open.len(), sockets - first));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = total_rss_kib(pids)?;

    let mut figures = Figures::default();
    figures.set("sockets", open.len() as f64);
    figures.set("socket_users", users as f64);
    figures.set("sockets_opened_per_s", (sockets - first) as f64 / open_seconds);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        figures.set("rss_before_kib", before as f64);
        figures.set("rss_after_kib", after as f64);
        figures.set("rss_per_socket_kib", (after as f64 - before as f64) / (sockets - first).max(1) as f64);
    }
    let (latency, timeouts, open) = ping_all(open, pings).await;
    latency.add_to("ping", &mut figures);
    figures.set("ping_timeouts", timeouts as f64);
    let mut failures = Vec::new();
    if timeouts > 0 {
        failures.push(format!("{timeouts} pings got no pong within {} s", PING_TIMEOUT.as_secs()));
    }
    if open.len() != sockets {
        failures.push(format!("only {} of {sockets} sockets survived", open.len()));
    }
    if pids.is_empty() {
        log("no --server-pid: server memory not measured");
    }
    drop(open);
    let mut result = ScenarioResult::new(
        4,
        "idle authenticated sockets",
        json!({ "sockets": sockets, "socket_users": users, "pings": pings }),
    );
    result.add_run(figures, failures);
    Ok(result.finish())
}

/// Pings sockets spread over all of them, a few workers at a time; hands the sockets back.
async fn ping_all(sockets: Vec<Ws>, pings: usize) -> (Latency, u64, Vec<Ws>) {
    let mut chunks: Vec<Vec<Ws>> = (0..PING_WORKERS).map(|_| Vec::new()).collect();
    for (i, ws) in sockets.into_iter().enumerate() {
        chunks[i % PING_WORKERS].push(ws);
    }
    let per_worker = pings.div_ceil(PING_WORKERS);
    let workers: Vec<_> = chunks
        .into_iter()
        .map(|mut chunk| {
            tokio::spawn(async move {
                let mut latency = Latency::default();
                let mut timeouts = 0u64;
                let mut alive = Vec::with_capacity(chunk.len());
                if !chunk.is_empty() {
                    for k in 0..per_worker {
                        let index = k * chunk.len() / per_worker.max(1);
                        let started = now_ns();
                        match tokio::time::timeout(PING_TIMEOUT, ping(&mut chunk[index])).await {
                            Ok(Ok(())) => latency.record_ns(now_ns() - started),
                            _ => timeouts += 1,
                        }
                    }
                }
                alive.extend(chunk);
                (latency, timeouts, alive)
            })
        })
        .collect();
    let mut total = Latency::default();
    let mut timeouts = 0;
    let mut sockets = Vec::new();
    for worker in workers {
        if let Ok((latency, t, alive)) = worker.await {
            total.merge(&latency);
            timeouts += t;
            sockets.extend(alive);
        }
    }
    (total, timeouts, sockets)
}

async fn ping(ws: &mut Ws) -> anyhow::Result<()> {
    ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await?;
    for _ in 0..64 {
        match ws.next().await {
            Some(Ok(WsMessage::Text(text))) if parse_frame(&text)?.kind == "pong" => return Ok(()),
            Some(Ok(_)) => {}
            _ => bail!("socket closed while waiting for pong"),
        }
    }
    bail!("no pong")
}

/// Scenario 5: store many messages fast over WebSockets, then time history pages over HTTP.
async fn history(args: &ScenarioArgs) -> anyhow::Result<ScenarioResult> {
    let nodes = Nodes::new(&args.url)?;
    let pair_count = args.pick(args.pairs, 50, 4).max(1);
    let seed = args.pick(args.seed, 10_000_000, 2_000);
    let window = args.window.unwrap_or(256).max(1);
    let duration = args.secs(args.duration, 10.0, 1.0);
    let runs = args.pick(args.runs, 3, 1).max(1);
    let pairs = setup_pairs(&nodes, &run_prefix(), pair_count).await?;

    let per_sender = seed.div_ceil(pair_count as u64);
    let seed_limit = Duration::from_secs(if args.smoke { 60 } else { 3600 });
    let mut plan = Plan::simple(Load::Closed { window, per_sender: Some(per_sender) }, Duration::ZERO, seed_limit, Duration::from_secs_f64(args.drain), args.body_bytes);
    plan.windows.clear();
    log(format!("seeding {} messages over {pair_count} pairs (window {window})", per_sender * pair_count as u64));
    let started = Instant::now();
    let cpu = CpuMeter::start(args);
    let (pairs, outcome) = traffic::run(pairs, plan).await?;
    let mut seed_figures = Figures::default();
    cpu.finish(outcome.acked, &mut seed_figures);
    let seed_seconds = started.elapsed().as_secs_f64();
    log(format!("seeded {} messages in {seed_seconds:.1} s ({:.0} msg/s)", outcome.acked, outcome.acked as f64 / seed_seconds));
    let mut failures = outcome.failures();
    let seeded = outcome.acked;

    // Each page is read from the node its reader (the pair's sender) lives on.
    let conversations: Arc<Vec<Conversation>> = Arc::new(
        pairs
            .iter()
            .map(|p| Conversation {
                target: nodes.at(p.sender_account.node).clone(),
                token: p.sender_account.token.clone(),
                peer: p.receiver_account.username.clone(),
            })
            .collect(),
    );
    let mut result = ScenarioResult::new(
        5,
        "history page of 50",
        json!({ "seeded_messages": seeded, "pairs": pair_count, "concurrency": args.concurrency,
                "duration_s": duration.as_secs_f64(), "runs": runs }),
    );
    for run in 0..runs {
        let mut figures = Figures::default();
        figures.set("seeded_messages", seeded as f64);
        figures.set("seed_msgs_per_s", seeded as f64 / seed_seconds);
        for (name, value) in &seed_figures.0 {
            figures.set(&format!("seed_{name}"), *value);
        }
        for (label, deep) in [("history", false), ("history_deep", true)] {
            let (latency, requests, errors, seconds) =
                time_history(conversations.clone(), args.concurrency, duration, deep, seeded, run as u64).await;
            latency.add_to(label, &mut figures);
            figures.set(&format!("{label}_per_s"), requests as f64 / seconds);
            if errors > 0 {
                failures.push(format!("{errors} history requests failed ({label})"));
            }
        }
        log(format!(
            "run {}: newest page p50 {:.3} ms p99 {:.3} ms; random page p99 {:.3} ms",
            run + 1,
            figures.get("history_p50_ms").unwrap_or(0.0),
            figures.get("history_p99_ms").unwrap_or(0.0),
            figures.get("history_deep_p99_ms").unwrap_or(0.0)
        ));
        result.add_run(figures, std::mem::take(&mut failures));
    }
    drop(pairs);
    Ok(result.finish())
}

/// A direct conversation whose history scenario 5 reads: who reads it, where, and with whom.
struct Conversation {
    target: Target,
    token: String,
    peer: String,
}

/// Closed-loop history requests from `concurrency` workers for `duration`. `deep` pages back
/// from a random id instead of reading the newest page.
async fn time_history(
    conversations: Arc<Vec<Conversation>>,
    concurrency: usize,
    duration: Duration,
    deep: bool,
    max_id: u64,
    salt: u64,
) -> (Latency, u64, u64, f64) {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|w| {
            let conversations = conversations.clone();
            tokio::spawn(async move {
                let mut random = XorShift::new(salt * 1000 + w as u64 + 1);
                let mut latency = Latency::default();
                let (mut requests, mut errors) = (0u64, 0u64);
                // Bounded by the deadline and by a request count no loopback server can exceed.
                for _ in 0..10_000_000u64 {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let Conversation { target, token, peer } = &conversations[random.below(conversations.len() as u64) as usize];
                    let before = deep.then(|| random.below(max_id.max(1)) as i64 + 2);
                    let sent = now_ns();
                    match target.history_page(token, peer, 50, before).await {
                        Ok(n) if n <= 50 && (deep || n > 0) => latency.record_ns(now_ns() - sent),
                        _ => errors += 1,
                    }
                    requests += 1;
                }
                (latency, requests, errors)
            })
        })
        .collect();
    let mut total = Latency::default();
    let (mut requests, mut errors) = (0, 0);
    for worker in workers {
        if let Ok((latency, r, e)) = worker.await {
            total.merge(&latency);
            requests += r;
            errors += e;
        }
    }
    (total, requests, errors, started.elapsed().as_secs_f64())
}

struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Scenario 7: `chatd serve` from exec to the first 200 from `/api/ready`, on a fresh data
/// directory and (if given) on a seeded one.
async fn cold_start(args: &ScenarioArgs) -> anyhow::Result<ScenarioResult> {
    let runs = args.pick(args.runs, 5, 2).max(1);
    let chatd = args.chatd.canonicalize().with_context(|| format!("no chatd binary at {}", args.chatd.display()))?;
    let scratch = std::env::temp_dir().join(format!("chatd-bench-cold-{}", std::process::id()));
    let mut result = ScenarioResult::new(
        7,
        "cold start to ready",
        json!({ "runs": runs, "seeded_data_dir": args.seeded_data_dir.is_some() }),
    );
    for run in 0..runs {
        let mut figures = Figures::default();
        let mut failures = Vec::new();
        let fresh = scratch.join(format!("run{run}"));
        match time_cold_start(&chatd, &fresh).await {
            Ok(ms) => figures.set("cold_start_empty_ms", ms),
            Err(error) => failures.push(format!("empty start: {error:#}")),
        }
        let _ = std::fs::remove_dir_all(&fresh);
        if let Some(seeded) = &args.seeded_data_dir {
            match time_cold_start(&chatd, seeded).await {
                Ok(ms) => figures.set("cold_start_seeded_ms", ms),
                Err(error) => failures.push(format!("seeded start: {error:#}")),
            }
            figures.set("seeded_db_mib", dir_bytes(seeded) as f64 / (1024.0 * 1024.0));
        }
        let shown = |name| figures.get(name).map_or_else(|| "—".to_owned(), |ms| format!("{} ms", crate::stats::format_number(ms)));
        log(format!("run {}: empty {}, seeded {}", run + 1, shown("cold_start_empty_ms"), shown("cold_start_seeded_ms")));
        result.add_run(figures, failures);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(result.finish())
}

async fn time_cold_start(chatd: &Path, data_dir: &Path) -> anyhow::Result<f64> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let target = Target::new(&format!("127.0.0.1:{port}"))?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(chatd)
        .arg("serve")
        .env("CHATD_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHATD_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start chatd serve")?;
    let deadline = started + Duration::from_secs(30);
    let mut ready_after = None;
    while Instant::now() < deadline {
        if target.is_ready().await {
            ready_after = Some(started.elapsed());
            break;
        }
        if child.try_wait()?.is_some() {
            bail!("chatd serve exited before it was ready");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait()).await.is_err() {
        child.start_kill()?;
        let _ = child.wait().await;
    }
    let ready_after = ready_after.context("not ready within 30 s")?;
    Ok(ready_after.as_secs_f64() * 1000.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Scenario 8: the release binary's size, and whether it embeds the real web app.
fn binary_size(args: &ScenarioArgs) -> anyhow::Result<ScenarioResult> {
    let path: PathBuf = args.chatd.clone();
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let placeholder = b"built with CHATD_SKIP_UI=1";
    let embeds_ui = !bytes.windows(placeholder.len()).any(|w| w == placeholder);
    let mut figures = Figures::default();
    figures.set("binary_bytes", bytes.len() as f64);
    figures.set("binary_mb", bytes.len() as f64 / 1e6);
    figures.set("binary_mib", bytes.len() as f64 / (1024.0 * 1024.0));
    figures.set("ui_embedded", if embeds_ui { 1.0 } else { 0.0 });
    let mut result = ScenarioResult::new(8, "release binary size", json!({ "ui_embedded": embeds_ui }));
    if !embeds_ui {
        log("this binary was built with CHATD_SKIP_UI=1: its size is not the real figure");
    }
    result.add_run(figures, Vec::new());
    Ok(result.finish())
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    parse_cpu_seconds(&std::fs::read_to_string(path).ok()?)
}

/// User + system seconds from a `/proc/<pid>/stat` line.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    /// Clock ticks per second; Linux reports `/proc` times in USER_HZ, which is 100 everywhere.
    const TICKS_PER_SECOND: f64 = 100.0;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// The CPU seconds of all of `pids`, summed; `None` without pids or if one of them has gone.
fn total_cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_seconds(Some(pid))).sum()
}

/// CPU seconds PostgreSQL has spent so far for `database`: the backends whose process title
/// names it, and the server's background processes (checkpointer, WAL writer, …), which work
/// for every database. Other databases' backends are left out; a backend that exits takes its
/// CPU with it, which chatd's pooled connections do not do during a run.
fn postgres_cpu_seconds(database: &str) -> Option<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or(true, |comm| comm.trim_end() != "postgres") {
            continue;
        }
        let Ok(title) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if !postgres_process_counts(&String::from_utf8_lossy(&title).replace('\0', " "), database) {
            continue;
        }
        total += std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_cpu_seconds).unwrap_or(0.0);
    }
    Some(total)
}

/// Whether a PostgreSQL process, by its title (`postgres: [cluster: ]user database host(port)
/// state` for a backend, `postgres: [cluster: ]checkpointer` and the like for the server's own),
/// works for `database`.
fn postgres_process_counts(title: &str, database: &str) -> bool {
    let Some(rest) = title.trim_end().strip_prefix("postgres: ") else { return false };
    let words: Vec<&str> = rest.split_whitespace().collect();
    // A client backend or worker names its database; the server's own processes name none.
    let backend = words.iter().any(|w| w.ends_with(')') || *w == "[local]") || rest.contains("worker");
    if backend { words.contains(&database) } else { true }
}

/// Measures the CPU the servers, PostgreSQL (with `--postgres-db`) and the load generator spend
/// on a piece of traffic.
struct CpuMeter {
    server_pids: Vec<u32>,
    postgres_db: Option<String>,
    server: Option<f64>,
    postgres: Option<f64>,
    bench: Option<f64>,
}

impl CpuMeter {
    fn start(args: &ScenarioArgs) -> Self {
        let postgres_db = args.postgres_db.clone();
        Self {
            server: total_cpu_seconds(&args.server_pid),
            postgres: postgres_db.as_deref().and_then(postgres_cpu_seconds),
            server_pids: args.server_pid.clone(),
            postgres_db,
            bench: cpu_seconds(None),
        }
    }

    /// Adds server, PostgreSQL and load-generator CPU microseconds per delivered message.
    fn finish(self, messages: u64, figures: &mut Figures) {
        let per_message = |before: Option<f64>, after: Option<f64>| {
            Some((after? - before?) * 1e6 / messages.max(1) as f64)
        };
        if let Some(us) = per_message(self.server, total_cpu_seconds(&self.server_pids)) {
            figures.set("server_cpu_us_per_msg", us);
        }
        if let Some(us) = per_message(self.postgres, self.postgres_db.as_deref().and_then(postgres_cpu_seconds)) {
            figures.set("postgres_cpu_us_per_msg", us);
        }
        if let Some(us) = per_message(self.bench, cpu_seconds(None)) {
            figures.set("bench_cpu_us_per_msg", us);
        }
    }
}

/// The servers' resident memory, summed, from `/proc/<pid>/status`; `None` without pids.
fn total_rss_kib(pids: &[u32]) -> anyhow::Result<Option<u64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    pids.iter().map(|&pid| rss_kib(pid)).sum::<anyhow::Result<u64>>().map(Some)
}

/// A server's resident memory, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("no process {pid}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc status")
}

impl ScenarioResult {
    pub(crate) fn new(scenario: u8, name: &str, params: serde_json::Value) -> Self {
        Self {
            scenario,
            name: name.to_owned(),
            params,
            runs: Vec::new(),
            figures: Figures::default(),
            failures: Vec::new(),
            backend: sqlite(),
            nodes: 1,
            provenance: None,
        }
    }

    pub(crate) fn add_run(&mut self, mut figures: Figures, failures: Vec<String>) {
        // The machine may be shared: record how busy it was.
        if let Some(load) = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split(' ').next()?.parse().ok()) {
            figures.set("load_avg_1m", load);
        }
        let run = self.runs.len() + 1;
        self.failures.extend(failures.into_iter().map(|f| format!("run {run}: {f}")));
        self.runs.push(figures);
    }

    pub(crate) fn finish(mut self) -> Self {
        self.figures = Figures::median(&self.runs);
        self
    }
}

/// Scenario 9: one room of `members`, each with an open socket; `posters` of them post at a
/// steady rate in all; every message goes to every other member. Counts deliveries, times send →
/// receive on every receiving socket, and the server's CPU per delivery.
async fn room_fan_out(args: &ScenarioArgs) -> anyhow::Result<ScenarioResult> {
    const RUN_END: u64 = 1_000_000;

    let nodes = Nodes::new(&args.url)?;
    let members = args.pick(args.members, 1000, 50).max(2);
    let posters = args.pick(args.posters, 10, 2).clamp(1, members);
    let rate = args.pick(args.rate, 100.0, 40.0);
    let runs = args.pick(args.runs, 3, 1).max(1);
    let duration = args.secs(args.duration, 10.0, 1.0);
    let drain = Duration::from_secs_f64(args.drain.max(2.0));
    let prefix = run_prefix();

    let started = Instant::now();
    // Members, posters among them, go round-robin over the nodes: every node posts and delivers.
    let accounts = nodes.create_accounts(nodes.round_robin((0..members).map(|i| format!("{prefix}m{i}")))).await?;
    let room = nodes.at(accounts[0].node).create_room(&accounts[0].token, &format!("{prefix}room"), &accounts[1..]).await?;
    let sockets = nodes.connect_all(accounts.iter().map(|a| (a.token.clone(), a.node)).collect(), IDLE_READ_BUFFER).await?;
    log(format!("{members} members in room {room} on {} node(s), connected in {:.1} s", nodes.len(), started.elapsed().as_secs_f64()));

    let mut result = ScenarioResult::new(
        9,
        "room fan-out",
        json!({ "members": members, "posters": posters, "rate": rate, "runs": runs,
                "duration_s": duration.as_secs_f64(), "body_bytes": args.body_bytes }),
    );
    let padding = traffic::padding(args.body_bytes);
    let mut receivers = Vec::with_capacity(members);
    let mut senders = Vec::with_capacity(posters);
    for (index, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        if index < posters {
            senders.push(sink);
        } else {
            drop(sink);
        }
        receivers.push(stream);
    }
    // Each socket counts `receive_message` frames of this run and times them from the send time
    // the body carries; posters' sockets get acks for their own messages, not deliveries.
    let (run_tx, _) = tokio::sync::watch::channel(0u64);
    let counters: Vec<_> = receivers
        .into_iter()
        .map(|mut stream| {
            let mut run_rx = run_tx.subscribe();
            let (report_tx, report_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Latency)>();
            tokio::spawn(async move {
                let (mut count, mut latency, mut current) = (0u64, Latency::default(), 0u64);
                loop {
                    tokio::select! {
                        changed = run_rx.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            // A run number starts counting; the number past it ends the run.
                            let next = *run_rx.borrow();
                            if next == current + RUN_END {
                                let _ = report_tx.send((count, std::mem::take(&mut latency)));
                            }
                            count = 0;
                            latency = Latency::default();
                            current = next;
                        }
                        frame = stream.next() => {
                            let Some(Ok(WsMessage::Text(text))) = frame else {
                                if frame.is_none() { return; }
                                continue;
                            };
                            let Ok(frame) = crate::client::parse_frame(&text) else { continue };
                            if frame.kind != "receive_message" {
                                continue;
                            }
                            let Some((sent_ns, run, _)) = frame.message.as_ref().and_then(|m| crate::client::parse_body(&m.body)) else { continue };
                            if u64::from(run) == current {
                                count += 1;
                                latency.record_ns(now_ns().saturating_sub(sent_ns));
                            }
                        }
                    }
                }
            });
            report_rx
        })
        .collect();
    let mut counters = counters;
    for run in 1..=runs as u64 {
        run_tx.send_replace(run);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cpu = CpuMeter::start(args);
        let per_poster = rate / posters as f64;
        let interval = Duration::from_secs_f64(1.0 / per_poster);
        let sends = (per_poster * duration.as_secs_f64()).round() as u64;
        let tasks: Vec<_> = senders
            .drain(..)
            .enumerate()
            .map(|(poster, mut sink)| {
                let padding = padding.clone();
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    for seq in 0..sends {
                        ticker.tick().await;
                        let body = format!("t={} s={run} q={seq}{padding}", now_ns());
                        let client_id = format!("r{run}-p{poster}-{seq}");
                        let frame = json!({"type": "send_message", "conversation_id": room, "body": body, "client_id": client_id});
                        if sink.send(WsMessage::text(frame.to_string())).await.is_err() {
                            break;
                        }
                    }
                    sink
                })
            })
            .collect();
        for task in tasks {
            senders.push(task.await?);
        }
        tokio::time::sleep(drain).await;
        run_tx.send_replace(run + RUN_END);
        let mut delivered = 0u64;
        let mut latency = Latency::default();
        for counter in &mut counters {
            if let Some((count, samples)) = counter.recv().await {
                delivered += count;
                latency.merge(&samples);
            }
        }
        let sent = sends * posters as u64;
        let expected = sent * (members as u64 - 1);
        let mut figures = Figures::default();
        cpu.finish(delivered, &mut figures);
        for (per_message, per_delivery) in
            [("server_cpu_us_per_msg", "server_cpu_us_per_delivery"), ("postgres_cpu_us_per_msg", "postgres_cpu_us_per_delivery")]
        {
            if let Some(us) = figures.get(per_message) {
                figures.set(per_delivery, us);
            }
        }
        figures.set("messages", sent as f64);
        figures.set("deliveries", delivered as f64);
        figures.set("deliveries_per_s", delivered as f64 / duration.as_secs_f64());
        figures.set("lost", expected.saturating_sub(delivered) as f64);
        latency.add_to("rx", &mut figures);
        let mut failures = Vec::new();
        if delivered < expected {
            failures.push(format!("{} of {expected} deliveries missing", expected - delivered));
        }
        log(format!(
            "run {run}: {sent} messages, {delivered} deliveries ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms",
            figures.get("deliveries_per_s").unwrap_or(0.0),
            figures.get("rx_p50_ms").unwrap_or(0.0),
            figures.get("rx_p99_ms").unwrap_or(0.0)
        ));
        result.add_run(figures, failures);
    }
    Ok(result.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_processes_of_this_database_and_the_servers_own_count() {
        let db = "chatd_bench_1";
        assert!(postgres_process_counts("postgres: 15/main: postgres chatd_bench_1 127.0.0.1(50312) idle", db));
        assert!(postgres_process_counts("postgres: chatd chatd_bench_1 [local] INSERT", db));
        assert!(!postgres_process_counts("postgres: 15/main: postgres test 127.0.0.1(50400) idle", db));
        assert!(!postgres_process_counts("postgres: 15/main: postgres chatd_bench_12 127.0.0.1(50400) idle", db));
        assert!(postgres_process_counts("postgres: 15/main: autovacuum worker chatd_bench_1", db));
        assert!(!postgres_process_counts("postgres: 15/main: autovacuum worker test", db));
        assert!(postgres_process_counts("postgres: 15/main: checkpointer ", db));
        assert!(postgres_process_counts("postgres: walwriter", db));
        assert!(!postgres_process_counts("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", db));
    }

    #[test]
    fn cpu_seconds_from_a_stat_line() {
        let stat = "4242 (chatd (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert!(cpu_seconds(None).is_some());
        assert_eq!(total_cpu_seconds(&[]), None);
        assert_eq!(total_cpu_seconds(&[u32::MAX]), None);
    }
}
