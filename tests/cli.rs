//! CLI tests: the real `chatd` binary against a temporary data directory — accounts, schema,
//! export, the spec, usage errors, and `serve` signing in the accounts the CLI created.
#[path = "common/openapi.rs"]
mod openapi;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use assert_cmd::{Command, cargo::CommandCargoExt};
use serde_json::{Value, json};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";

/// A temporary data directory, also used as the working directory so that no stray
/// `config.toml` or `CHATD_*` variable from the environment leaks in.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `chatd ARGS` with only this sandbox's configuration.
    fn chatd(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("chatd").expect("the chatd binary is built");
        isolate(command.current_dir(self.path()), self.path());
        command.args(args);
        command
    }

    /// Creates a user with the password from `CHATD_PASSWORD`, asserting success.
    fn add_user(&self, name: &str, password: &str, admin: bool) {
        let mut args = vec!["user", "add", name];
        if admin {
            args.push("--admin");
        }
        self.chatd(&args).env("CHATD_PASSWORD", password).assert().success();
    }

    /// Starts `chatd serve` on a free port and waits until `/api/health` answers.
    async fn serve(&self) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log_path = self.path().join("serve.log");
        let log = fs::File::create(&log_path).unwrap();
        let mut command = std::process::Command::cargo_bin("chatd").expect("the chatd binary is built");
        isolate(&mut command, self.path());
        let child = command
            .arg("serve")
            .env("CHATD_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chatd serve starts");
        let mut served = Served { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new(), log_path };
        served.wait_until_healthy().await;
        served
    }
}

/// Keeps the child's configuration to the sandbox: no inherited `CHATD_*`, no repo `config.toml`.
fn isolate<C: EnvCommand>(command: &mut C, data_dir: &Path) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHATD_") {
            command.remove_env(&key);
        }
    }
    command.set_env("CHATD_DATA_DIR", data_dir.as_os_str());
    command.set_dir(data_dir);
}

/// The bits of `std::process::Command` and `assert_cmd::Command` that `isolate` needs.
trait EnvCommand {
    fn remove_env(&mut self, key: &std::ffi::OsStr);
    fn set_env(&mut self, key: &str, value: &std::ffi::OsStr);
    fn set_dir(&mut self, dir: &Path);
}

impl EnvCommand for Command {
    fn remove_env(&mut self, key: &std::ffi::OsStr) {
        self.env_remove(key);
    }
    fn set_env(&mut self, key: &str, value: &std::ffi::OsStr) {
        self.env(key, value);
    }
    fn set_dir(&mut self, dir: &Path) {
        self.current_dir(dir);
    }
}

impl EnvCommand for std::process::Command {
    fn remove_env(&mut self, key: &std::ffi::OsStr) {
        self.env_remove(key);
    }
    fn set_env(&mut self, key: &str, value: &std::ffi::OsStr) {
        self.env(key, value);
    }
    fn set_dir(&mut self, dir: &Path) {
        self.current_dir(dir);
    }
}

/// A running `chatd serve`; killed when dropped.
struct Served {
    child: Child,
    base: String,
    http: reqwest::Client,
    log_path: PathBuf,
}

impl Served {
    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("chatd serve exited early ({status}):\n{}", self.log());
            }
            if let Ok(response) = self.http.get(self.url("/api/health")).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "chatd serve did not become healthy:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        checked("POST", request.send().await.expect("request")).await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        checked("GET", self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request")).await
    }

    async fn signin(&self, name: &str, password: &str) -> (u16, Value) {
        self.post("/api/signin", None, json!({"username": name, "password": password})).await
    }

    async fn token(&self, name: &str, password: &str) -> String {
        let (status, body) = self.signin(name, password).await;
        assert_eq!(status, 200, "sign-in of {name}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// SIGTERM, then the exit status (a clean shutdown is a success).
    fn terminate(&mut self) -> ExitStatus {
        let sent = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "chatd serve did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

// ---------------------------------------------------------------------------------------------
// chatd user add

#[tokio::test]
async fn user_add_with_the_password_from_the_environment_can_sign_in() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["user", "add", "alice"]).env("CHATD_PASSWORD", PASSWORD).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stdout_of(&output).is_empty(), "diagnostics go to stderr: {}", stdout_of(&output));
    assert!(stderr_of(&output).contains("alice"), "{}", stderr_of(&output));

    let mut served = sandbox.serve().await;
    let (status, token) = served.signin("alice", PASSWORD).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    let (status, me) = served.get("/api/me", token["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["is_admin"], false);
    let (status, error) = served.signin("alice", "not the password").await;
    assert_eq!((status, error["code"].as_str()), (401, Some("invalid_credentials")));

    let status = served.terminate();
    assert!(status.success(), "SIGTERM stops serve cleanly: {status}\n{}", served.log());
}

#[tokio::test]
async fn user_add_reads_the_password_from_stdin() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["user", "add", "bob", "--password-stdin"]).write_stdin(format!("{PASSWORD}\n")).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stdout_of(&output).is_empty());
    // Only the first line counts, and --password-stdin wins over the environment.
    sandbox
        .chatd(&["user", "add", "carol", "--password-stdin"])
        .env("CHATD_PASSWORD", "the environment's password")
        .write_stdin("carol's own password\r\nsecond line\n")
        .assert()
        .success();
    let output = sandbox.chatd(&["user", "add", "dave", "--password-stdin"]).write_stdin("").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "empty stdin is a failure");
    assert!(stderr_of(&output).contains("password"), "{}", stderr_of(&output));

    let served = sandbox.serve().await;
    assert_eq!(served.signin("bob", PASSWORD).await.0, 200);
    assert_eq!(served.signin("carol", "carol's own password").await.0, 200);
    assert_eq!(served.signin("carol", "the environment's password").await.0, 401);
    assert_eq!(served.signin("dave", "").await.0, 401, "dave was not created");
}

#[test]
fn user_add_without_a_password_source_fails_clearly() {
    let sandbox = Sandbox::new();
    // Standard input is not a terminal here and CHATD_PASSWORD is not set.
    let output = sandbox.chatd(&["user", "add", "alice"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout_of(&output).is_empty());
    let stderr = stderr_of(&output);
    assert!(stderr.contains("CHATD_PASSWORD") && stderr.contains("--password-stdin"), "says how to give one: {stderr}");
    // Nothing was created: the same name can still be added.
    sandbox.add_user("alice", PASSWORD, false);
}

#[test]
fn user_add_refuses_duplicates_and_invalid_input() {
    let sandbox = Sandbox::new();
    sandbox.add_user("alice", PASSWORD, false);
    for (name, password, expect) in [
        ("alice", PASSWORD, "taken"),
        ("ALICE", PASSWORD, "taken"),
        ("x", PASSWORD, "3 characters"),
        ("not valid!", PASSWORD, "a-z"),
        ("bob", "short", "8 characters"),
    ] {
        let output = sandbox.chatd(&["user", "add", name]).env("CHATD_PASSWORD", password).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr_of(&output));
        assert!(stdout_of(&output).is_empty());
        let stderr = stderr_of(&output);
        assert!(stderr.contains(expect), "{name}: {stderr}");
        assert!(!stderr.contains("horse") && !stderr.contains("short"), "never echoes the password: {stderr}");
    }
}

#[test]
fn passwords_are_never_command_line_arguments() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["user", "add", "alice", "--password", PASSWORD]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
}

#[tokio::test]
async fn the_admin_flag_shows_in_me() {
    let sandbox = Sandbox::new();
    sandbox.add_user("root", PASSWORD, true);
    sandbox.add_user("plain", PASSWORD, false);
    let served = sandbox.serve().await;
    let (_, me) = served.get("/api/me", &served.token("root", PASSWORD).await).await;
    assert_eq!((me["username"].as_str(), &me["is_admin"]), (Some("root"), &json!(true)));
    let (_, me) = served.get("/api/me", &served.token("plain", PASSWORD).await).await;
    assert_eq!((me["username"].as_str(), &me["is_admin"]), (Some("plain"), &json!(false)));
}

// ---------------------------------------------------------------------------------------------
// chatd db

/// The schema's first migrations; later ones may be added, each `mYYYYMMDD_NNNNNN_name`.
const FIRST_MIGRATIONS: [&str; 3] = [
    "m20261124_000001_create_users",
    "m20261124_000002_create_sessions",
    "m20261124_000003_create_conversations_and_messages",
];

fn is_migration_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.len() > 17
        && bytes[0] == b'm'
        && bytes[1..9].iter().all(u8::is_ascii_digit)
        && bytes[9] == b'_'
        && bytes[10..16].iter().all(u8::is_ascii_digit)
        && bytes[16] == b'_'
}

/// `chatd db status` as (state, name) pairs.
fn db_status(sandbox: &Sandbox) -> Vec<(String, String)> {
    let output = sandbox.chatd(&["db", "status"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    stdout_of(&output)
        .lines()
        .map(|line| {
            let (state, name) = line.split_once('\t').unwrap_or_else(|| panic!("not `state<TAB>name`: {line:?}"));
            (state.to_owned(), name.to_owned())
        })
        .collect()
}

#[test]
fn db_migrate_runs_twice_and_status_lists_every_migration() {
    let sandbox = Sandbox::new();
    // An empty file is an SQLite database with nothing applied yet.
    fs::write(sandbox.path().join("chat.db"), "").unwrap();
    let before = db_status(&sandbox);
    let expected: Vec<String> = before.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(expected[..3], FIRST_MIGRATIONS, "oldest first");
    assert!(expected.iter().all(|n| is_migration_name(n)), "{expected:?}");
    assert!(expected.windows(2).all(|w| w[0] < w[1]), "in order, no duplicates: {expected:?}");
    assert!(before.iter().all(|(state, _)| state == "pending"), "a new database has nothing applied: {before:?}");

    for _ in 0..2 {
        let output = sandbox.chatd(&["db", "migrate"]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert!(stdout_of(&output).is_empty(), "diagnostics go to stderr");
    }
    let after = db_status(&sandbox);
    assert_eq!(after.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(), expected);
    assert!(after.iter().all(|(state, _)| state == "applied"), "{after:?}");
    assert!(sandbox.path().join("chat.db").is_file(), "the database lives in the data directory");
}

#[test]
fn db_status_without_a_database_fails_and_creates_nothing() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("not-yet");
    let output = sandbox.chatd(&["db", "status"]).env("CHATD_DATA_DIR", &missing).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(&format!("no database at {}", missing.join("chat.db").display())), "{stderr}");
    assert!(!missing.exists(), "status created the data directory");

    let output = sandbox.chatd(&["db", "status", "--json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "an existing data directory without chat.db: {}", stderr_of(&output));
    assert!(!sandbox.path().join("chat.db").exists(), "status created a database");
}

// ---------------------------------------------------------------------------------------------
// chatd serve: the first start

#[test]
fn the_first_start_logs_where_it_created_the_database_and_the_token_secret() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["user", "add", "alice"]).env("CHATD_PASSWORD", PASSWORD).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    let database = sandbox.path().join("chat.db");
    let secret = sandbox.path().join("jwt-secret");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("created a new, empty database") && l.contains(&database.display().to_string())),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.contains("generated the token-signing secret") && l.contains(&secret.display().to_string())),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "no colour codes when stderr is not a terminal: {stderr:?}");

    let again = sandbox.chatd(&["user", "add", "bob"]).env("CHATD_PASSWORD", PASSWORD).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    let stderr = stderr_of(&again);
    assert!(!stderr.contains("created a new") && !stderr.contains("generated the"), "only the first start says so: {stderr}");
}

#[test]
fn serve_on_a_taken_port_says_how_to_pick_another() {
    let sandbox = Sandbox::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let output = sandbox.chatd(&["serve"]).env("CHATD_LISTEN", address.to_string()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(&format!("cannot listen on {address}")) && stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains("CHATD_LISTEN=127.0.0.1:") && stderr.contains("`listen = "), "names both ways to choose a port: {stderr}");
}

#[tokio::test]
async fn the_request_log_gives_durations_in_hundredths_of_a_millisecond() {
    let sandbox = Sandbox::new();
    let mut served = sandbox.serve().await;
    for _ in 0..5 {
        served.http.get(served.url("/api/health")).send().await.unwrap();
    }
    served.terminate();
    let log = served.log();
    let durations: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("path=\"/api/health\""))
        .map(|l| l.split("duration_ms=").nth(1).expect("a duration").split_whitespace().next().unwrap())
        .collect();
    assert!(durations.len() >= 5, "{log}");
    for duration in durations {
        let (whole, fraction) = duration.split_once('.').unwrap_or((duration, ""));
        assert!(whole.parse::<u64>().is_ok() && fraction.len() <= 2 && fraction.chars().all(|c| c.is_ascii_digit()), "{duration}");
    }
    assert!(!log.contains('\x1b'), "no colour codes in a log file");
}

// ---------------------------------------------------------------------------------------------
// chatd import beside a running server

#[tokio::test]
async fn import_and_a_second_server_refuse_while_serve_uses_the_database() {
    let sandbox = Sandbox::new();
    sandbox.add_user("alice", PASSWORD, false);
    let export = sandbox.path().join("export.jsonl");
    sandbox.chatd(&["export", "-o", export.to_str().unwrap()]).assert().success();
    let mut served = sandbox.serve().await;

    let output = sandbox.chatd(&["import", export.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    let pid = served.child.id();
    assert!(stderr.contains(&format!("chatd serve (pid {pid}) is using the database")), "{stderr}");
    assert!(stderr.contains("stop it"), "{stderr}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = sandbox.chatd(&["serve"]).env("CHATD_LISTEN", format!("127.0.0.1:{port}")).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "a second server on the same database");
    assert!(stderr_of(&output).contains("one server per database"), "{}", stderr_of(&output));

    assert!(served.terminate().success());
    let output = sandbox.chatd(&["import", export.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "once the server is stopped: {}", stderr_of(&output));
    assert!(stderr_of(&output).contains("1 already present"), "{}", stderr_of(&output));
}

// ---------------------------------------------------------------------------------------------
// chatd user remove, set-admin

#[tokio::test]
async fn user_remove_says_what_it_deletes_and_needs_yes_without_a_terminal() {
    let sandbox = Sandbox::new();
    sandbox.add_user("alice", PASSWORD, false);
    sandbox.add_user("bob", PASSWORD, false);
    sandbox.add_user("carol", PASSWORD, false);
    let served = sandbox.serve().await;
    let alice = served.token("alice", PASSWORD).await;
    for (to, n) in [("bob", 0), ("bob", 1), ("carol", 2)] {
        let (status, _) = served.post(&format!("/api/messages/{to}"), Some(&alice), json!({"body": "hi", "client_id": format!("r-{n}")})).await;
        assert_eq!(status, 201);
    }

    // Standard input here is not a terminal, so nothing can be asked.
    let output = sandbox.chatd(&["user", "remove", "alice"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("3 message(s)") && stderr.contains("2 conversation(s)"), "says what would go: {stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(served.signin("alice", PASSWORD).await.0, 200, "nothing was removed");

    let output = sandbox.chatd(&["user", "remove", "alice", "--yes"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("removed user alice and 3 message(s)"), "{}", stderr_of(&output));
    assert_eq!(served.signin("alice", PASSWORD).await.0, 401);
    let bob = served.token("bob", PASSWORD).await;
    let (status, history) = served.get("/api/messages/alice", &bob).await;
    assert_eq!(status, 404, "{history}");
}

#[test]
fn set_admin_documents_its_arguments_and_accepts_exactly_true_or_false() {
    let sandbox = Sandbox::new();
    sandbox.add_user("alice", PASSWORD, false);
    let help = stdout_of(&sandbox.chatd(&["user", "set-admin", "--help"]).output().unwrap());
    let described = |help: &str, argument: &str, text: &str| {
        help.lines().any(|l| l.trim_start().starts_with(argument) && l.contains(text))
    };
    assert!(described(&help, "<NAME>", "The account's username"), "{help}");
    assert!(described(&help, "<ADMIN>", "`true` makes the account an administrator"), "{help}");
    assert!(help.contains("[possible values: true, false]"), "{help}");
    for value in ["yes", "no", "0", "1", "off", "on", "TRUE"] {
        let output = sandbox.chatd(&["user", "set-admin", "alice", value]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{value} is not in the help: {}", stderr_of(&output));
    }
    sandbox.chatd(&["user", "set-admin", "alice", "true"]).assert().success();
    let listed = stdout_of(&sandbox.chatd(&["user", "list", "--json"]).output().unwrap());
    let alice: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(alice["is_admin"], true);
    for command in ["passwd", "remove", "disable", "enable"] {
        let help = stdout_of(&sandbox.chatd(&["user", command, "--help"]).output().unwrap());
        assert!(described(&help, "<NAME>", "The account's username"), "{command}: {help}");
    }
}

// ---------------------------------------------------------------------------------------------
// chatd config check

#[test]
fn config_check_warns_about_unknown_keys_and_tables_in_the_file() {
    let sandbox = Sandbox::new();
    fs::write(
        sandbox.path().join("config.toml"),
        "listen_port = 3\n[databse]\nurl = \"sqlite://x.db\"\n[database]\nsynchronus = \"full\"\n[log]\nlevel = \"info\"\n",
    )
    .unwrap();
    let output = sandbox.chatd(&["config", "check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "unknown keys are warnings: {}", stderr_of(&output));
    let stderr = stderr_of(&output);
    for warning in [
        "unknown key `listen_port` in config.toml is ignored (did you mean `listen`?)",
        "unknown table [databse] in config.toml is ignored (did you mean `database`?)",
        "unknown key `database.synchronus` in config.toml is ignored (did you mean `database.synchronous`?)",
    ] {
        assert!(stderr.contains(warning), "{warning}\n{stderr}");
    }
    assert!(stderr.contains("(3 warning(s))") && !stderr.contains("`log"), "known keys pass: {stderr}");

    // The same goes for a file named with -c, and no hint when nothing is close.
    fs::write(sandbox.path().join("other.toml"), "frobnicate = true\n").unwrap();
    let output = sandbox.chatd(&["-c", "other.toml", "config", "check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("unknown key `frobnicate` in other.toml is ignored\n"), "{}", stderr_of(&output));
}

// ---------------------------------------------------------------------------------------------
// chatd export

#[tokio::test]
async fn export_writes_json_lines_in_id_order() {
    let sandbox = Sandbox::new();
    for name in ["alice", "bob", "carol"] {
        sandbox.add_user(name, PASSWORD, name == "alice");
    }
    let served = sandbox.serve().await;
    let alice = served.token("alice", PASSWORD).await;
    let bob = served.token("bob", PASSWORD).await;
    let mut sent = Vec::new();
    for (i, (token, to)) in [(&alice, "bob"), (&bob, "alice"), (&alice, "carol"), (&alice, "bob")].into_iter().enumerate() {
        let (status, message) =
            served.post(&format!("/api/messages/{to}"), Some(token), json!({"body": format!("message {i}"), "client_id": format!("e-{i}")})).await;
        assert_eq!(status, 201, "{message}");
        sent.push(message);
    }

    // While the server runs: to standard output, and to a file.
    let output = sandbox.chatd(&["export"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let to_stdout = stdout_of(&output);
    let dash = sandbox.chatd(&["export", "-o", "-"]).output().unwrap();
    assert_eq!(dash.status.code(), Some(0));
    let file = sandbox.path().join("backup.jsonl");
    let output = sandbox.chatd(&["export", "-o", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stdout_of(&output).is_empty(), "with -o nothing goes to stdout");
    let to_file = fs::read_to_string(&file).unwrap();
    let output = sandbox.chatd(&["export", "--output", "second.jsonl"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "a relative path works: {}", stderr_of(&output));

    for export in [&to_stdout, &stdout_of(&dash), &to_file] {
        let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
        check_export(&lines, &sent);
    }
    let without_time = |export: &str| export.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(without_time(&to_stdout), without_time(&to_file), "both destinations get the same export");
    assert!(!to_stdout.contains("argon2"), "no password hash anywhere");
}

fn check_export(lines: &[Value], sent: &[Value]) {
    assert_eq!(lines[0]["type"], "version", "{}", lines[0]);
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    let users: Vec<&Value> = lines.iter().filter(|l| l["type"] == "user").collect();
    let conversations: Vec<&Value> = lines.iter().filter(|l| l["type"] == "conversation").collect();
    let messages: Vec<&Value> = lines.iter().filter(|l| l["type"] == "message").collect();
    let periods: Vec<&Value> = lines.iter().filter(|l| l["type"] == "membership").collect();
    // version, then users, then conversations, then messages, then membership periods.
    let mut expected_kinds = vec!["version"];
    expected_kinds.extend(std::iter::repeat_n("user", users.len()));
    expected_kinds.extend(std::iter::repeat_n("conversation", conversations.len()));
    expected_kinds.extend(std::iter::repeat_n("message", messages.len()));
    expected_kinds.extend(std::iter::repeat_n("membership", periods.len()));
    assert_eq!(kinds, expected_kinds);
    assert_eq!(periods.len(), 4, "two members of each direct conversation, each from the start");
    assert!(periods.iter().all(|p| p["since_id"] == 0 && p["until_id"].is_null()), "{periods:?}");

    assert_eq!(users.iter().map(|u| u["username"].as_str().unwrap()).collect::<Vec<_>>(), ["alice", "bob", "carol"]);
    for user in &users {
        for key in user.as_object().unwrap().keys() {
            assert!(!key.contains("password") && !key.contains("hash"), "a user line has {key}: {user}");
        }
    }
    assert_eq!(users[0]["is_admin"], true);
    assert_eq!(users[1]["is_admin"], false);
    assert_eq!(conversations.len(), 2, "alice–bob and alice–carol");
    let mut members: Vec<Vec<&str>> = conversations
        .iter()
        .map(|c| c["members"].as_array().unwrap().iter().map(|m| m["username"].as_str().or(m.as_str()).unwrap()).collect())
        .collect();
    members.iter_mut().for_each(|m| m.sort());
    members.sort();
    assert_eq!(members, [["alice", "bob"], ["alice", "carol"]]);

    for list in [&users, &conversations, &messages] {
        let ids: Vec<i64> = list.iter().map(|l| l["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
    }
    assert_eq!(messages.len(), sent.len());
    for (line, message) in messages.iter().zip(sent) {
        assert_eq!(line["id"], message["id"]);
        assert_eq!(line["from"], message["from"]);
        assert_eq!(line["body"], message["body"]);
        assert_eq!(line["client_id"], message["client_id"]);
        assert_eq!(line["created_at"], message["created_at"]);
    }
}

#[test]
fn export_and_backup_overwrite_an_existing_file_only_with_force() {
    let sandbox = Sandbox::new();
    sandbox.add_user("alice", PASSWORD, false);
    for (command, file) in [("export", "data.jsonl"), ("backup", "copy.db")] {
        fs::write(sandbox.path().join(file), "keep me").unwrap();
        let output = sandbox.chatd(&[command, "-o", file]).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{command}");
        assert!(stderr_of(&output).contains(&format!("{file} already exists")) && stderr_of(&output).contains("--force"), "{command}: {}", stderr_of(&output));
        assert_eq!(fs::read_to_string(sandbox.path().join(file)).unwrap(), "keep me", "{command} left the file alone");

        let output = sandbox.chatd(&[command, "-o", file, "--force"]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{command}: {}", stderr_of(&output));
        assert_ne!(fs::read(sandbox.path().join(file)).unwrap(), b"keep me", "{command} --force replaced the file");
    }
    assert!(fs::read_to_string(sandbox.path().join("data.jsonl")).unwrap().contains("\"alice\""));
    let restored = Sandbox::new();
    fs::copy(sandbox.path().join("copy.db"), restored.path().join("chat.db")).unwrap();
    let listed = stdout_of(&restored.chatd(&["user", "list"]).output().unwrap());
    assert!(listed.contains("alice"), "the forced backup is a real database: {listed}");
}

#[test]
fn export_of_an_empty_database_is_just_the_version_line() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["export"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let version: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(version["type"], "version");
    // An unwritable destination is a failure, not a silent success.
    let output = sandbox.chatd(&["export", "-o", "no/such/dir/out.jsonl"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(!stderr_of(&output).is_empty());
}

// ---------------------------------------------------------------------------------------------
// chatd openapi, usage

#[tokio::test]
async fn openapi_prints_the_servers_spec() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["openapi"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let spec: Value = serde_json::from_str(&stdout_of(&output)).expect("the spec is JSON");
    assert!(spec["openapi"].is_string(), "has an `openapi` version key");
    assert!(spec["paths"]["/api/signup"]["post"].is_object());
    assert!(!sandbox.path().join("chat.db").exists(), "printing the spec touches no database");

    let served = sandbox.serve().await;
    let live: Value = served.http.get(served.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec, live, "the printed spec is the one the server serves");
}

#[test]
fn usage_errors_exit_with_2() {
    let sandbox = Sandbox::new();
    for args in [
        vec!["frobnicate"],
        vec![],
        vec!["user"],
        vec!["user", "add"],
        vec!["user", "frobnicate", "alice"],
        vec!["db"],
        vec!["serve", "--no-such-flag"],
        vec!["export", "-o"],
    ] {
        let output = sandbox.chatd(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr_of(&output));
        assert!(stdout_of(&output).is_empty(), "{args:?}: usage errors go to stderr");
        assert!(!stderr_of(&output).is_empty(), "{args:?}");
    }
}

#[test]
fn help_exits_0_and_lists_the_commands() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["--help"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = stdout_of(&output);
    for command in ["serve", "user", "db", "export", "openapi"] {
        assert!(help.contains(command), "--help mentions {command}: {help}");
    }
    for args in [["user", "--help"], ["db", "--help"]] {
        assert_eq!(sandbox.chatd(&args).output().unwrap().status.code(), Some(0), "{args:?}");
    }
    let output = sandbox.chatd(&["--version"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout_of(&output).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_configuration_fails_with_1() {
    let sandbox = Sandbox::new();
    let output = sandbox.chatd(&["serve"]).env("CHATD_LISTEN", "not an address").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("listen"), "{}", stderr_of(&output));
    let output = sandbox.chatd(&["db", "status", "-c", "missing.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("missing.toml"), "{}", stderr_of(&output));
    let output = sandbox.chatd(&["serve"]).env("CHATD_DATABASE__WAL_BUDGET_MIB", "1").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("database.wal_budget_mib"), "{}", stderr_of(&output));
}

/// The status and JSON body (null when empty) of a response, checked against the OpenAPI document.
async fn checked(method: &str, response: reqwest::Response) -> (u16, Value) {
    let (status, path, headers) = (response.status().as_u16(), response.url().path().to_owned(), response.headers().clone());
    let text = response.text().await.unwrap_or_default();
    (status, openapi::checked_body(method, &path, status, &headers, text))
}
