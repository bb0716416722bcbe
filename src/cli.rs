//! The command line. Exit status: 0 success, 1 failure, 2 usage error.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chatd", version, about = "A self-hosted one-to-one chat server in one binary")]
pub struct Cli {
    /// Configuration file [default: ./config.toml when present]
    #[arg(short, long, global = true, env = "CHATD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve the API, the WebSocket and the web app on one port
    Serve,
    /// Manage accounts
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage rooms (the server picks up changes within a second, even while serving)
    Room {
        #[command(subcommand)]
        command: RoomCommand,
    },
    /// Manage the database schema
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Write every user, conversation and message as JSON Lines (consistent while serving)
    Export {
        /// Output file, or `-` for standard output; an existing file needs --force
        #[arg(short, long, default_value = "-", value_name = "FILE")]
        output: String,
        /// Overwrite FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Write a consistent snapshot of the database to FILE (safe while serving)
    Backup {
        /// Where to write the snapshot; an existing file needs --force
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Overwrite FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Read `chatd export` output into this database; running it twice changes nothing
    Import {
        /// JSON Lines from `chatd export`, or `-` for standard input
        #[arg(value_name = "FILE")]
        input: String,
    },
    /// Check or show the effective configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the OpenAPI document of the REST API
    Openapi,
    /// Print the AsyncAPI document of the WebSocket at /ws
    Asyncapi,
    /// Exit 0 when the configured server answers /api/ready (for container health checks)
    Healthcheck {
        /// Give up after this many seconds
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password comes from CHATD_PASSWORD, --password-stdin, or a prompt
    Add {
        /// Username: 3–32 characters of a-z, 0-9, _, . and -
        name: String,
        /// Make the account an administrator
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        /// Succeed without changes when the user already exists (for scripts)
        #[arg(long)]
        ignore_exists: bool,
    },
    /// List accounts
    List {
        /// One JSON object per account instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (same sources as `add`) and sign the user out everywhere
    Passwd {
        /// The account's username
        name: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account with its sessions and the messages it sent (asks first on a terminal)
    Remove {
        /// The account's username
        name: String,
        /// Do not ask for confirmation (for scripts)
        #[arg(long)]
        yes: bool,
    },
    /// Grant or take away administrator rights
    SetAdmin {
        /// The account's username
        name: String,
        /// `true` makes the account an administrator, `false` takes the rights away
        #[arg(action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
        admin: bool,
    },
    /// Block sign-in and end every session of the account
    Disable {
        /// The account's username
        name: String,
    },
    /// Allow a disabled account to sign in again
    Enable {
        /// The account's username
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration; warn about unknown CHATD_* variables and weak secrets
    Check,
    /// Print the effective configuration with secrets redacted
    Show {
        /// JSON instead of TOML
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (safe to run repeatedly)
    Migrate,
    /// List migrations and whether each is applied
    Status {
        /// One JSON object per migration
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// List every room: name, visibility, members, archived
    List {
        /// One JSON object per room instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Create a room owned by USER
    Create {
        /// The room's name: 1–80 characters, unique ignoring case
        name: String,
        /// Invisible to non-members (rooms are public by default)
        #[arg(long)]
        private: bool,
        /// Who owns the room
        #[arg(long, value_name = "USER")]
        owner: String,
        /// Someone to add (repeat for more)
        #[arg(long = "member", value_name = "USER")]
        members: Vec<String>,
        /// The room's topic
        #[arg(long)]
        topic: Option<String>,
    },
    /// Add people to a room
    Add {
        /// The room's name
        room: String,
        /// Usernames to add
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove people from a room
    Remove {
        /// The room's name
        room: String,
        /// Usernames to remove
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Make a room read-only (still readable and searchable)
    Archive {
        /// The room's name
        room: String,
    },
    /// Make an archived room writable again
    Unarchive {
        /// The room's name
        room: String,
    },
    /// Delete a room with all its messages
    Delete {
        /// The room's name
        room: String,
        /// Do not ask for confirmation (for scripts)
        #[arg(long)]
        yes: bool,
    },
}
