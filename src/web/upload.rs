//! `POST /api/sites/{site}/uploads`: a multipart body of PNG screenshots becomes an `upload` crawl
//! of the site (see `crate::upload`). Each part is one image; its page key is the part's name when
//! that starts with `/`, else derived from its file name (or name) as `sitediff upload` does.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::{header, HeaderMap, StatusCode};

use super::api::ApiCrawl;
use super::data::{self, blocking};
use super::error::RequestError;
use super::router::{json, App, Request, Response};
use crate::compare::Comparer;
use crate::upload::{self, UploadError, UploadedImage};

/// Largest upload body (all images together).
pub const MAX_UPLOAD_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Whether a request path is the upload route (it gets the larger body limit once authorised).
pub fn is_upload_path(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(segs.as_slice(), ["api", "sites", _, "uploads"])
}

/// The page key of one part: an explicit `/key` name, else from the file name, else the name.
fn part_key(name: Option<&str>, file_name: Option<&str>) -> Result<String, String> {
    if let Some(n) = name.filter(|n| n.starts_with('/')) {
        upload::check_key(n)?;
        return Ok(n.to_string());
    }
    match file_name.filter(|f| !f.is_empty()).or(name) {
        Some(f) => upload::key_from_file_name(f),
        None => Err("the part has neither a name nor a file name".into()),
    }
}

/// Split a multipart body into images.
pub async fn parse(headers: &HeaderMap, body: Vec<u8>) -> Result<Vec<UploadedImage>, RequestError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(ct)
        .map_err(|_| RequestError::bad_request("send multipart/form-data (one PNG per part)"))?;
    let stream =
        futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(Bytes::from(body)) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut images = Vec::new();
    while let Some(field) =
        mp.next_field().await.map_err(|e| RequestError::bad_request(format!("bad multipart body: {e}")))?
    {
        let name = field.name().map(str::to_string);
        let file_name = field.file_name().map(str::to_string);
        let label = file_name.clone().or(name.clone()).unwrap_or_else(|| "(unnamed part)".into());
        let key = part_key(name.as_deref(), file_name.as_deref())
            .map_err(|reason| RequestError::bad_request(format!("{label}: {reason}")))?;
        if images.len() >= upload::MAX_UPLOAD_IMAGES {
            return Err(RequestError::bad_request(format!(
                "more than {} images in one upload",
                upload::MAX_UPLOAD_IMAGES
            )));
        }
        let bytes = field.bytes().await.map_err(|e| RequestError::bad_request(format!("{label}: {e}")))?;
        images.push(UploadedImage { key, name: label, png: bytes.to_vec() });
    }
    Ok(images)
}

/// Handle an upload: parse, compare with the site's baselines, store; 201 with the new crawl.
pub async fn handle(app: &Arc<App>, req: &Request, site: &str) -> Result<Response, RequestError> {
    let Some(site_cfg) = app.state.config.site(site).cloned() else {
        return Err(RequestError::not_found(format!("site {site:?} (uploads need a configured site)")));
    };
    let body = match &req.body {
        Ok(b) => b.clone(),
        Err(RequestError::PayloadTooLarge { limit }) => {
            return Err(RequestError::PayloadTooLarge { limit: *limit })
        }
        Err(e) => return Err(RequestError::bad_request(e.to_string())),
    };
    let images = parse(&req.headers, body).await?;
    let a = app.clone();
    let keep = app.state.config.store.keep_crawls as usize;
    let crawl = blocking("storing an upload", move || {
        let comparer =
            Comparer::new(a.state.store.clone(), a.state.plugins.clone(), Some(a.state.metrics.clone()));
        let rec = upload::ingest(&comparer, &site_cfg, images, keep).map_err(|e| match e {
            UploadError::Store { source, .. } => RequestError::Store(source),
            other if other.is_client_error() => RequestError::bad_request(other.to_string()),
            other => RequestError::Internal { op: "storing an upload", reason: other.to_string() },
        })?;
        data::refresh_review_pending(&a.state)?;
        Ok(rec)
    })
    .await?;
    tracing::info!(site = %crawl.site, crawl = crawl.id, pages = crawl.counts.pages, "upload received");
    Ok(json(StatusCode::CREATED, &ApiCrawl::from(crawl)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys() {
        assert_eq!(part_key(Some("/"), Some("root.png")).unwrap(), "/");
        assert_eq!(part_key(Some("file"), Some("index.png")).unwrap(), "/index");
        assert_eq!(part_key(Some("a.html.png"), None).unwrap(), "/a.html");
        assert!(part_key(Some("file"), Some("x.gif")).is_err());
        assert!(part_key(None, None).is_err());
        assert!(is_upload_path("/api/sites/docs/uploads"));
        assert!(!is_upload_path("/api/sites/docs/crawl"));
    }
}
