//! chatd: a self-hosted one-to-one chat server. `main.rs` only parses the command line; everything
//! else lives here so that tests can drive it.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod monitoring;
pub mod realtime;
pub mod store;
pub mod telemetry;

pub use app::App;
pub use config::Config;
