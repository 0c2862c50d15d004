//! Which web origins may use the server (docs/protocol.md §10): a list of patterns from
//! `--allowed-origins`, each an exact origin (`https://jam.example.com`), a wildcard over
//! one or more DNS labels (`https://*.example.com`, ports must match), `null`, or `*` for
//! every origin. Requests without an `Origin` (native clients) are always allowed; the
//! transports refuse a browser from any other origin before any message. Refusals are
//! logged by [`RefusedOrigins`], rate-limited; counting them is the caller's job.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

/// One allowed origin, or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Every origin, `null` included.
    Any,
    /// Exactly this origin (`null` is `Exact("null")`).
    Exact(String),
    /// `scheme://*.suffix[:port]`: one or more labels before `suffix`.
    Wildcard {
        scheme: String,
        suffix: String,
        port: Option<String>,
    },
}

/// The origins allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy(Vec<Pattern>);

/// A pattern `--allowed-origins` cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOrigin {
    /// Not an origin pattern at all.
    #[error("--allowed-origins: `{0}` is not an origin (like https://jam.example.com, https://*.example.com, null or *)")]
    NotAnOrigin(String),
    /// A wildcard straight over a public suffix (`https://*.com`, `https://*.co.uk`,
    /// `https://*.github.io`): it would let in sites anyone can register.
    #[error("--allowed-origins: `{0}` allows every site under a public suffix, which anyone can register under; name your own domain (https://*.example.com)")]
    PublicSuffix(String),
}

impl OriginPolicy {
    /// Every origin.
    pub fn any() -> Self {
        OriginPolicy(vec![Pattern::Any])
    }

    /// Parses a comma-separated list of patterns.
    pub fn parse(list: &str) -> Result<Self, BadOrigin> {
        let patterns = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(parse_pattern)
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err(BadOrigin::NotAnOrigin(list.to_owned()));
        }
        Ok(OriginPolicy(patterns))
    }

    /// Whether a request with this `Origin` header (`None`: none sent) may proceed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = origin.trim().to_ascii_lowercase();
        self.0.iter().any(|p| match p {
            Pattern::Any => true,
            Pattern::Exact(o) => *o == origin,
            Pattern::Wildcard {
                scheme,
                suffix,
                port,
            } => split(&origin).is_some_and(|(s, host, p)| {
                s == scheme
                    && p == port.as_deref()
                    && host
                        .strip_suffix(suffix.as_str())
                        .and_then(|labels| labels.strip_suffix('.'))
                        .is_some_and(|labels| {
                            !labels.is_empty() && labels.split('.').all(valid_label)
                        })
            }),
        })
    }
}

/// At most one refused-origin line per this long: a page that retries, or a flood, does
/// not write a line per request.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// The log of refused origins: a `warn` line at most once per [`REFUSAL_LOG_EVERY`] for the
/// whole server, each with how many refusals went unlogged since the previous line.
#[derive(Debug, Default)]
pub struct RefusedOrigins(Mutex<Throttle>);

#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusedOrigins {
    /// Notes one refusal of `origin` from `peer` on `via` (a transport or `connect`).
    pub fn note(&self, origin: &str, peer: SocketAddr, via: &'static str) {
        let now = Instant::now();
        let suppressed = {
            let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if t.last
                .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY)
            {
                t.unlogged += 1;
                None
            } else {
                t.last = Some(now);
                Some(std::mem::take(&mut t.unlogged))
            }
        };
        match suppressed {
            Some(suppressed) => warn!(origin, %peer, via, suppressed, "origin not allowed"),
            // Each refusal still has its line where debug logs are on (tests, diagnosis).
            None => debug!(origin, %peer, via, "origin not allowed"),
        }
    }
}

impl fmt::Display for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|p| match p {
                Pattern::Any => "*".to_owned(),
                Pattern::Exact(o) => o.clone(),
                Pattern::Wildcard {
                    scheme,
                    suffix,
                    port,
                } => format!(
                    "{scheme}://*.{suffix}{}",
                    port.as_deref().map(|p| format!(":{p}")).unwrap_or_default()
                ),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_pattern(text: &str) -> Result<Pattern, BadOrigin> {
    let bad = || BadOrigin::NotAnOrigin(text.to_owned());
    let lower = text.to_ascii_lowercase();
    if lower == "*" {
        return Ok(Pattern::Any);
    }
    if lower == "null" {
        return Ok(Pattern::Exact(lower));
    }
    let (scheme, host, port) = split(&lower).ok_or_else(bad)?;
    match host.strip_prefix("*.") {
        Some(suffix) if is_public_suffix(suffix) => Err(BadOrigin::PublicSuffix(text.to_owned())),
        Some(suffix) if suffix.split('.').all(valid_label) => Ok(Pattern::Wildcard {
            scheme: scheme.to_owned(),
            suffix: suffix.to_owned(),
            port: port.map(str::to_owned),
        }),
        Some(_) => Err(bad()),
        None if host.split('.').all(valid_label) || is_ip_literal(host) => {
            Ok(Pattern::Exact(lower))
        }
        None => Err(bad()),
    }
}

/// Whether `domain` is itself a public suffix of the Public Suffix List (`com`, `co.uk`,
/// `github.io`), so that anyone can register a site right under it. Names the list does
/// not know (`localhost`, `test`, a company's internal domain) are not.
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes())
        .is_some_and(|s| s.is_known() && s.as_bytes().len() == domain.len())
}

/// `scheme://host[:port]` (no path) into its parts.
fn split(origin: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return None;
    }
    if rest.starts_with('[') {
        let end = rest.find(']')?;
        let (host, after) = rest.split_at(end + 1);
        return match after.strip_prefix(':') {
            Some(port) if valid_port(port) => Some((scheme, host, Some(port))),
            None if after.is_empty() => Some((scheme, host, None)),
            _ => None,
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if valid_port(port) => Some((scheme, host, Some(port))),
        Some(_) => None,
        None => Some((scheme, rest, None)),
    }
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[') && host.ends_with(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_over_a_public_suffix_is_refused() {
        for open in [
            "https://*.com",
            "https://*.co.uk",
            "https://*.github.io",
            "http://*.COM:8080",
        ] {
            assert!(
                matches!(OriginPolicy::parse(open), Err(BadOrigin::PublicSuffix(_))),
                "{open}"
            );
        }
        for own in [
            "https://*.example.com",
            "https://*.example.co.uk",
            "https://*.me.github.io",
            "http://*.localhost:5173",
            "https://*.corp.internal",
        ] {
            assert!(OriginPolicy::parse(own).is_ok(), "{own}");
        }
        let err = OriginPolicy::parse("https://jam.example.com, https://*.com")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("https://*.com") && err.contains("public suffix"),
            "{err}"
        );
    }

    #[test]
    fn exact_wildcard_null_and_any() {
        let p = OriginPolicy::parse(
            "https://jam.example.com, https://*.example.org, http://localhost:5173, null",
        )
        .unwrap();
        for ok in [
            None,
            Some("https://jam.example.com"),
            Some("HTTPS://JAM.EXAMPLE.COM"),
            Some("https://a.example.org"),
            Some("https://a.b.example.org"),
            Some("http://localhost:5173"),
            Some("null"),
        ] {
            assert!(p.allows(ok), "{ok:?}");
        }
        for no in [
            "https://example.org", // * is one label or more
            "https://evil-example.org",
            "https://a.example.org:8443", // ports must match
            "http://a.example.org",       // and schemes
            "http://localhost:5174",
            "https://jam.example.com.evil.net",
            "https://a..example.org",
            "",
        ] {
            assert!(!p.allows(Some(no)), "{no:?}");
        }
        assert!(OriginPolicy::any().allows(Some("https://anything.example")));
        assert!(OriginPolicy::any().allows(Some("null")));
        assert_eq!(OriginPolicy::parse("*").unwrap(), OriginPolicy::any());
    }

    #[test]
    fn malformed_patterns_are_refused_at_start() {
        for bad in [
            "",
            " , ",
            "example.com",
            "ftp://x.com",
            "https://*",
            "https://x.com/app",
            "https://a*.b.com",
            "https://x.com:http",
        ] {
            assert!(OriginPolicy::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            OriginPolicy::parse("https://*.example.com:8443")
                .unwrap()
                .to_string(),
            "https://*.example.com:8443"
        );
    }
}
