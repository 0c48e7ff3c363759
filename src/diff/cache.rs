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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{decode_png, DiffError, RgbaImage};

/// Content hash identifying an encoded image.
pub fn content_key(png: &[u8]) -> [u8; 32] {
    *blake3::hash(png).as_bytes()
}

struct Entry {
    image: Arc<RgbaImage>,
    last_used: u64,
}

struct Inner {
    map: HashMap<[u8; 32], Entry>,
    bytes: usize,
    tick: u64,
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
        DecodedCache { max_bytes, inner: Mutex::new(Inner { map: HashMap::new(), bytes: 0, tick: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent: recover it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decoded image for `key`, if cached (marks it recently used).
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<RgbaImage>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.map.get_mut(key).map(|e| {
            e.last_used = tick;
            Arc::clone(&e.image)
        })
    }

    /// Add an image, evicting least recently used ones to stay within the byte bound.
    pub fn insert(&self, key: [u8; 32], image: Arc<RgbaImage>) {
        let size = image.byte_size();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.map.insert(key, Entry { image, last_used: tick }) {
            inner.bytes -= old.image.byte_size();
        }
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some(victim) = inner.map.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k) else {
                break;
            };
            if let Some(e) = inner.map.remove(&victim) {
                inner.bytes -= e.image.byte_size();
            }
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
        (inner.map.len(), inner.bytes)
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
