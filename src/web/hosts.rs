//! The host allow-list: which `Host` (and which `Origin`/`Referer`) this server answers to. A leaf:
//! it uses nothing else of `web`.
//!
//! Accepted: `localhost`, `127.0.0.1`, `[::1]`, the listen address's IP and the IP the client
//! connected to, each on the port the server listens on; and every `server.allowed_hosts` entry
//! (`name`: any port, `name:port`: that port). Anything else is a DNS-rebinding attempt (a hostile
//! name resolved to this machine) or a misconfiguration, and gets `421 Misdirected Request`.

use std::net::{IpAddr, SocketAddr};

use crate::config::AllowedHost;

/// Host names of the loopback interface, accepted on the listen port.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Which hosts one listener answers to.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// The port the listener is bound to (the real one when the config said 0).
    port: u16,
    /// The IP the listener is bound to (unless unspecified: 0.0.0.0 or ::).
    listen_ip: Option<IpAddr>,
    extra: Vec<AllowedHost>,
}

/// The host of an IP address as a URL writes it (IPv6 in brackets, IPv4-mapped as IPv4).
fn ip_host(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Host (lower case, IPv6 in brackets) and port of an authority (`name[:port]`), the port
/// defaulting to `default_port`; `None` when it is not one.
pub fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(['/', '@', '?', '#', '\\']) {
        return None;
    }
    let u = url::Url::parse(&format!("http://{authority}/")).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    // The parser drops `:80` as http's default port: only an explicit other port is kept.
    let port = u.port().unwrap_or(if authority.ends_with(":80") { 80 } else { default_port });
    Some((host, port))
}

impl HostPolicy {
    /// The policy of a listener bound to `bound`, with the configured extra names.
    pub fn new(bound: SocketAddr, allowed_hosts: &[AllowedHost]) -> HostPolicy {
        let ip = bound.ip();
        HostPolicy {
            port: bound.port(),
            listen_ip: (!ip.is_unspecified()).then_some(ip),
            extra: allowed_hosts.to_vec(),
        }
    }

    /// Whether `host` (normalised as by [`split_authority`]) on `port` is one of ours; `local` is
    /// the address the client connected to, when known.
    pub fn allows(&self, host: &str, port: u16, local: Option<IpAddr>) -> bool {
        if self.extra.iter().any(|a| a.host == host && a.port.is_none_or(|p| p == port)) {
            return true;
        }
        if port != self.port {
            return false;
        }
        LOOPBACK_NAMES.contains(&host)
            || self.listen_ip.is_some_and(|ip| ip_host(ip) == host)
            || local.is_some_and(|ip| ip_host(ip) == host)
    }

    /// Whether a `Host` header value (or a request target's authority) is one of ours. Without a
    /// port it means port 80.
    pub fn allows_authority(&self, authority: &str, local: Option<IpAddr>) -> bool {
        split_authority(authority, 80).is_some_and(|(host, port)| self.allows(&host, port, local))
    }

    /// Whether an `Origin` or `Referer` URL is one of ours (its scheme's default port when it names
    /// none). `null`, and anything that is not an http(s) URL, is not.
    pub fn allows_origin(&self, origin: &str, local: Option<IpAddr>) -> bool {
        let Ok(u) = url::Url::parse(origin) else { return false };
        if !matches!(u.scheme(), "http" | "https") {
            return false;
        }
        match (u.host_str(), u.port_or_known_default()) {
            (Some(host), Some(port)) => self.allows(&host.to_ascii_lowercase(), port, local),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bound: &str, extra: &[&str]) -> HostPolicy {
        let extra: Vec<AllowedHost> = extra.iter().map(|e| AllowedHost::parse(e).unwrap()).collect();
        HostPolicy::new(bound.parse().unwrap(), &extra)
    }

    #[test]
    fn loopback_and_the_listen_address_on_the_listen_port() {
        let p = policy("127.0.0.1:8080", &[]);
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080"] {
            assert!(p.allows_authority(ok, None), "{ok}");
        }
        for bad in [
            "rb.evil.example:8080",
            "127.0.0.1:8081",
            "localhost",
            "localhost.evil.example:8080",
            "127.0.0.1.nip.io:8080",
            "",
            "127.0.0.1:8080/x",
            "u@127.0.0.1:8080",
            "10.0.0.5:8080",
        ] {
            assert!(!p.allows_authority(bad, None), "{bad}");
        }
        // The address the client connected to (a listener on 0.0.0.0 reached at 10.0.0.5).
        let any = policy("0.0.0.0:8080", &[]);
        let local: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(any.allows_authority("10.0.0.5:8080", Some(local)));
        assert!(!any.allows_authority("0.0.0.0:8080", Some(local)));
        assert!(!any.allows_authority("10.0.0.6:8080", Some(local)));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert!(policy("[::]:8080", &[]).allows_authority("10.0.0.5:8080", Some(mapped)));
        assert!(policy("10.0.0.5:80", &[]).allows_authority("10.0.0.5", None), "no port = 80");
        assert!(policy("[::1]:80", &[]).allows_authority("[::1]:80", None));
    }

    #[test]
    fn allowed_hosts_entries() {
        let p = policy("127.0.0.1:8080", &["sitediff.example.com", "ci:9000", "proxy:80"]);
        assert!(p.allows_authority("sitediff.example.com", None));
        assert!(p.allows_authority("SiteDiff.Example.com:443", None));
        assert!(p.allows_authority("ci:9000", None));
        assert!(!p.allows_authority("ci:9001", None));
        assert!(!p.allows_authority("ci", None));
        assert!(p.allows_authority("proxy", None));
        assert!(p.allows_authority("proxy:80", None));
        assert!(!p.allows_authority("other.example.com", None));
    }

    #[test]
    fn origins() {
        let p = policy("127.0.0.1:8080", &["sitediff.example.com"]);
        assert!(p.allows_origin("http://127.0.0.1:8080", None));
        assert!(p.allows_origin("http://localhost:8080/crawls/1?x", None));
        assert!(p.allows_origin("https://sitediff.example.com", None));
        assert!(!p.allows_origin("http://localhost:3000", None), "another local port is another origin");
        assert!(!p.allows_origin("http://evil.example:8080", None));
        assert!(!p.allows_origin("null", None));
        assert!(!p.allows_origin("file:///etc/passwd", None));
        assert!(!p.allows_origin("http://127.0.0.1", None), "port 80, not 8080");
    }
}
