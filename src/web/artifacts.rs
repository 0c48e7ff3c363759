//! `GET /artifacts/{hash}`: stored blobs by their hash (64 hex digits only), immutable and cached
//! forever by the browser only (`private`: screenshots of private pages stay out of shared caches
//! and proxies); PNGs as `image/png`, previews as `image/jpeg`, anything else (captured HTML included) as plain text in a sandbox.

use warp::http::{header, HeaderValue, StatusCode};

use super::app::App;
use super::data::blocking;
use super::error::RequestError;
use super::http::{response, Request, Response};
use crate::store::Hash;

/// Artifacts never change (they are named by their hash); only the browser may keep them.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// Serve one artifact; `304` when the client has it already.
pub async fn serve(app: &App, req: &Request, hex: &str) -> Result<Response, RequestError> {
    let hash = Hash::from_hex(hex).ok_or_else(|| RequestError::not_found("artifact (not a hash)"))?;
    if req.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(&format!("\"{hash}\"")) {
        let mut r = response(StatusCode::NOT_MODIFIED, "text/plain; charset=utf-8", Vec::new());
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        return Ok(r);
    }
    let store = app.state.store.clone();
    let bytes = blocking("reading an artifact", move || Ok(store.blob(&hash)?))
        .await?
        .ok_or_else(|| RequestError::not_found(format!("artifact {hash}")))?;
    let ct = match crate::diff::ImageFormat::sniff(&bytes) {
        Some(crate::diff::ImageFormat::Png) => "image/png",
        // Thumbnails and change previews.
        Some(crate::diff::ImageFormat::Jpeg) => "image/jpeg",
        _ => "text/plain; charset=utf-8",
    };
    let mut r = response(StatusCode::OK, ct, bytes);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

/// Rows of a strip of a tall PNG artifact ([`serve_rows`]) at most.
pub const MAX_STRIP_ROWS: u32 = 4096;

/// `GET /artifacts/{hash}/rows/{from}-{to}`: rows `from..to` of a PNG artifact as a PNG of their
/// own (decoding stops after row `to`), so the page view of a very tall page loads it strip by
/// strip; at most [`MAX_STRIP_ROWS`] rows, clamped to the image.
pub async fn serve_rows(app: &App, hex: &str, range: &str) -> Result<Response, RequestError> {
    let hash = Hash::from_hex(hex).ok_or_else(|| RequestError::not_found("artifact (not a hash)"))?;
    let bad =
        || RequestError::bad_request(format!("rows {range:?}: give FROM-TO, at most {MAX_STRIP_ROWS} rows"));
    let (from, to) = range.split_once('-').ok_or_else(bad)?;
    let (from, to): (u32, u32) = (from.parse().map_err(|_| bad())?, to.parse().map_err(|_| bad())?);
    if to <= from || to - from > MAX_STRIP_ROWS {
        return Err(bad());
    }
    let store = app.state.store.clone();
    let range = range.to_string();
    let png = blocking("reading rows of an artifact", move || {
        let Some(bytes) = store.blob(&hash)? else { return Ok(None) };
        if crate::diff::ImageFormat::sniff(&bytes) != Some(crate::diff::ImageFormat::Png) {
            return Err(RequestError::bad_request("rows: not a PNG artifact"));
        }
        let (strip, _) = crate::diff::decode_png_rows(&bytes, "artifact", from, to)
            .map_err(|e| RequestError::internal("reading rows of an artifact", e))?;
        if strip.height == 0 {
            return Err(RequestError::bad_request(format!("rows {range}: past the image's last row")));
        }
        crate::diff::encode_png(&strip).map(Some).map_err(|e| RequestError::internal("encoding a strip", e))
    })
    .await?
    .ok_or_else(|| RequestError::not_found(format!("artifact {hash}")))?;
    let mut r = response(StatusCode::OK, "image/png", png);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(r)
}
