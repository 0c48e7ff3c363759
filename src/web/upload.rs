//! `POST /api/sites/{site}/uploads`: a multipart body of PNG screenshots becomes an `upload` crawl
//! of the site (see `crate::upload`). Each part is one image; its page key is the part's name when
//! that starts with `/`, else derived from its file name (or name) as `sitediff upload` does.
//! The route, its token check before the body is read and its larger body limit are in `routes`.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::{header, HeaderMap, StatusCode};

use super::app::App;
use super::data::{blocking, ApiCrawl};
use super::error::RequestError;
use super::http::{json, Request, Response};
use crate::compare::Comparer;
use crate::upload::{self, UploadedImage};

/// Largest upload body (all images together).
pub const MAX_UPLOAD_BODY_BYTES: usize = 256 * 1024 * 1024;

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
    let boundary = multer::parse_boundary(ct).map_err(|source| RequestError::NotMultipart { source })?;
    let stream =
        futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(Bytes::from(body)) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut images = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(|source| RequestError::Multipart { source })? {
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
        let bytes = field
            .bytes()
            .await
            .map_err(|source| RequestError::MultipartPart { part: label.clone(), source })?;
        images.push(UploadedImage { key, name: label, png: bytes.to_vec() });
    }
    Ok(images)
}

/// `POST /api/sites/{site}/uploads`: parse, compare with the site's baselines, store; 201 with the
/// new crawl.
pub async fn handle(app: &Arc<App>, req: Request, site: &str) -> Result<Response, RequestError> {
    let Some(site_cfg) = app.state.config.site(site).cloned() else {
        return Err(RequestError::not_found(format!("site {site:?} (uploads need a configured site)")));
    };
    let Request { headers, body, .. } = req;
    let images = parse(&headers, body.map_err(|e| RequestError::from(&e))?).await?;
    let a = app.clone();
    let keep = app.state.config.store.keep_crawls as usize;
    let crawl = blocking("storing an upload", move || {
        let comparer =
            Comparer::new(a.state.store.clone(), a.state.plugins.clone(), Some(a.state.metrics.clone()));
        let rec = upload::ingest(&comparer, &site_cfg, images, keep)?;
        a.review.refresh_pending()?;
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
    }
}
