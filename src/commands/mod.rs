//! The subcommands. Each is a thin adapter over the same services the HTTP API uses.
mod backup;
mod config_cmd;
mod db;
mod export;
mod healthcheck;
mod import;
mod room;
mod serve;
mod user;

use crate::{
    cli::{Cli, Command},
    config::Config,
};



pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        println!("{}", crate::http::api::document());
        return Ok(());
    }
    if let Command::Asyncapi = cli.command {
        println!("{}", crate::realtime::asyncapi::document());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    crate::telemetry::init(&config.log);
    match cli.command {
        Command::Serve => serve::serve(config).await,
        Command::User { command } => user::run(config, command).await,
        Command::Db { command } => db::run(config, command).await,
        Command::Export { output, force } => export::run(config, &output, force).await,
        Command::Backup { output, force } => backup::run(config, &output, force).await,
        Command::Import { input } => import::run(config, &input).await,
        Command::Room { command } => room::run(config, command).await,
        Command::Config { command } => config_cmd::run(&config, cli.config.as_deref(), command),
        Command::Healthcheck { timeout } => healthcheck::run(&config, timeout).await,
        Command::Openapi | Command::Asyncapi => unreachable!("handled above"),
    }
}
