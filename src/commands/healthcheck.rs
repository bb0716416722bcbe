//! `chatd healthcheck`: asks the configured server's `/api/ready` over loopback, so container
//! images need no curl.
use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;

pub async fn run(config: &Config, timeout_secs: u64) -> anyhow::Result<()> {
    let mut target = config.listen_addr();
    if target.ip().is_unspecified() {
        // Listening on every interface: ask over loopback.
        target = SocketAddr::new(if target.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() }, target.port());
    }
    let (status, body) = tokio::time::timeout(Duration::from_secs(timeout_secs), ready_status(target))
        .await
        .with_context(|| format!("no answer from {target} within {timeout_secs} s"))??;
    if status != 200 {
        bail!("{target} is not ready (HTTP {status}): the database does not answer");
    }
    let bus = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|b| b["bus"].as_str().map(str::to_owned));
    match bus.as_deref() {
        Some("none") | None => println!("ok: database ok"),
        Some(bus) => println!("ok: database ok, cluster bus {bus}"),
    }
    Ok(())
}

async fn ready_status(target: SocketAddr) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(target).await.with_context(|| format!("cannot connect to {target}"))?;
    stream
        .write_all(format!("GET /api/ready HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let head = String::from_utf8_lossy(&response);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{target} did not answer HTTP"))?;
    let body = head.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}
