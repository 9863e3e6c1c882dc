//! The client address of a request behind reverse proxies: [`TrustedProxies`] says which
//! peers are the host's own proxies, and [`TrustedProxies::client_address`] takes the
//! client from `X-Forwarded-For` only when the peer is one of them.
//!
//! Off by default (no proxy is trusted): the client is the TCP peer, and
//! `X-Forwarded-For` is ignored, since any client can send one. With proxies configured,
//! the header is read from its right end (each proxy appends the address it received the
//! request from), skipping trusted proxies: the right-most entry that is not a trusted
//! proxy is the client. Entries left of it were written by the client or by proxies the
//! host does not run, and are never used, so a client cannot pick its own address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The header proxies append the address they received the request from to.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// A network: an address and a prefix length, such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Whether `ip` is in the network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
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

impl fmt::Display for IpNetwork {
    /// `address/prefix`, such as `10.0.0.0/8` or `192.168.1.7/32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// `text` is not an address or a network (`a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or an
/// IPv6 address with `/n`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or network (such as `10.0.0.0/8`)")]
pub struct ParseNetworkError(pub String);

impl FromStr for IpNetwork {
    type Err = ParseNetworkError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseNetworkError(text.to_owned());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address = canonical(address.parse::<IpAddr>().map_err(|_| error())?);
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| error())?,
            None => max,
        };
        if prefix > max {
            return Err(error());
        }
        Ok(Self { address, prefix })
    }
}

/// The host's own reverse proxies, whose `X-Forwarded-For` is believed.
///
/// Empty by default: the client address is the peer's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNetwork>,
}

impl FromStr for TrustedProxies {
    type Err = ParseNetworkError;

    /// A comma-separated list of addresses and networks, such as
    /// `10.0.0.0/8, 192.168.1.7, fd00::/8`; an empty string trusts no proxy.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let networks = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { networks })
    }
}

impl fmt::Display for TrustedProxies {
    /// The networks, comma-separated, as [`FromStr`] reads them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl TrustedProxies {
    /// Trusts the proxies in `networks`.
    pub fn new(networks: Vec<IpNetwork>) -> Self {
        Self { networks }
    }

    /// Whether no proxy is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(ip))
    }

    /// The client address of a request from `peer` (the TCP peer; `None` when the server
    /// does not know it, as in tests) carrying the `X-Forwarded-For` header values
    /// `forwarded_for`, in the order received.
    ///
    /// - No peer: `local`.
    /// - A peer that is not a trusted proxy: the peer, whatever the header says.
    /// - A trusted peer: the right-most entry of the header (all values joined, as HTTP
    ///   joins repeated headers) that is not a trusted proxy. An entry that is not an
    ///   address (`unknown`, garbage) stops the walk: the nearest trusted hop is the
    ///   client then, as it is when every entry is trusted or there is no header.
    pub fn client_address<'a>(&self, peer: Option<IpAddr>, forwarded_for: impl IntoIterator<Item = &'a str>) -> String {
        let Some(peer) = peer.map(canonical) else {
            return "local".to_owned();
        };
        if !self.trusts(peer) {
            return peer.to_string();
        }
        let entries: Vec<&str> = forwarded_for.into_iter().flat_map(|value| value.split(',')).collect();
        let mut nearest = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                break;
            };
            if !self.trusts(ip) {
                return ip.to_string();
            }
            nearest = ip;
        }
        nearest.to_string()
    }
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`a.b.c.d:p`,
/// `[v6]:p`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// An IPv4-mapped IPv6 address as its IPv4 address; any other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn networks_parse_and_contain() {
        let net: IpNetwork = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped IPv6");
        let one: IpNetwork = "192.168.1.7".parse().unwrap();
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let v6: IpNetwork = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()), "families do not mix");
        for bad in ["10.0.0.0/33", "::/129", "localhost", "10.0.0/8", "10.0.0.0/x", ""] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_parse_and_an_empty_one_trusts_nobody() {
        let proxies: TrustedProxies = " 10.0.0.0/8 , 192.168.1.7,fd00::/8 ".parse().unwrap();
        assert!(proxies.trusts("10.9.9.9".parse().unwrap()));
        assert!(proxies.trusts("192.168.1.7".parse().unwrap()));
        assert!(!proxies.trusts("192.168.1.8".parse().unwrap()));
        let err = "10.0.0.0/8, nope".parse::<TrustedProxies>().unwrap_err();
        assert_eq!(err.0, "nope");
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        assert_eq!(none.client_address(ip("203.0.113.9"), ["198.51.100.1"]), "203.0.113.9");
        assert_eq!(none.client_address(None, ["198.51.100.1"]), "local");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_even_with_proxies_configured() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            proxies.client_address(ip("203.0.113.9"), ["198.51.100.1"]),
            "203.0.113.9",
            "a client talking to the server directly cannot name another address"
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let peer = ip("10.0.0.2");
        // The client wrote `1.1.1.1` itself; the proxy appended the address it saw.
        assert_eq!(proxies.client_address(peer, ["1.1.1.1, 198.51.100.7"]), "198.51.100.7");
        // Two trusted hops, and the header repeated: values join in order.
        assert_eq!(
            proxies.client_address(peer, ["1.1.1.1, 198.51.100.7", "10.0.0.5"]),
            "198.51.100.7"
        );
        // Ports and IPv6 brackets are allowed; mapped addresses are shown as IPv4.
        assert_eq!(proxies.client_address(peer, ["198.51.100.7:4711"]), "198.51.100.7");
        assert_eq!(proxies.client_address(peer, ["[2001:db8::1]:443"]), "2001:db8::1");
        assert_eq!(proxies.client_address(peer, ["::ffff:198.51.100.7"]), "198.51.100.7");
        // No header, every entry trusted, or garbage next to the proxy: the nearest
        // trusted hop.
        assert_eq!(proxies.client_address(peer, std::iter::empty()), "10.0.0.2");
        assert_eq!(proxies.client_address(peer, ["10.0.0.9"]), "10.0.0.9");
        assert_eq!(proxies.client_address(peer, ["1.1.1.1, unknown, 10.0.0.9"]), "10.0.0.9");
    }
}
