//! Write protection: the bearer token for the API, a signed session cookie plus CSRF tokens for the
//! UI's forms, the same-origin check on every POST (against the host allow-list), and the
//! throttling of wrong tokens per client.
//!
//! UI sessions: `sitediff_session=v1.<id>.<authed>.<expires>.<mac>`, HttpOnly, SameSite=Strict,
//! MAC'd with a random per-process key (a restart logs everyone out). A logged-in session is also
//! remembered server-side until it expires or logs out: a cookie whose session logged out no longer
//! writes, even if someone kept a copy. A form's CSRF token is a MAC of the session id under the
//! same key, so it cannot be forged without the key and is bound to the browser's cookie. Secret
//! comparisons go through blake3 hashes, whose equality is constant-time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use warp::http::HeaderMap;

use super::error::RequestError;
use super::hosts::HostPolicy;
use super::http::Request;
use super::throttle::{retry_after_secs, Throttle};

/// Name of the UI session cookie.
pub const SESSION_COOKIE: &str = "sitediff_session";
/// How long a UI session lives.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Bytes of randomness in a session id.
const SESSION_ID_BYTES: usize = 16;
/// Cookie format version (the first dot-separated field).
const COOKIE_VERSION: &str = "v1";
/// Most logged-in sessions remembered at once (past it, the one expiring first is logged out).
const MAX_LIVE_SESSIONS: usize = 10_000;

/// Token and key material of one server, the hosts it answers to, and its login state.
pub struct Auth {
    token: Option<String>,
    key: [u8; 32],
    hosts: HostPolicy,
    throttle: Throttle,
    /// Logged-in sessions: id -> expiry (Unix seconds).
    live: Mutex<HashMap<String, i64>>,
}

/// A browser's UI session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex session id.
    pub id: String,
    /// Logged in with the token.
    pub authed: bool,
    /// Unix seconds.
    pub expires: i64,
}

/// Constant-time string equality (compares the blake3 hashes of both sides).
pub fn secure_eq(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

impl Auth {
    /// An `Auth` with a fresh random key.
    pub fn new(token: Option<String>, hosts: HostPolicy) -> Auth {
        Auth { token, key: rand::random(), hosts, throttle: Throttle::default(), live: Mutex::default() }
    }

    /// The hosts this server answers to.
    pub fn hosts(&self) -> &HostPolicy {
        &self.hosts
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether writes need the token.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `candidate` is the configured token.
    pub fn token_matches(&self, candidate: &str) -> bool {
        self.token.as_deref().is_some_and(|t| secure_eq(t, candidate))
    }

    /// API writes: `Authorization: Bearer <token>` whenever a token is configured.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Result<(), RequestError> {
        if self.token.is_none() {
            return Ok(());
        }
        let given = headers
            .get(warp::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        match given {
            Some(t) if self.token_matches(t) => Ok(()),
            _ => Err(RequestError::Unauthorized),
        }
    }

    /// API writes: the bearer token, throttled per client (see `throttle`): a wrong token counts
    /// as a failed attempt, a locked-out client gets `429` whatever it sends.
    pub fn authorize_write(&self, req: &Request) -> Result<(), RequestError> {
        if self.token.is_none() {
            return Ok(());
        }
        let client = req.client_ip();
        self.check_throttle(client)?;
        match self.check_bearer(&req.headers) {
            Ok(()) => {
                self.throttle.succeeded(client);
                Ok(())
            }
            Err(e) => {
                if req.headers.contains_key(warp::http::header::AUTHORIZATION) {
                    self.record_failure(client, "API request with a wrong token");
                }
                Err(e)
            }
        }
    }

    /// The checks every API write passes, in this order: an acceptable body, same origin, the
    /// bearer token.
    pub fn check_api_write(&self, req: &Request) -> Result<(), RequestError> {
        req.check_body()?;
        self.check_same_origin(req)?;
        self.authorize_write(req)
    }

    /// `429` while `client` is locked out for wrong tokens.
    fn check_throttle(&self, client: Option<IpAddr>) -> Result<(), RequestError> {
        self.throttle
            .check(client, Instant::now())
            .map_err(|wait| RequestError::TooManyAttempts { retry_after: retry_after_secs(wait) })
    }

    fn record_failure(&self, client: Option<IpAddr>, what: &str) {
        let client_text = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        match self.throttle.failed(client, Instant::now()) {
            Some(lock) => {
                tracing::warn!(client = %client_text, lock_secs = lock.as_secs_f64(), "{what}: client locked out")
            }
            None => tracing::warn!(client = %client_text, "{what}"),
        }
    }

    /// A UI login with `candidate`: `Ok(true)` when it is the token (a fresh logged-in session
    /// should follow), `Ok(false)` when not (counted against the client), `429` while the client is
    /// locked out.
    pub fn login_attempt(&self, client: Option<IpAddr>, candidate: &str) -> Result<bool, RequestError> {
        self.check_throttle(client)?;
        if self.token_matches(candidate) {
            self.throttle.succeeded(client);
            Ok(true)
        } else {
            self.record_failure(client, "UI login with a wrong token");
            Ok(false)
        }
    }

    /// POSTs from browsers carry `Origin` (or at least `Referer`): when present, it must be a host
    /// this server answers to (the allow-list, not the request's own `Host`). Requests with neither
    /// (curl, CI scripts) pass; the token/CSRF checks still apply to them.
    pub fn check_same_origin(&self, req: &Request) -> Result<(), RequestError> {
        check_same_origin(&req.headers, &self.hosts, req.local_ip())
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for p in parts {
            h.update(p.as_bytes());
            h.update(b"\x1f");
        }
        h.finalize().to_hex().to_string()
    }

    /// A new session (not logged in unless `authed`; a logged-in one is remembered until it
    /// expires or is revoked).
    pub fn new_session(&self, authed: bool, now: i64) -> Session {
        let id: [u8; SESSION_ID_BYTES] = rand::random();
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let expires = now + SESSION_LIFETIME.as_secs() as i64;
        if authed {
            let mut live = self.live();
            live.retain(|_, exp| *exp > now);
            if live.len() >= MAX_LIVE_SESSIONS {
                if let Some(first) = live.iter().min_by_key(|(_, exp)| **exp).map(|(id, _)| id.clone()) {
                    live.remove(&first);
                }
            }
            live.insert(id.clone(), expires);
        }
        Session { id, authed, expires }
    }

    /// Log a session out server-side: its cookie no longer counts as logged in.
    pub fn revoke(&self, s: &Session) {
        self.live().remove(&s.id);
    }

    /// The cookie value of a session.
    pub fn cookie_value(&self, s: &Session) -> String {
        let authed = if s.authed { "1" } else { "0" };
        let exp = s.expires.to_string();
        let mac = self.mac(&["session", COOKIE_VERSION, &s.id, authed, &exp]);
        format!("{COOKIE_VERSION}.{}.{authed}.{exp}.{mac}", s.id)
    }

    /// The `Set-Cookie` header value for a session.
    pub fn set_cookie(&self, s: &Session) -> String {
        format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            self.cookie_value(s),
            SESSION_LIFETIME.as_secs()
        )
    }

    /// Parse and verify a cookie value; expired, malformed, forged or logged-out cookies give `None`.
    pub fn parse_cookie(&self, value: &str, now: i64) -> Option<Session> {
        let mut it = value.split('.');
        let (v, id, authed, exp, mac) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || v != COOKIE_VERSION {
            return None;
        }
        if id.len() != SESSION_ID_BYTES * 2 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if !secure_eq(&self.mac(&["session", COOKIE_VERSION, id, authed, exp]), mac) {
            return None;
        }
        let expires: i64 = exp.parse().ok()?;
        let authed = match authed {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        if expires <= now || (authed && !self.live().contains_key(id)) {
            return None;
        }
        Some(Session { id: id.to_string(), authed, expires })
    }

    /// The session carried by a request's `Cookie` header, if valid.
    pub fn session_from_headers(&self, headers: &HeaderMap, now: i64) -> Option<Session> {
        headers
            .get_all(warp::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
            .find_map(|v| self.parse_cookie(v, now))
    }

    /// The CSRF token of a session, put in every form.
    pub fn csrf_token(&self, s: &Session) -> String {
        self.mac(&["csrf", &s.id])
    }

    pub fn csrf_ok(&self, s: &Session, candidate: &str) -> bool {
        secure_eq(&self.csrf_token(s), candidate)
    }

    /// Whether this session may write (approve, reject, crawl).
    pub fn may_write(&self, s: &Session) -> bool {
        !self.token_required() || s.authed
    }
}

/// The same-origin check of [`Auth::check_same_origin`] (`local`: the address the client
/// connected to).
pub fn check_same_origin(
    headers: &HeaderMap,
    hosts: &HostPolicy,
    local: Option<IpAddr>,
) -> Result<(), RequestError> {
    let get = |name: warp::http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let claimed = match (get(warp::http::header::ORIGIN), get(warp::http::header::REFERER)) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return Ok(()),
    };
    if hosts.allows_origin(claimed, local) {
        Ok(())
    } else {
        Err(RequestError::forbidden("cross-origin request refused (Origin/Referer is not this server)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AllowedHost;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn local(allowed: &[&str]) -> HostPolicy {
        let allowed: Vec<AllowedHost> = allowed.iter().map(|a| AllowedHost::parse(a).unwrap()).collect();
        HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &allowed)
    }

    fn auth(token: Option<&str>) -> Auth {
        Auth::new(token.map(str::to_string), local(&[]))
    }

    #[test]
    fn bearer() {
        let a = auth(Some("s3cret"));
        assert!(a.check_bearer(&headers(&[("authorization", "Bearer s3cret")])).is_ok());
        assert!(a.check_bearer(&headers(&[("authorization", "Bearer s3cre")])).is_err());
        assert!(a.check_bearer(&headers(&[("authorization", "s3cret")])).is_err());
        assert!(a.check_bearer(&headers(&[])).is_err());
        assert!(auth(None).check_bearer(&headers(&[])).is_ok());
    }

    #[test]
    fn cookies_round_trip_and_resist_forgery() {
        let a = auth(Some("t"));
        let s = a.new_session(false, 1000);
        let v = a.cookie_value(&s);
        assert_eq!(a.parse_cookie(&v, 1000), Some(s.clone()));
        assert_eq!(a.parse_cookie(&v, s.expires), None, "expired");
        // Flipping the authed flag breaks the MAC.
        let forged = v.replacen(".0.", ".1.", 1);
        assert_eq!(a.parse_cookie(&forged, 1000), None);
        // Another server's key does not verify.
        assert_eq!(auth(Some("t")).parse_cookie(&v, 1000), None);
        let h = headers(&[("cookie", &format!("a=b; {SESSION_COOKIE}={v}; c=d"))]);
        assert_eq!(a.session_from_headers(&h, 1000), Some(s.clone()));
        assert!(!a.may_write(&s));
        assert!(a.may_write(&a.new_session(true, 1000)));
        let tok = a.csrf_token(&s);
        assert!(a.csrf_ok(&s, &tok));
        assert!(!a.csrf_ok(&a.new_session(false, 1000), &tok), "CSRF token bound to the session");
    }

    #[test]
    fn a_revoked_session_is_no_longer_logged_in() {
        let a = auth(Some("t"));
        let s = a.new_session(true, 1000);
        let v = a.cookie_value(&s);
        assert_eq!(a.parse_cookie(&v, 1000), Some(s.clone()));
        a.revoke(&s);
        assert_eq!(a.parse_cookie(&v, 1000), None, "the cookie outlives the logout, the session does not");
        // A logged-in session the server never issued (e.g. from before a restart) is refused too.
        let other = auth(Some("t"));
        let mut foreign = other.new_session(true, 1000);
        foreign.id = "ab".repeat(SESSION_ID_BYTES);
        assert_eq!(other.parse_cookie(&other.cookie_value(&foreign), 1000), None);
    }

    #[test]
    fn login_attempts_are_throttled_per_client() {
        let a = auth(Some("t"));
        let ip: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());
        for _ in 0..super::super::throttle::FREE_FAILURES {
            assert!(!a.login_attempt(ip, "wrong").unwrap());
        }
        let e = a.login_attempt(ip, "t").unwrap_err();
        assert!(matches!(e, RequestError::TooManyAttempts { retry_after: 1 }), "{e:?}");
        assert!(a.login_attempt(Some("192.0.2.8".parse().unwrap()), "t").unwrap(), "another client");
    }

    #[test]
    fn same_origin_is_checked_against_the_allow_list() {
        let hosts = local(&["sitediff.example.com"]);
        let ok = |pairs: &[(&'static str, &str)]| check_same_origin(&headers(pairs), &hosts, None).is_ok();
        assert!(ok(&[("host", "127.0.0.1:8080")]));
        assert!(ok(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]));
        assert!(ok(&[("host", "localhost:8080"), ("origin", "http://127.0.0.1:8080")]));
        assert!(ok(&[("referer", "https://sitediff.example.com/crawls/1")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.test")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8081")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "null")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("referer", "http://evil.test/x")]));
        // The request's own Host does not vouch for its Origin (a rebound name names itself).
        assert!(!ok(&[("host", "rb.evil.example:8080"), ("origin", "http://rb.evil.example:8080")]));
    }
}
