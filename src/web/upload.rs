//! `POST /api/sites/{site}/uploads`: a multipart body of PNG screenshots becomes an `upload` crawl
//! of the site (see `crate::upload`). Each part is one image; its page key is the part's name when
//! that starts with `/`, else derived from its file name (or name) as `sitediff upload` does.
//! The route and its token check before the body is read are in `routes`.
//!
//! The body is parsed as it arrives (multer over the body stream), every limit enforced while
//! reading: the whole body ([`MAX_UPLOAD_BODY_BYTES`]), each part ([`upload::MAX_IMAGE_BYTES`],
//! and a PNG signature and header in its first bytes), the number of parts, the bytes between
//! two parts' contents ([`MAX_BETWEEN_PARTS`]: preamble, part headers), and the time without
//! progress (`server.body_timeout_ms`). So garbage costs at most one part's worth of memory, never
//! the body's. After a refusal the rest of the body is read and dropped (within the same limits),
//! so that the client gets the answer rather than a broken connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use warp::http::{header, HeaderMap, StatusCode};

use super::app::App;
use super::data::{blocking, ApiCrawl};
use super::error::RequestError;
use super::http::{json, BodyStream, Request, Response};
use crate::compare::Comparer;
use crate::upload::{self, UploadedImage};

/// Largest upload body (all images together).
pub const MAX_UPLOAD_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Most bytes of a multipart body outside the parts' contents before the next part starts
/// (the preamble, the part's headers, the boundary).
pub const MAX_BETWEEN_PARTS: u64 = 64 * 1024;
/// The 8-byte PNG signature, then the IHDR chunk's length (13) and type.
const PNG_START: &[u8; 16] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR";
/// Bytes of a PNG up to its width and height.
const PNG_HEADER_LEN: usize = 24;

/// Why reading the body stopped (kept beside multer's error, which only wraps it).
#[derive(Debug, Clone, thiserror::Error)]
enum StreamStop {
    #[error("the body is larger than {MAX_UPLOAD_BODY_BYTES} bytes")]
    TooLarge,
    #[error("no multipart part within {MAX_BETWEEN_PARTS} bytes")]
    NoPart,
    #[error("no part of the body for {0:?}")]
    TimedOut(Duration),
    #[error("cannot read the body")]
    Unreadable(Arc<warp::Error>),
}

/// The body, metered: total size, the bytes allowed until the next part, the time between chunks.
struct Source {
    body: tokio::sync::Mutex<BodyStream>,
    read: AtomicU64,
    /// `read` may not pass this (set while waiting for the next part).
    window_end: AtomicU64,
    timeout: Duration,
    stop: Mutex<Option<StreamStop>>,
}

impl Source {
    fn new(body: BodyStream, timeout: Duration) -> Arc<Source> {
        Arc::new(Source {
            body: tokio::sync::Mutex::new(body),
            read: AtomicU64::new(0),
            window_end: AtomicU64::new(u64::MAX),
            timeout,
            stop: Mutex::new(None),
        })
    }

    /// The next chunk, or why there is none (recorded).
    async fn next(&self) -> Option<Result<Bytes, StreamStop>> {
        let mut body = self.body.lock().await;
        let result = match tokio::time::timeout(self.timeout, body.next()).await {
            Err(_) => Err(StreamStop::TimedOut(self.timeout)),
            Ok(None) => return None,
            Ok(Some(Err(e))) => Err(StreamStop::Unreadable(Arc::new(e))),
            Ok(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                let read = self.read.fetch_add(n, Ordering::AcqRel) + n;
                if read > MAX_UPLOAD_BODY_BYTES as u64 {
                    Err(StreamStop::TooLarge)
                } else if read > self.window_end.load(Ordering::Acquire) {
                    Err(StreamStop::NoPart)
                } else {
                    Ok(chunk)
                }
            }
        };
        if let Err(stop) = &result {
            *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop.clone());
        }
        Some(result)
    }

    /// From now on, at most [`MAX_BETWEEN_PARTS`] more bytes until [`Source::in_part`].
    fn between_parts(&self) {
        let read = self.read.load(Ordering::Acquire);
        self.window_end.store(read.saturating_add(MAX_BETWEEN_PARTS), Ordering::Release);
    }

    fn in_part(&self) {
        self.window_end.store(u64::MAX, Ordering::Release);
    }

    /// The error for a multer failure: ours when the stream stopped, else `other`'s.
    fn error(&self, other: impl FnOnce() -> RequestError) -> RequestError {
        match self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(StreamStop::TooLarge) => RequestError::PayloadTooLarge { limit: MAX_UPLOAD_BODY_BYTES },
            Some(StreamStop::NoPart) => RequestError::bad_request(format!(
                "not a multipart body: no part starts within {MAX_BETWEEN_PARTS} bytes"
            )),
            Some(StreamStop::TimedOut(after)) => RequestError::BodyTimeout { after },
            Some(StreamStop::Unreadable(source)) => RequestError::Body { source },
            None => other(),
        }
    }

    /// Read and drop the rest of the body (within the total size and the timeout), so the client
    /// sees the answer. Not after the stream itself failed.
    async fn drain(&self) {
        if self.stop.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return;
        }
        self.in_part();
        while let Some(Ok(_)) = self.next().await {}
    }

    /// The body as multer reads it.
    fn stream(self: &Arc<Self>) -> impl futures::Stream<Item = Result<Bytes, StreamStop>> + Send + 'static {
        futures::stream::unfold(self.clone(), |src| async move {
            let item = src.next().await?;
            Some((item, src))
        })
    }
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

/// The start of a part must be a PNG's (signature, IHDR, and no more pixels than accepted), or a
/// JPEG's or WebP's signature (their size is checked from the whole header, after the part).
fn check_png_start(label: &str, start: &[u8]) -> Result<(), RequestError> {
    let not_png = || {
        RequestError::bad_request(format!(
            "{label}: not a PNG image (no PNG signature and header), nor a JPEG or WebP one"
        ))
    };
    if start.len() >= PNG_HEADER_LEN
        && matches!(
            crate::diff::ImageFormat::sniff(start),
            Some(crate::diff::ImageFormat::Jpeg | crate::diff::ImageFormat::WebP)
        )
    {
        return Ok(());
    }
    if start.len() < PNG_HEADER_LEN || !start.starts_with(PNG_START) {
        return Err(not_png());
    }
    let dim = |at: usize| u32::from_be_bytes([start[at], start[at + 1], start[at + 2], start[at + 3]]);
    let (width, height) = (dim(16), dim(20));
    if u64::from(width) * u64::from(height) > upload::MAX_IMAGE_PIXELS {
        return Err(RequestError::bad_request(format!(
            "{label}: {width}x{height} is more than {} pixels",
            upload::MAX_IMAGE_PIXELS
        )));
    }
    Ok(())
}

/// Split a multipart body into images as it arrives, every limit enforced while reading (see the
/// module docs); after a refusal the rest of the body is drained.
pub async fn parse(
    site: &str,
    headers: &HeaderMap,
    body: BodyStream,
    timeout: Duration,
) -> Result<Vec<UploadedImage>, RequestError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(ct).map_err(|source| RequestError::NotMultipart { source })?;
    let source = Source::new(body, timeout);
    let result = read_parts(site, &source, boundary).await;
    if result.is_err() {
        source.drain().await;
    }
    result
}

async fn read_parts(
    site: &str,
    source: &Arc<Source>,
    boundary: String,
) -> Result<Vec<UploadedImage>, RequestError> {
    let mut mp = multer::Multipart::new(source.stream(), boundary);
    let mut images = Vec::new();
    loop {
        source.between_parts();
        let next =
            mp.next_field().await.map_err(|e| source.error(|| RequestError::Multipart { source: e }))?;
        let Some(mut field) = next else { break };
        source.in_part();
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
        let mut png: Vec<u8> = Vec::new();
        loop {
            let chunk = field.chunk().await.map_err(|e| {
                source.error(|| RequestError::MultipartPart { part: label.clone(), source: e })
            })?;
            let Some(chunk) = chunk else { break };
            if png.len() + chunk.len() > upload::MAX_IMAGE_BYTES {
                return Err(RequestError::PartTooLarge { part: label, limit: upload::MAX_IMAGE_BYTES });
            }
            let checked = png.len() >= PNG_HEADER_LEN;
            png.extend_from_slice(&chunk);
            if !checked && png.len() >= PNG_HEADER_LEN {
                check_png_start(&label, &png)?;
            }
        }
        check_png_start(&label, &png)?;
        // The whole header (chunk framing and checksums up to the image data), before the next part.
        upload::image_size(site, &label, &png)?;
        images.push(UploadedImage { key, name: label, png });
    }
    Ok(images)
}

/// `POST /api/sites/{site}/uploads`: parse, compare with the site's baselines, store; 201 with the
/// new crawl.
pub async fn handle(
    app: &Arc<App>,
    req: Request,
    site: &str,
    body: BodyStream,
) -> Result<Response, RequestError> {
    let live = app.state.scheduler.config();
    let Some(site_cfg) = live.site(site).cloned() else {
        return Err(RequestError::not_found(format!("site {site:?} (uploads need a configured site)")));
    };
    let timeout = app.state.config.server.body_timeout;
    let images = parse(site, &req.headers, body, timeout).await?;
    let a = app.clone();
    let keep = live.store.keep_crawls as usize;
    let plugins = app.state.scheduler.plugins();
    let crawl = blocking("storing an upload", move || {
        let comparer = Comparer::new(a.state.store.clone(), plugins, Some(a.state.metrics.clone()));
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

    #[test]
    fn a_part_must_start_like_a_png() {
        let png = crate::diff::encode_png(&crate::diff::RgbaImage { width: 3, height: 2, data: vec![9; 24] })
            .unwrap();
        assert!(check_png_start("a.png", &png).is_ok());
        assert!(check_png_start("a.png", &png[..PNG_HEADER_LEN - 1]).is_err(), "too short");
        let e = check_png_start("g.png", &[0u8; 64]).unwrap_err().to_string();
        assert!(e.contains("g.png: not a PNG image"), "{e}");
        let mut huge = png[..PNG_HEADER_LEN].to_vec();
        huge[16..24].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]);
        let e = check_png_start("h.png", &huge).unwrap_err().to_string();
        assert!(e.contains("65536x65536 is more than"), "{e}");
    }
}
