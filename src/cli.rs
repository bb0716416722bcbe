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
    /// Manage the database schema
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Write every user, conversation and message as JSON Lines (consistent while serving)
    Export {
        /// Output file, or `-` for standard output
        #[arg(short, long, default_value = "-", value_name = "FILE")]
        output: String,
    },
    /// Print the OpenAPI document of the REST API
    Openapi,
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
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (safe to run repeatedly)
    Migrate,
    /// List migrations and whether each is applied
    Status,
}
