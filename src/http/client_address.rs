//! Who is asking: the socket's peer address, or — only when that peer is a configured trusted
//! proxy — the nearest untrusted address in `X-Forwarded-For`. Forwarded headers from anyone else
//! are ignored, so clients cannot dodge per-address limits by inventing them.
use std::net::IpAddr;

use poem::{Endpoint, IntoResponse, Request, Response, Result};

use crate::App;

/// The client's address, attached to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// An address with a prefix length (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

pub fn parse_network(text: &str) -> Option<Network> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(Network { address, prefix })
}

pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Network]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer.to_canonical();
    }
    let Some(chain) = forwarded_for else { return peer.to_canonical() };
    let hops: Vec<IpAddr> = chain.split(',').filter_map(|hop| hop.trim().parse().ok()).collect();
    // Walk back from the proxy nearest to us; the first address we do not trust is the client.
    hops.iter().rev().copied().find(|ip| !is_trusted(*ip)).or(hops.first().copied()).unwrap_or(peer).to_canonical()
}

pub async fn attach<E: Endpoint>(next: E, mut req: Request) -> Result<Response> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let trusted: Vec<Network> = req
        .data::<App>()
        .map(|app| app.config.trusted_proxies.iter().filter_map(|p| parse_network(p)).collect())
        .unwrap_or_default();
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let address = client_address(peer, forwarded, &trusted);
    req.extensions_mut().insert(ClientAddress(address));
    Ok(next.call(req).await?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = vec![parse_network("10.0.0.0/8").unwrap(), parse_network("::1").unwrap()];
        assert_eq!(client_address(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_address(ip("10.1.2.3"), Some("1.2.3.4"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_address(ip("10.1.2.3"), Some("6.6.6.6, 1.2.3.4, 10.9.9.9"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_address(ip("::1"), Some("garbage"), &trusted), ip("::1"));
        assert_eq!(client_address(ip("10.1.2.3"), None, &trusted), ip("10.1.2.3"));
        assert_eq!(client_address(ip("::ffff:192.0.2.1"), None, &[]), ip("192.0.2.1"));
    }

    #[test]
    fn parses_networks() {
        assert!(parse_network("192.168.0.0/16").is_some());
        assert!(parse_network("2001:db8::/32").is_some());
        assert!(parse_network("10.0.0.1").is_some());
        assert!(parse_network("10.0.0.0/33").is_none());
        assert!(parse_network("proxy.local").is_none());
        assert!(parse_network("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    }
}
