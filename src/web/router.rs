//! Request dispatch for the UI, the JSON API, artifacts and static assets: one warp catch-all
//! hands a plain [`Request`] to [`handle`], which routes on path segments and adds the security
//! headers every response carries.

use std::collections::HashMap;
use std::sync::Arc;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use super::auth::Auth;
use super::data::Catalog;
use super::error::RequestError;
use super::{api, assets, ui, WebState};
use crate::store::Hash;

/// Largest request body accepted (forms, API writes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The Content-Security-Policy of every HTML page.
pub const CSP: &str =
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; frame-ancestors 'none'";
/// Artifacts never change (they are named by their hash).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The 8-byte PNG signature.
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The response type of every handler here.
pub type Response = warp::http::Response<Vec<u8>>;

/// Shared server state: the daemon's [`WebState`] plus auth keys and the listing cache.
pub struct App {
    pub state: WebState,
    pub auth: Auth,
    pub catalog: Catalog,
}

impl App {
    pub fn new(state: WebState) -> App {
        let auth = Auth::new(state.token.clone());
        let catalog = Catalog::new(state.store.clone());
        App { state, auth, catalog }
    }
}

/// A request as the handlers see it.
pub struct Request {
    pub method: Method,
    /// The raw (still percent-encoded) path.
    pub path: String,
    /// The raw query string (may be empty).
    pub query: String,
    pub headers: HeaderMap,
    /// The body, or why it was refused (too large, unreadable).
    pub body: Result<Vec<u8>, RequestError>,
}

impl Request {
    /// Decoded query parameters (last one wins).
    pub fn query_params(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    /// Decoded form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Result<HashMap<String, String>, RequestError> {
        let body = self.body.as_ref().map_err(|e| match e {
            RequestError::PayloadTooLarge { limit } => RequestError::PayloadTooLarge { limit: *limit },
            other => RequestError::bad_request(other.to_string()),
        })?;
        Ok(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The body must be acceptable (size) even where it is not used.
    pub fn check_body(&self) -> Result<(), RequestError> {
        match &self.body {
            Ok(_) => Ok(()),
            Err(RequestError::PayloadTooLarge { limit }) => {
                Err(RequestError::PayloadTooLarge { limit: *limit })
            }
            Err(e) => Err(RequestError::bad_request(e.to_string())),
        }
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

/// Route one request.
pub async fn handle(app: Arc<App>, req: Request) -> Response {
    let path = req.path.clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut resp = match segs.as_slice() {
        ["api", rest @ ..] => api::handle(&app, &req, rest).await.unwrap_or_else(|e| json_error(&e)),
        ["artifacts", rest @ ..] => artifact(&app, &req, rest).await.unwrap_or_else(|e| text_error(&e)),
        ["static", rest @ ..] => assets::serve(&req, rest).unwrap_or_else(|e| text_error(&e)),
        _ => ui::handle(&app, &req, &segs).await,
    };
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => response(status, "application/json", body),
        Err(e) => json_error(&RequestError::Internal { op: "encoding JSON", reason: e.to_string() }),
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
    r
}

/// A plain-text error.
pub fn text_error(e: &RequestError) -> Response {
    response(e.status(), "text/plain; charset=utf-8", e.public_message().into_bytes())
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

/// `GET /artifacts/{hash}`: 64 hex digits only; PNG as image/png, anything else as plain text.
async fn artifact(app: &App, req: &Request, rest: &[&str]) -> Result<Response, RequestError> {
    let [hex] = rest else { return Err(RequestError::not_found("artifact")) };
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(RequestError::MethodNotAllowed {
            method: req.method.to_string(),
            path: req.path.clone(),
        });
    }
    let hash = Hash::from_hex(hex).ok_or_else(|| RequestError::not_found("artifact (not a hash)"))?;
    if req.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(&format!("\"{hash}\"")) {
        let mut r = response(StatusCode::NOT_MODIFIED, "text/plain; charset=utf-8", Vec::new());
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        return Ok(r);
    }
    let store = app.state.store.clone();
    let bytes = super::data::blocking("reading an artifact", move || Ok(store.blob(&hash)?))
        .await?
        .ok_or_else(|| RequestError::not_found(format!("artifact {hash}")))?;
    let ct = if bytes.starts_with(PNG_MAGIC) { "image/png" } else { "text/plain; charset=utf-8" };
    let mut r = response(StatusCode::OK, ct, bytes);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
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
}
