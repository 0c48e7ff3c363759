//! The UI's CSS and JavaScript, embedded in the binary (`web/static/`, no build step) and served at
//! `/static/*` with a content-hash query string for cache busting.

use std::sync::LazyLock;

use warp::http::{header, HeaderValue, StatusCode};

use super::http::{response, Response};

/// The stylesheet.
pub const APP_CSS: &str = include_str!("../../web/static/app.css");
/// The review script (keyboard shortcuts, overlay slider).
pub const APP_JS: &str = include_str!("../../web/static/app.js");
/// Static assets are revalidated after this many seconds (URLs carry a content hash anyway).
const ASSET_MAX_AGE: &str = "public, max-age=86400";

/// One embedded file.
pub struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

static ASSETS: [Asset; 2] = [
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: APP_CSS },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: APP_JS },
];

static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS.iter().map(|a| blake3::hash(a.body.as_bytes()).to_hex()[..12].to_string()).collect()
});

/// The URL of an asset, with its content hash.
pub fn url(name: &str) -> String {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => format!("/static/{name}?v={}", VERSIONS[i]),
        None => format!("/static/{name}"),
    }
}

/// The asset of that file name, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `GET /static/{name}`.
pub fn serve(asset: &Asset) -> Response {
    let mut r = response(StatusCode::OK, asset.content_type, asset.body.as_bytes().to_vec());
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(ASSET_MAX_AGE));
    r
}
