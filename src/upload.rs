//! Supplied images (Diff My Images): screenshots made elsewhere become a crawl of kind `upload`,
//! each PNG compared with its page key's baseline, reviewed and approved like any crawl. Used by
//! `sitediff upload SITE DIR` and `POST /api/sites/{site}/uploads`. Blocking (store, diff).
//!
//! Page keys from file names: the name (a path relative to the upload directory, or a multipart
//! part's file name) minus `.png`, percent-decoded, with `/` prepended when missing:
//! `docs/intro.html.png` -> `/docs/intro.html`, `index.png` -> `/index`, `%2F.png` -> `/`,
//! `sub%2F.png` -> `/sub/`, `a.html%3Fx%3D1.png` -> `/a.html?x=1`.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use rayon::prelude::*;

use crate::compare::Comparer;
use crate::config::SiteConfig;
use crate::store::{now_ms, Blob, CrawlKind, CrawlRecord, CrawlStatus, Hash, PageRecord, StoreError};

/// Images accepted in one upload.
pub const MAX_UPLOAD_IMAGES: usize = 5_000;
/// Largest single PNG accepted.
pub const MAX_IMAGE_BYTES: usize = 32 * 1024 * 1024;
/// Largest image accepted, in pixels (e.g. 1280 x 78000).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;
/// Longest page key accepted.
pub const MAX_KEY_LEN: usize = 2048;
/// The file extension of uploaded PNG images.
pub const PNG_EXTENSION: &str = ".png";
/// Every file extension of uploaded images (JPEG and WebP are stored as PNG).
pub const IMAGE_EXTENSIONS: [&str; 4] = [PNG_EXTENSION, ".jpg", ".jpeg", ".webp"];

/// Why an upload was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("site {site}: no PNG images were given")]
    Empty { site: String },
    #[error("site {site}: {count} images is more than the {limit} accepted at once")]
    TooMany { site: String, count: usize, limit: usize },
    #[error("site {site}: {name}: {bytes} bytes is more than the {MAX_IMAGE_BYTES} accepted")]
    TooBig { site: String, name: String, bytes: usize },
    #[error("site {site}: {name}: not a PNG image: {source}")]
    NotPng {
        site: String,
        name: String,
        #[source]
        source: png::DecodingError,
    },
    #[error("site {site}: {name}: not a readable {format} image: {source}")]
    NotImage {
        site: String,
        name: String,
        format: &'static str,
        #[source]
        source: Box<image::ImageError>,
    },
    #[error("site {site}: {name}: cannot convert it to PNG: {source}")]
    Convert {
        site: String,
        name: String,
        #[source]
        source: crate::diff::DiffError,
    },
    #[error("site {site}: {name}: {width}x{height} is more than {MAX_IMAGE_PIXELS} pixels")]
    TooManyPixels { site: String, name: String, width: u32, height: u32 },
    #[error("site {site}: {name}: cannot make a page key of it: {reason}")]
    BadKey { site: String, name: String, reason: String },
    #[error("site {site}: page key {key:?} is given twice ({first} and {second})")]
    DuplicateKey { site: String, key: String, first: String, second: String },
    #[error("site {site}: cannot read {path}: {source}")]
    Read {
        site: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("site {site}: {source}")]
    Store {
        site: String,
        #[source]
        source: StoreError,
    },
}

impl UploadError {
    /// Whether the request was at fault (as opposed to the store).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, UploadError::Store { .. } | UploadError::Read { .. })
    }
}

/// One supplied screenshot.
#[derive(Debug, Clone)]
pub struct UploadedImage {
    pub key: String,
    /// Where it came from (file or part name), for messages and the page's `url`.
    pub name: String,
    pub png: Vec<u8>,
}

/// The page key a file name stands for (see the module docs); `None` when it is not a `.png` name.
pub fn key_from_file_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    let Some(ext) = IMAGE_EXTENSIONS.iter().find(|e| lower.ends_with(*e)) else {
        return Err(format!("the name does not end in {}", IMAGE_EXTENSIONS.join(", ")));
    };
    let stem = &name[..name.len() - ext.len()];
    let stem = stem.replace('\\', "/");
    let decoded =
        percent_decode_str(&stem).decode_utf8().map_err(|_| "not UTF-8 once decoded".to_string())?;
    let key = if decoded.starts_with('/') { decoded.into_owned() } else { format!("/{decoded}") };
    check_key(&key)?;
    Ok(key)
}

/// Keys are kept printable and bounded (they become metric labels and URLs in the UI).
pub fn check_key(key: &str) -> Result<(), String> {
    if !key.starts_with('/') {
        return Err("a page key starts with '/'".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("longer than {MAX_KEY_LEN} bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err("control characters".into());
    }
    if key.split('/').any(|seg| seg == "..") {
        return Err("a '..' segment".into());
    }
    Ok(())
}

/// Width and height from the header of the PNG `name` of `site`, refusing non-PNGs and oversized
/// images.
pub fn png_size(site: &str, name: &str, bytes: &[u8]) -> Result<(u32, u32), UploadError> {
    let (site, name) = (site.to_string(), name.to_string());
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(UploadError::TooBig { site, name, bytes: bytes.len() });
    }
    let reader = match png::Decoder::new(Cursor::new(bytes)).read_info() {
        Ok(r) => r,
        Err(source) => return Err(UploadError::NotPng { site, name, source }),
    };
    let (width, height) = (reader.info().width, reader.info().height);
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(UploadError::TooManyPixels { site, name, width, height });
    }
    Ok((width, height))
}

/// Width and height of an uploaded PNG, JPEG or WebP image (from its header), refusing other
/// files and oversized images.
pub fn image_size(site: &str, name: &str, bytes: &[u8]) -> Result<(u32, u32), UploadError> {
    use crate::diff::ImageFormat;
    let format = match ImageFormat::sniff(bytes) {
        Some(ImageFormat::Jpeg) => (ImageFormat::Jpeg, image::ImageFormat::Jpeg),
        Some(ImageFormat::WebP) => (ImageFormat::WebP, image::ImageFormat::WebP),
        _ => return png_size(site, name, bytes),
    };
    let (site, name) = (site.to_string(), name.to_string());
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(UploadError::TooBig { site, name, bytes: bytes.len() });
    }
    let (width, height) = image::ImageReader::with_format(Cursor::new(bytes), format.1)
        .into_dimensions()
        .map_err(|source| UploadError::NotImage {
            site: site.clone(),
            name: name.clone(),
            format: format.0.as_str(),
            source: Box::new(source),
        })?;
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(UploadError::TooManyPixels { site, name, width, height });
    }
    Ok((width, height))
}

/// Every `*.png`, `*.jpg`, `*.jpeg` and `*.webp` under `dir` (recursively), keyed by its path
/// relative to `dir`.
pub fn read_dir_images(site: &str, dir: &Path) -> Result<Vec<UploadedImage>, UploadError> {
    let read_err =
        |path: &Path, source| UploadError::Read { site: site.to_string(), path: path.to_path_buf(), source };
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| read_err(&d, e))? {
            let entry = entry.map_err(|e| read_err(&d, e))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(|e| read_err(&path, e))?;
            if ty.is_dir() {
                stack.push(path);
                continue;
            }
            let is_png = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x[1..].eq_ignore_ascii_case(e)));
            if !ty.is_file() || !is_png {
                continue;
            }
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            let name = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
            let key = key_from_file_name(&name).map_err(|reason| UploadError::BadKey {
                site: site.to_string(),
                name: name.clone(),
                reason,
            })?;
            if out.len() >= MAX_UPLOAD_IMAGES {
                return Err(UploadError::TooMany {
                    site: site.into(),
                    count: out.len() + 1,
                    limit: MAX_UPLOAD_IMAGES,
                });
            }
            let png = std::fs::read(&path).map_err(|e| read_err(&path, e))?;
            out.push(UploadedImage { key, name, png });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Check a set of images before anything is stored: PNGs of sane size, distinct keys.
fn check_images(site: &str, images: &[UploadedImage]) -> Result<Vec<(u32, u32)>, UploadError> {
    if images.is_empty() {
        return Err(UploadError::Empty { site: site.into() });
    }
    if images.len() > MAX_UPLOAD_IMAGES {
        return Err(UploadError::TooMany {
            site: site.into(),
            count: images.len(),
            limit: MAX_UPLOAD_IMAGES,
        });
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut sizes = Vec::with_capacity(images.len());
    for img in images {
        check_key(&img.key).map_err(|reason| UploadError::BadKey {
            site: site.into(),
            name: img.name.clone(),
            reason,
        })?;
        if let Some(first) = seen.insert(&img.key, &img.name) {
            return Err(UploadError::DuplicateKey {
                site: site.into(),
                key: img.key.clone(),
                first: first.to_string(),
                second: img.name.clone(),
            });
        }
        sizes.push(image_size(site, &img.name, &img.png)?);
    }
    Ok(sizes)
}

/// Store the images as a new `upload` crawl of `site`, each compared with its key's baseline
/// (blocking; the comparisons run on rayon). Returns the finished crawl (status `reviewing`, or
/// `passed` when there is nothing to review).
pub fn ingest(
    comparer: &Comparer,
    site: &SiteConfig,
    images: Vec<UploadedImage>,
    keep_crawls: usize,
) -> Result<CrawlRecord, UploadError> {
    let started = std::time::Instant::now();
    let name = site.name.as_str();
    let store_err = |source| UploadError::Store { site: name.to_string(), source };
    let sizes = check_images(name, &images)?;
    // JPEG and WebP are decoded and stored as PNG (what captures are, and what the diff streams).
    let images: Vec<UploadedImage> = images
        .into_par_iter()
        .map(|mut img| {
            if let std::borrow::Cow::Owned(png) =
                crate::diff::to_png(&img.png, &img.name).map_err(|source| UploadError::Convert {
                    site: name.to_string(),
                    name: img.name.clone(),
                    source,
                })?
            {
                img.png = png;
            }
            Ok(img)
        })
        .collect::<Result<_, UploadError>>()?;
    let store = &comparer.store;
    let basis = store.comparison_basis(name).map_err(store_err)?;
    let baselines = &basis.baselines;
    let crawl =
        store.begin_crawl(name, CrawlKind::Upload, site.scope.prefix().as_str(), None).map_err(store_err)?;
    let results: Result<Vec<PageRecord>, StoreError> = images
        .into_par_iter()
        .zip(sizes)
        .map(|(img, (width, height))| {
            let rec = PageRecord {
                png: Some(Hash::of(&img.png)),
                width,
                height,
                ..PageRecord::new(img.key.clone(), format!("upload:{}", img.name))
            };
            let baseline = baselines.get(&img.key).cloned();
            let c = comparer.compare_with_baseline(site, rec, vec![img.png], baseline)?;
            let blobs: Vec<Blob<'_>> = c.blobs.iter().map(|b| Blob::new(b)).collect();
            store.put_page(crawl.id, &c.record, &blobs)?;
            Ok(c.record)
        })
        .collect();
    let mut rec = crawl;
    rec.finished_at = Some(now_ms());
    let mut pages = match results {
        Ok(p) => p,
        Err(e) => {
            rec.status = CrawlStatus::Failed;
            rec.error = Some(e.to_string());
            if let Err(write) = store.update_crawl(&rec) {
                tracing::warn!(site = %name, crawl = rec.id, error = %write, "cannot record the upload as failed");
            }
            if let Some(m) = &comparer.metrics {
                m.crawl_ended(name, CrawlStatus::Failed, started.elapsed().as_secs_f64());
            }
            return Err(store_err(e));
        }
    };
    rec.tally(&pages);
    rec.status = CrawlStatus::Reviewing;
    crate::sweep::store_finished_crawl(store, &mut rec, basis.against, &mut pages, name, keep_crawls)
        .map_err(store_err)?;
    if let Some(m) = &comparer.metrics {
        m.register_site(name);
        for p in &pages {
            m.page_captured(name, p.outcome);
            if p.truncated {
                m.page_truncated(name);
            }
        }
        m.crawl_ended(name, rec.status, started.elapsed().as_secs_f64());
        crate::settle::export_last_crawl(m, &rec, site.page_metrics.then_some(pages.as_slice()));
    }
    tracing::info!(site = %name, crawl = rec.id, pages = rec.counts.pages, changed = rec.counts.changed, "upload stored");
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_file_names() {
        assert_eq!(key_from_file_name("index.png").unwrap(), "/index");
        assert_eq!(key_from_file_name("docs/intro.html.png").unwrap(), "/docs/intro.html");
        assert_eq!(key_from_file_name("%2F.png").unwrap(), "/");
        assert_eq!(key_from_file_name("sub%2F.PNG").unwrap(), "/sub/");
        assert_eq!(key_from_file_name("a.html%3Fx%3D1.png").unwrap(), "/a.html?x=1");
        assert_eq!(key_from_file_name("/abs.png").unwrap(), "/abs");
        assert!(key_from_file_name("notes.txt").is_err());
        assert!(key_from_file_name("../up.png").is_err());
        assert!(key_from_file_name("a%0Ab.png").is_err());
        assert!(key_from_file_name(&format!("{}.png", "x".repeat(MAX_KEY_LEN + 1))).is_err());
    }

    #[test]
    fn png_headers_are_checked() {
        let img = crate::diff::RgbaImage { width: 3, height: 2, data: vec![255; 3 * 2 * 4] };
        let png = crate::diff::encode_png(&img).unwrap();
        assert_eq!(png_size("s", "a.png", &png).unwrap(), (3, 2));
        let e = png_size("s", "x.png", b"GIF89a....").unwrap_err();
        assert!(matches!(e, UploadError::NotPng { .. }), "{e:?}");
        assert!(e.to_string().starts_with("site s: x.png: not a PNG image: "), "{e}");
        assert!(std::error::Error::source(&e).is_some_and(|s| s.is::<png::DecodingError>()));
        assert!(e.is_client_error());
        let huge = vec![0; MAX_IMAGE_BYTES + 1];
        assert!(
            matches!(png_size("s", "h.png", &huge), Err(UploadError::TooBig { bytes, .. }) if bytes == huge.len())
        );
        let images = vec![
            UploadedImage { key: "/a".into(), name: "a.png".into(), png: png.clone() },
            UploadedImage { key: "/a".into(), name: "x/../a.png".into(), png },
        ];
        assert!(matches!(check_images("s", &images), Err(UploadError::DuplicateKey { .. })));
        assert!(matches!(check_images("s", &[]), Err(UploadError::Empty { .. })));
    }
}
