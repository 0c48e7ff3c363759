//! Write protection: the bearer token for the API, a signed session cookie plus CSRF tokens for the
//! UI's forms, and the same-origin check on every POST.
//!
//! UI sessions: `sitediff_session=v1.<id>.<authed>.<expires>.<mac>`, HttpOnly, SameSite=Strict,
//! MAC'd with a random per-process key (a restart logs everyone out). A form's CSRF token is a MAC
//! of the session id under the same key, so it cannot be forged without the key and is bound to
//! the browser's cookie. Secret comparisons go through blake3 hashes, whose equality is
//! constant-time.

use std::time::Duration;

use warp::http::HeaderMap;

use super::error::RequestError;
use super::http::Request;

/// Name of the UI session cookie.
pub const SESSION_COOKIE: &str = "sitediff_session";
/// How long a UI session lives.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Bytes of randomness in a session id.
const SESSION_ID_BYTES: usize = 16;
/// Cookie format version (the first dot-separated field).
const COOKIE_VERSION: &str = "v1";

/// Token and key material of one server.
pub struct Auth {
    token: Option<String>,
    key: [u8; 32],
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
    pub fn new(token: Option<String>) -> Auth {
        Auth { token, key: rand::random() }
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

    /// The checks every API write passes, in this order: an acceptable body, same origin, the
    /// bearer token.
    pub fn check_api_write(&self, req: &Request) -> Result<(), RequestError> {
        req.check_body()?;
        check_same_origin(&req.headers)?;
        self.check_bearer(&req.headers)
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for p in parts {
            h.update(p.as_bytes());
            h.update(b"\x1f");
        }
        h.finalize().to_hex().to_string()
    }

    /// A new session (not logged in unless `authed`).
    pub fn new_session(&self, authed: bool, now: i64) -> Session {
        let id: [u8; SESSION_ID_BYTES] = rand::random();
        let id = id.iter().map(|b| format!("{b:02x}")).collect();
        Session { id, authed, expires: now + SESSION_LIFETIME.as_secs() as i64 }
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

    /// Parse and verify a cookie value; expired, malformed or forged cookies give `None`.
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
        (expires > now).then(|| Session { id: id.to_string(), authed, expires })
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

/// `host:port` of an origin, with the scheme's default port filled in.
fn authority(scheme: &str, host_port: &str) -> Option<String> {
    let u = url::Url::parse(&format!("{scheme}://{host_port}/")).ok()?;
    Some(format!("{}:{}", u.host_str()?.to_ascii_lowercase(), u.port_or_known_default()?))
}

/// POSTs from browsers carry `Origin` (or at least `Referer`): when present, its host and port must be
/// this server's `Host`. Requests with neither (curl, CI scripts) pass; the token/CSRF checks still
/// apply to them.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), RequestError> {
    let get = |name: warp::http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let claimed = match (get(warp::http::header::ORIGIN), get(warp::http::header::REFERER)) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return Ok(()),
    };
    let Some(host) = get(warp::http::header::HOST) else {
        return Err(RequestError::forbidden("cross-origin request (no Host header)"));
    };
    let claimed = url::Url::parse(claimed).ok().filter(|u| u.has_host());
    let same = claimed.is_some_and(|u| {
        let mine = authority(u.scheme(), host);
        let theirs = u
            .host_str()
            .zip(u.port_or_known_default())
            .map(|(h, p)| format!("{}:{p}", h.to_ascii_lowercase()));
        mine.is_some() && mine == theirs
    });
    if same {
        Ok(())
    } else {
        Err(RequestError::forbidden("cross-origin request refused (Origin/Referer is not this server)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer() {
        let a = Auth::new(Some("s3cret".into()));
        assert!(a.check_bearer(&headers(&[("authorization", "Bearer s3cret")])).is_ok());
        assert!(a.check_bearer(&headers(&[("authorization", "Bearer s3cre")])).is_err());
        assert!(a.check_bearer(&headers(&[("authorization", "s3cret")])).is_err());
        assert!(a.check_bearer(&headers(&[])).is_err());
        assert!(Auth::new(None).check_bearer(&headers(&[])).is_ok());
    }

    #[test]
    fn cookies_round_trip_and_resist_forgery() {
        let a = Auth::new(Some("t".into()));
        let s = a.new_session(false, 1000);
        let v = a.cookie_value(&s);
        assert_eq!(a.parse_cookie(&v, 1000), Some(s.clone()));
        assert_eq!(a.parse_cookie(&v, s.expires), None, "expired");
        // Flipping the authed flag breaks the MAC.
        let forged = v.replacen(".0.", ".1.", 1);
        assert_eq!(a.parse_cookie(&forged, 1000), None);
        // Another server's key does not verify.
        assert_eq!(Auth::new(Some("t".into())).parse_cookie(&v, 1000), None);
        let h = headers(&[("cookie", &format!("a=b; {SESSION_COOKIE}={v}; c=d"))]);
        assert_eq!(a.session_from_headers(&h, 1000), Some(s.clone()));
        assert!(!a.may_write(&s));
        assert!(a.may_write(&a.new_session(true, 1000)));
        let tok = a.csrf_token(&s);
        assert!(a.csrf_ok(&s, &tok));
        assert!(!a.csrf_ok(&a.new_session(false, 1000), &tok), "CSRF token bound to the session");
    }

    #[test]
    fn same_origin() {
        let ok = |pairs: &[(&'static str, &str)]| check_same_origin(&headers(pairs)).is_ok();
        assert!(ok(&[("host", "127.0.0.1:8080")]));
        assert!(ok(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]));
        assert!(ok(&[("host", "[::1]:80"), ("origin", "http://[::1]")]));
        assert!(ok(&[("host", "Example.com"), ("referer", "http://example.com/crawls/1")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.test")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8081")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "null")]));
        assert!(!ok(&[("origin", "http://127.0.0.1:8080")]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("referer", "http://evil.test/x")]));
    }
}
