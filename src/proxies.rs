//! Clients behind a reverse proxy (`--trusted-proxies`): which peers may say who the client
//! is, and what they say. Only a connection from a trusted peer has its client address
//! taken from `X-Forwarded-For` (the right-most address that is not itself a trusted
//! proxy), `Forwarded` (the same, from its `for=`), or `Fly-Client-IP` when neither is
//! there, and its scheme and host from `X-Forwarded-Proto` / `X-Forwarded-Host` or
//! `Forwarded`'s `proto=` / `host=`. From anyone else those headers are dropped unread, so
//! a client cannot pick its own address for the per-address limits. WebTransport takes no
//! proxy (its UDP reaches the server directly) and is not concerned.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// One network, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an address or a network like 10.0.0.0/8 or fdaa::/16");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(addr.trim().parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<Cidr>,
}

/// What a request from a trusted proxy says of its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address (the proxy's own when the headers name none).
    pub client: IpAddr,
    /// The scheme the client used (`https`), when said.
    pub proto: Option<String>,
    /// The host the client asked for, when said.
    pub host: Option<String>,
}

/// The headers only a trusted proxy may set.
const FORWARDING: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "fly-client-ip",
];

impl TrustedProxies {
    /// From the `--trusted-proxies` list (comma-separated; empty: nobody).
    pub fn parse(list: &str) -> Result<Self, String> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Cidr>, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// Whether none is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// What `headers`, on a request from `peer`, say of the client: `None` when `peer` is
    /// not trusted (then the forwarding headers must be ignored: see [`strip`]).
    pub fn forwarded(&self, peer: IpAddr, headers: &HeaderMap) -> Option<Forwarded> {
        if !self.trusts(peer) {
            return None;
        }
        let text = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        let xff = text("x-forwarded-for");
        let forwarded = parse_forwarded(&text("forwarded"));
        let from_xff = self.rightmost_untrusted(xff.split(',').filter_map(parse_node));
        let from_forwarded = self.rightmost_untrusted(
            forwarded
                .iter()
                .filter_map(|e| e.r#for.as_deref().and_then(parse_node)),
        );
        let fly = text("fly-client-ip").trim().parse::<IpAddr>().ok();
        let client = from_xff.or(from_forwarded).or(fly).unwrap_or(peer);
        let last = forwarded.last();
        let first_value = |name: &str| {
            let t = text(name);
            let v = t.split(',').next().unwrap_or("").trim().to_string();
            (!v.is_empty()).then_some(v)
        };
        Some(Forwarded {
            client: canonical(client),
            proto: first_value("x-forwarded-proto").or_else(|| last.and_then(|e| e.proto.clone())),
            host: first_value("x-forwarded-host").or_else(|| last.and_then(|e| e.host.clone())),
        })
    }

    /// Walking from the right (the hop nearest the server), the first address that is not
    /// a trusted proxy: addresses to its left were written by the client and prove nothing.
    fn rightmost_untrusted(&self, hops: impl DoubleEndedIterator<Item = IpAddr>) -> Option<IpAddr> {
        let mut last = None;
        for ip in hops.rev() {
            last = Some(ip);
            if !self.trusts(ip) {
                return Some(ip);
            }
        }
        last
    }
}

/// Removes the forwarding headers (from a peer that may not set them).
pub fn strip(headers: &mut HeaderMap) {
    for name in FORWARDING {
        headers.remove(name);
    }
}

/// Sets `X-Forwarded-Proto` and `X-Forwarded-Host` to what `forwarded` says (so code that
/// reads them, `/connect`, reads the one answer), and drops the rest.
pub fn normalize(headers: &mut HeaderMap, forwarded: &Forwarded) {
    strip(headers);
    let set = |headers: &mut HeaderMap, name: &'static str, value: &Option<String>| {
        if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(headers, "x-forwarded-proto", &forwarded.proto);
    set(headers, "x-forwarded-host", &forwarded.host);
}

/// The client as a socket address for the connection's bookkeeping (the port is the
/// proxy connection's: the client's is not known).
pub fn client_addr(forwarded: &Forwarded, peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(forwarded.client, peer.port())
}

/// One element of `Forwarded` (RFC 7239).
#[derive(Debug, Default)]
struct Element {
    r#for: Option<String>,
    proto: Option<String>,
    host: Option<String>,
}

fn parse_forwarded(text: &str) -> Vec<Element> {
    text.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|element| {
            let mut e = Element::default();
            for pair in element.split(';') {
                let Some((k, v)) = pair.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => e.r#for = Some(v),
                    "proto" => e.proto = Some(v.to_ascii_lowercase()),
                    "host" => e.host = Some(v),
                    _ => {}
                }
            }
            e
        })
        .collect()
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`; `unknown` and obfuscated names are no address.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[').and_then(|r| r.split(']').next())?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let t = TrustedProxies::parse("10.0.0.0/8, fdaa::/16,127.0.0.1").unwrap();
        assert!(t.trusts(ip("10.1.2.3")));
        assert!(
            t.trusts(ip("::ffff:10.1.2.3")),
            "an IPv4-mapped address is IPv4"
        );
        assert!(t.trusts(ip("fdaa:0:1::5")));
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(!t.trusts(ip("11.0.0.1")));
        for bad in ["10.0.0.0/33", "nonsense", "::/129", "1.2.3.4/"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("0.0.0.0/0")
            .unwrap()
            .trusts(ip("8.8.8.8")));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        // The client wrote a forged first entry; the proxy appended what it saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.9")]);
        assert_eq!(t.forwarded(peer, &h).unwrap().client, ip("203.0.113.7"));
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https;host=jam.example.com",
        )]);
        let f = t.forwarded(peer, &h).unwrap();
        assert_eq!(f.client, ip("2001:db8::7"));
        assert_eq!(f.proto.as_deref(), Some("https"));
        assert_eq!(f.host.as_deref(), Some("jam.example.com"));
        let h = headers(&[
            ("fly-client-ip", "198.51.100.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let f = t.forwarded(peer, &h).unwrap();
        assert_eq!(
            (f.client, f.proto.as_deref()),
            (ip("198.51.100.4"), Some("https"))
        );
        // Nothing said: the proxy itself.
        assert_eq!(t.forwarded(peer, &HeaderMap::new()).unwrap().client, peer);
        // From an untrusted peer nothing is believed.
        assert_eq!(t.forwarded(ip("198.51.100.9"), &h), None);
    }

    #[test]
    fn untrusted_forwarding_headers_are_dropped() {
        let mut h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
            ("fly-client-ip", "1.2.3.4"),
            ("host", "jam.example.com"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("host"));
    }
}
