//! `chatd-bench`: creates users, opens sockets and drives chat traffic against a chatd server on
//! loopback, timing every message; also runs the suite's non-traffic scenarios and writes reports.
#![forbid(unsafe_code)]

mod client;
mod report;
mod scenarios;
mod stats;
mod traffic;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chatd-bench", version, about = "Load generator and benchmark suite for chatd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one scenario (1–9, see docs/benchmarks.md) and prints its figures as JSON on stdout.
    Scenario(ScenarioArgs),
    /// Waits (at most `--timeout` seconds) until every server answers `GET /api/ready` with 200.
    WaitReady {
        /// One server, or several separated by commas.
        #[arg(long, default_value = "http://127.0.0.1:38000", value_delimiter = ',')]
        url: Vec<String>,
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Stop waiting as soon as this process has exited.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Prints a loopback TCP port that is free right now.
    FreePort,
    /// Combines scenario results into one JSON file and prints the markdown table.
    Report {
        /// Where to write the combined JSON.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "")]
        commit: String,
        #[arg(long, default_value = "")]
        date: String,
        /// The command that produced the results, recorded as is.
        #[arg(long, default_value = "")]
        command: String,
        /// The results come from a smoke run: print them without judging them against the targets
        #[arg(long)]
        smoke: bool,
        /// The servers' storage: results of another backend or node count in the same file are kept.
        #[arg(long, default_value = "sqlite")]
        backend: String,
        /// How many `chatd serve` nodes the scenarios ran against.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// The JSON files `chatd-bench scenario` printed.
        files: Vec<PathBuf>,
    },
}

/// Every flag of every scenario; each scenario reads the ones it needs. Unset sizes take the
/// scenario's full default, or its small default with `--smoke`.
#[derive(Args, Clone, Debug)]
pub struct ScenarioArgs {
    /// Scenario number, 1–9.
    #[arg(value_parser = clap::value_parser!(u8).range(1..=9))]
    pub number: u8,
    /// The server, as http://IP:PORT on a loopback address; the nodes of a cluster separated by
    /// commas, over which users are spread round-robin (a pair's sender and receiver on different nodes).
    #[arg(long, default_value = "http://127.0.0.1:38000", value_delimiter = ',')]
    pub url: Vec<String>,
    /// Small counts and short durations: the whole scenario takes a few seconds.
    #[arg(long)]
    pub smoke: bool,
    /// Measurement runs; figures are the medians across them.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Sender → receiver pairs (scenarios 1, 2, 3, 5, 6).
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Unacked messages each sender may have in flight (scenarios 1, 2; seeding in 5).
    #[arg(long)]
    pub window: Option<u64>,
    /// Open-loop rate in messages per second over all pairs (scenarios 3, 6).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured seconds per run.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Unmeasured seconds of traffic before each run's measurement.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Seconds to wait for outstanding acks and deliveries once sending stops.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Approximate size of each message body in bytes.
    #[arg(long, default_value_t = 32)]
    pub body_bytes: usize,
    /// Extra users connected and idle during the traffic (scenarios 3, 6).
    #[arg(long)]
    pub idle: Option<usize>,
    /// Idle authenticated sockets to open (scenario 4).
    #[arg(long)]
    pub sockets: Option<usize>,
    /// Users the idle sockets belong to, each holding several (scenario 4).
    #[arg(long)]
    pub socket_users: Option<usize>,
    /// Pings to time once every socket is open (scenario 4).
    #[arg(long)]
    pub pings: Option<usize>,
    /// Messages to store before timing history pages (scenario 5); 10,000,000 unless --smoke.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent history requests (scenario 5).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Concurrent sign-ins in the storm (scenario 6).
    #[arg(long)]
    pub storm: Option<usize>,
    /// Seconds of chat traffic counted as "during the storm" (scenario 6).
    #[arg(long)]
    pub storm_window: Option<f64>,
    /// Members of the room, each with an open socket (scenario 9).
    #[arg(long)]
    pub members: Option<usize>,
    /// Members who post in the room (scenario 9).
    #[arg(long)]
    pub posters: Option<usize>,
    /// The servers' process ids, separated by commas, to read their CPU and memory (summed).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// The PostgreSQL database the servers use: the CPU of its backends and of PostgreSQL's
    /// background processes is reported beside the servers'.
    #[arg(long)]
    pub postgres_db: Option<String>,
    /// The chatd binary (scenarios 7, 8).
    #[arg(long, default_value = "target/release/chatd")]
    pub chatd: PathBuf,
    /// A data directory holding a seeded database (scenario 7); it is started as is.
    #[arg(long)]
    pub seeded_data_dir: Option<PathBuf>,
}

impl ScenarioArgs {
    /// `full` normally, `smoke` with `--smoke`, unless the flag was given.
    pub fn pick<T: Copy>(&self, flag: Option<T>, full: T, smoke: T) -> T {
        flag.unwrap_or(if self.smoke { smoke } else { full })
    }

    pub fn secs(&self, flag: Option<f64>, full: f64, smoke: f64) -> Duration {
        Duration::from_secs_f64(self.pick(flag, full, smoke).clamp(0.0, 3600.0))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    stats::clock_origin();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Scenario(args) => scenarios::run(args).await,
            Command::WaitReady { url, timeout, pid } => scenarios::wait_ready(&url, timeout, pid).await.map(|()| true),
            Command::FreePort => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| {
                    println!("{}", a.port());
                    true
                })
                .map_err(Into::into),
            Command::Report { out, commit, date, command, smoke, backend, nodes, files } => {
                let setup = report::Setup { backend, nodes };
                report::write(&out, &commit, &date, &command, smoke, &setup, &files).map(|()| true)
            }
        }
    });
    // Idle sockets and tasks may still be open; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("chatd-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
