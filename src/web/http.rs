//! The HTTP vocabulary every handler shares: the plain [`Request`] and [`Response`], response
//! builders (JSON, HTML with CSP, plain-text errors, redirects), the security headers every app
//! response carries, and path-segment encoding. A leaf: it uses nothing else of `web` but errors.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use super::error::RequestError;

/// Largest request body accepted (forms, API writes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The Content-Security-Policy of every HTML page.
pub const CSP: &str =
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; frame-ancestors 'none'";

/// The response type of every handler.
pub type Response = warp::http::Response<Vec<u8>>;

/// A request body as it arrives (uploads read theirs as a stream).
pub type BodyStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, warp::Error>> + Send>>;

/// Box a warp body stream.
pub fn body_stream<S, B>(body: S) -> BodyStream
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: warp::Buf,
{
    use futures::StreamExt;
    Box::pin(body.map(|chunk| chunk.map(|mut b| b.copy_to_bytes(b.remaining()))))
}

/// Why a request body was not taken.
#[derive(Debug, Clone)]
pub enum BodyError {
    /// More than the route's limit.
    TooLarge { limit: usize },
    /// The connection failed while reading it.
    Unreadable(Arc<warp::Error>),
    /// It did not arrive in time.
    TimedOut { after: Duration },
}

impl From<&BodyError> for RequestError {
    fn from(e: &BodyError) -> RequestError {
        match e {
            BodyError::TooLarge { limit } => RequestError::PayloadTooLarge { limit: *limit },
            BodyError::Unreadable(source) => RequestError::Body { source: source.clone() },
            BodyError::TimedOut { after } => RequestError::BodyTimeout { after: *after },
        }
    }
}

/// The two ends of the connection a request came on (set by the server for every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// A request as the handlers see it.
pub struct Request {
    pub method: Method,
    /// The raw (still percent-encoded) path.
    pub path: String,
    /// The raw query string (may be empty).
    pub query: String,
    pub headers: HeaderMap,
    /// The body (read for POST only, except uploads, which stream theirs), or why it was refused.
    pub body: Result<Vec<u8>, BodyError>,
    /// The connection's ends (`None` only when served by something other than `web::serve`).
    pub peer: Option<Peer>,
}

impl Request {
    /// The client's IP address.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.peer.map(|p| p.remote.ip())
    }

    /// The IP address the client connected to.
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.peer.map(|p| p.local.ip())
    }

    /// Decoded query parameters (last one wins).
    ///
    /// (See also [`full_sweep_asked`].)
    pub fn query_params(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    /// Decoded form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Result<HashMap<String, String>, RequestError> {
        let body = self.body.as_ref().map_err(RequestError::from)?;
        Ok(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The body must be acceptable (size) even where it is not used.
    pub fn check_body(&self) -> Result<(), RequestError> {
        self.body.as_ref().map(|_| ()).map_err(RequestError::from)
    }

    /// `405 Method Not Allowed` for this request.
    pub fn method_not_allowed(&self) -> RequestError {
        RequestError::MethodNotAllowed { method: self.method.to_string(), path: self.path.clone() }
    }
}

/// Percent-decode one path segment.
pub fn decode_segment(seg: &str) -> Result<String, RequestError> {
    percent_decode_str(seg)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| RequestError::bad_request("path segment is not UTF-8"))
}

/// Percent-encode a value for a path segment or a query parameter.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// Parse a crawl id from a path segment.
pub fn parse_id(seg: &str) -> Result<u64, RequestError> {
    seg.parse().map_err(|_| RequestError::not_found(format!("crawl {seg:?}")))
}

/// The headers every response of the app (UI, API, artifacts, assets) carries.
pub fn add_security_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// A response with a status, a content type and a body.
pub fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => response(status, "application/json", body),
        Err(e) => json_error(&RequestError::internal("encoding JSON", e)),
    }
}

/// `{"error": "..."}` with the error's status.
pub fn json_error(e: &RequestError) -> Response {
    let body = serde_json::json!({ "error": e.public_message() });
    let mut r = response(e.status(), "application/json", body.to_string().into_bytes());
    if matches!(e, RequestError::Unauthorized) {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sitediff\""));
    }
    add_error_headers(&mut r, e);
    r
}

/// A plain-text error.
pub fn text_error(e: &RequestError) -> Response {
    let mut r = response(e.status(), "text/plain; charset=utf-8", e.public_message().into_bytes());
    add_error_headers(&mut r, e);
    r
}

/// The headers an error's response carries whatever its format: `Retry-After` on `429`.
pub fn add_error_headers(r: &mut Response, e: &RequestError) {
    if let RequestError::TooManyAttempts { retry_after } = e {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
}

/// An HTML page with the CSP header.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = response(status, "text/html; charset=utf-8", body.into_bytes());
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A `303 See Other` to a local path.
pub fn redirect(location: &str) -> Response {
    let mut r = response(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", Vec::new());
    match HeaderValue::from_str(location) {
        Ok(v) => r.headers_mut().insert(header::LOCATION, v),
        Err(_) => r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/")),
    };
    r
}

/// Add a `Set-Cookie` header.
pub fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// Whether a crawl trigger asks for a full sweep (`?full=1` or `?full=true`): every page rendered.
pub fn full_sweep_asked(req: &Request) -> bool {
    req.query_params().get("full").is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        let key = "/a b/<x>?q=1&r=\"2\"";
        assert_eq!(decode_segment(&encode(key)).unwrap(), key);
        assert!(!encode(key).contains('/'));
        assert!(decode_segment("%ff").is_err());
        assert!(parse_id("12x").is_err());
    }

    #[test]
    fn unauthorized_json_names_the_scheme() {
        let r = json_error(&RequestError::Unauthorized);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer realm=\"sitediff\"");
    }
}
