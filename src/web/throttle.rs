//! Throttling of token guesses per client address: a wrong token at the UI's login form or in an
//! API request's `Authorization` header counts as a failure. The first [`FREE_FAILURES`] cost
//! nothing; from then on each failure locks the address out for twice as long as the one before
//! (1 s, 2 s, 4 s, ... up to [`MAX_LOCK`]), during which every token attempt from it (a right one
//! too) is answered `429 Too Many Requests` with `Retry-After`. A right token clears the record;
//! records are forgotten [`FORGET_AFTER`] after their last failure. IPv6 clients are counted per
//! /64 network (one host usually owns the whole /64). A leaf: it uses nothing else of `web`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before the first lock.
pub const FREE_FAILURES: u32 = 5;
/// The first lock; each further failure doubles it.
pub const FIRST_LOCK: Duration = Duration::from_secs(1);
/// The longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// A record without a failure for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Most addresses remembered (the oldest record goes first past it).
const MAX_CLIENTS: usize = 10_000;

/// Whom a record is about: an IPv4 address or an IPv6 /64 (`None`: the address is unknown).
type ClientKey = Option<IpAddr>;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

/// Failed token attempts per client.
#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<ClientKey, Record>>,
}

fn key(client: Option<IpAddr>) -> ClientKey {
    client.map(|ip| match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    })
}

/// The lock after the `failures`-th failure (none before [`FREE_FAILURES`]).
fn lock_after(failures: u32) -> Option<Duration> {
    let extra = failures.checked_sub(FREE_FAILURES)?;
    let factor = 1u32.checked_shl(extra.min(20)).unwrap_or(u32::MAX);
    Some(FIRST_LOCK.saturating_mul(factor).min(MAX_LOCK))
}

impl Throttle {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Record>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry_after)` while `client` is locked out.
    pub fn check(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        match self.records().get(&key(client)).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Record a wrong token from `client`; returns the lock it now has, if any.
    pub fn failed(&self, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let mut records = self.records();
        records.retain(|_, r| now.saturating_duration_since(r.last_failure) < FORGET_AFTER);
        if records.len() >= MAX_CLIENTS && !records.contains_key(&key(client)) {
            if let Some(oldest) = records.iter().min_by_key(|(_, r)| r.last_failure).map(|(k, _)| *k) {
                records.remove(&oldest);
            }
        }
        let r = records.entry(key(client)).or_insert(Record {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
        let lock = lock_after(r.failures);
        r.locked_until = lock.map(|l| now + l);
        lock
    }

    /// A right token from `client`: its record is cleared.
    pub fn succeeded(&self, client: Option<IpAddr>) {
        self.records().remove(&key(client));
    }
}

/// Whole seconds for `Retry-After`, rounded up (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_free_then_doubling_locks() {
        let t = Throttle::default();
        let ip: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let other: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(t.failed(ip, t0), None);
            assert!(t.check(ip, t0).is_ok());
        }
        assert_eq!(t.failed(ip, t0), Some(FIRST_LOCK));
        assert_eq!(t.check(ip, t0), Err(FIRST_LOCK));
        assert!(t.check(other, t0).is_ok(), "per client");
        let t1 = t0 + FIRST_LOCK;
        assert!(t.check(ip, t1).is_ok(), "the lock ends");
        assert_eq!(t.failed(ip, t1), Some(FIRST_LOCK * 2));
        assert_eq!(t.failed(ip, t1), Some(FIRST_LOCK * 4));
        for _ in 0..40 {
            t.failed(ip, t1);
        }
        assert_eq!(t.check(ip, t1), Err(MAX_LOCK));
        t.succeeded(ip);
        assert!(t.check(ip, t1).is_ok());
        assert_eq!(t.failed(ip, t1), None, "a success starts over");
    }

    #[test]
    fn records_are_forgotten_and_ipv6_counts_per_64() {
        let t = Throttle::default();
        let a: Option<IpAddr> = Some("2001:db8:1:2::1".parse().unwrap());
        let b: Option<IpAddr> = Some("2001:db8:1:2::ffff".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.failed(a, t0);
        }
        assert!(t.check(b, t0).is_err(), "same /64");
        assert!(t.check(Some("2001:db8:1:3::1".parse().unwrap()), t0).is_ok());
        let later = t0 + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(t.failed(a, later), None, "the old failures were forgotten");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
