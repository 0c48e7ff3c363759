//! `DecodedCache`: decoded baselines kept in memory across crawls, so that a baseline compared sweep
//! after sweep is PNG-decoded once.
//!
//! Daemon pattern (inside `spawn_blocking`, the cache shared as `Arc<DecodedCache>`):
//! ```ignore
//! let base = cache.get_or_decode(&baseline_png, "baseline")?;          // Arc<RgbaImage>
//! let outcome = diff::compare_sources(
//!     ImageSource::Decoded(&base),                                       // no decode, no page faults
//!     ImageSource::Png { bytes: &capture_png, name: url.as_str() },      // streamed on its own thread
//!     &opts, Some(&mut diff_png_writer))?;
//! ```
//! Keys are BLAKE3 hashes of the PNG bytes ([`content_key`]); a store that already keeps such hashes
//! can call [`DecodedCache::get`] / [`DecodedCache::insert`] with them and skip hashing.
//!
//! Recency order is `lru::LruCache` (unbounded by count); the bound is the total of decoded bytes,
//! kept here: least recently used images go until the new one fits.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::{decode_png, DiffError, RgbaImage};

/// Content hash identifying an encoded image.
pub fn content_key(png: &[u8]) -> [u8; 32] {
    *blake3::hash(png).as_bytes()
}

struct Inner {
    images: LruCache<[u8; 32], Arc<RgbaImage>>,
    /// Sum of `byte_size` over `images`.
    bytes: usize,
}

/// Thread-safe LRU of decoded images bounded by total pixel bytes.
pub struct DecodedCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for DecodedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.usage();
        f.debug_struct("DecodedCache")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish()
    }
}

impl DecodedCache {
    /// A cache holding at most `max_bytes` of decoded pixels (an image larger than that is not kept).
    pub fn new(max_bytes: usize) -> DecodedCache {
        DecodedCache { max_bytes, inner: Mutex::new(Inner { images: LruCache::unbounded(), bytes: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent: recover it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decoded image for `key`, if cached (marks it recently used).
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<RgbaImage>> {
        self.lock().images.get(key).map(Arc::clone)
    }

    /// Add an image, evicting least recently used ones to stay within the byte bound.
    pub fn insert(&self, key: [u8; 32], image: Arc<RgbaImage>) {
        let size = image.byte_size();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.images.put(key, image) {
            inner.bytes -= old.byte_size();
        }
        inner.bytes += size;
        // The new image is the most recent and fits on its own: it is never the one evicted.
        while inner.bytes > self.max_bytes {
            let Some((_, old)) = inner.images.pop_lru() else {
                break;
            };
            inner.bytes -= old.byte_size();
        }
    }

    /// Cached decode of PNG bytes (decoding happens outside the lock).
    pub fn get_or_decode(&self, png: &[u8], name: &str) -> Result<Arc<RgbaImage>, DiffError> {
        let key = content_key(png);
        if let Some(img) = self.get(&key) {
            return Ok(img);
        }
        let img = Arc::new(decode_png(png, name)?);
        self.insert(key, Arc::clone(&img));
        Ok(img)
    }

    /// (entries, bytes) currently held.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.images.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, fill: u8) -> Arc<RgbaImage> {
        let mut i = RgbaImage::new(w, 1);
        i.data.iter_mut().for_each(|b| *b = fill);
        Arc::new(i)
    }

    #[test]
    fn evicts_least_recently_used_within_bound() {
        let c = DecodedCache::new(100);
        c.insert([1; 32], img(10, 1)); // 40 bytes
        c.insert([2; 32], img(10, 2));
        assert!(c.get(&[1; 32]).is_some()); // 1 is now more recent than 2
        c.insert([3; 32], img(10, 3)); // 120 > 100: evict 2
        assert!(c.get(&[2; 32]).is_none());
        assert!(c.get(&[1; 32]).is_some() && c.get(&[3; 32]).is_some());
        assert_eq!(c.usage(), (2, 80));
        c.insert([4; 32], img(100, 4)); // larger than the whole cache: not kept
        assert_eq!(c.usage(), (2, 80));
    }

    #[test]
    fn reinserting_a_key_replaces_its_bytes_and_refreshes_it() {
        let c = DecodedCache::new(100);
        c.insert([1; 32], img(10, 1)); // 40 bytes
        c.insert([2; 32], img(5, 2)); // 20 bytes
        c.insert([1; 32], img(5, 9)); // replaces 40 by 20; 1 is now the most recent
        assert_eq!(c.usage(), (2, 40));
        assert_eq!(c.get(&[1; 32]).map(|i| i.data[0]), Some(9));
        c.insert([3; 32], img(20, 3)); // 120 > 100: evict 2 (least recent), then 40 + 80 fits
        assert!(c.get(&[2; 32]).is_none());
        assert_eq!(c.usage(), (2, 100));
    }

    #[test]
    fn get_or_decode_decodes_once() {
        let mut src = RgbaImage::new(3, 2);
        src.data[5] = 200;
        let png = crate::diff::encode_png(&src).expect("encode");
        let c = DecodedCache::new(1 << 20);
        let a = c.get_or_decode(&png, "p").expect("decode");
        let b = c.get_or_decode(&png, "p").expect("cached");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a, src);
        assert!(c.get_or_decode(b"not a png", "bad").is_err());
    }
}
