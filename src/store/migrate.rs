//! Schema upgrades: each step takes a file from one schema version to the next. Before the first
//! step a copy of the file is made beside it ([`backup_path`]); then every step runs inside the one
//! write transaction that records the new version, so a crash leaves the old or the new schema,
//! never a mixture, and opening the file again simply runs the upgrade again (or finds nothing to
//! do). A file of a newer schema is refused before any of this (see `Store::open`).
//!
//! Adding a schema version N+1 (the pattern every bump follows):
//! 1. set `SCHEMA_VERSION = N+1` in `schema.rs` and append one [`Step`] `from: N` below, named
//!    after the feature (`fn v3_tiles`); additive where possible (new record fields with
//!    `#[serde(default)]`, new tables created on open) so an old record reads as it is;
//! 2. a step that rewrites records goes through [`rewrite_values`] (progress logged for big
//!    stores) and must be idempotent: running it on its own output changes nothing;
//! 3. write `tests/fixtures/store-vN/` with the release binary *before* the change (see
//!    `tests/fixtures/store-v2/README.md`) and add it to `FIXTURES` in `tests/it/fixture_store.rs`;
//!    the test `every_older_schema_has_a_fixture` fails until it is there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::db_err;
use super::error::StoreError;
use super::schema::{IGNORE_AREAS, META, META_SCHEMA_VERSION, SCHEMA_VERSION};

/// One upgrade step: from schema `from` to `from + 1`, inside the upgrade's write transaction.
pub(super) struct Step {
    pub(super) from: u64,
    /// What changes, for the log line.
    pub(super) what: &'static str,
    pub(super) run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every step, in order; the last one ends at [`SCHEMA_VERSION`].
pub(super) const STEPS: &[Step] = &[
    Step {
        from: 1,
        what: "crawl status `passed`, page change `still_failing` with its count, page referrers, baseline mask rectangles",
        run: additive_only,
    },
    Step {
        from: 2,
        what: "capture fingerprints, pages reused from an approved crawl (`reused_from`, count `reused`), incremental crawls; review at scale: page thumbnails, change previews, change groups, applied ignore areas, the ignore_areas table",
        run: v3,
    },
];

/// Schema 3: issue 19's fingerprints and issue 20's review-at-scale fields and table.
fn v3(wtx: &WriteTransaction) -> Result<(), StoreError> {
    v3_fingerprints(wtx)?;
    v3_review(wtx)
}

/// Schema 3 (issue 19) only adds record fields with defaults (`fingerprint`, `reused_from`,
/// `counts.reused`, `incremental`): every schema-2 record reads as it is (not fingerprinted:
/// never reused, not reused, a full crawl).
fn v3_fingerprints(_: &WriteTransaction) -> Result<(), StoreError> {
    Ok(())
}

/// Schema 3 (review at scale) adds page record fields with defaults (an older page simply has no
/// thumbnail, preview or group) and the `ignore_areas` table, created here.
fn v3_review(wtx: &WriteTransaction) -> Result<(), StoreError> {
    wtx.open_table(IGNORE_AREAS).map_err(db_err("creating the ignore_areas table"))?;
    Ok(())
}

/// Schema 2 only adds record fields with defaults and enum values older records never hold:
/// every schema-1 record reads as it is, so only the version moves.
fn additive_only(_: &WriteTransaction) -> Result<(), StoreError> {
    Ok(())
}

/// Where the copy of a schema-`found` file is kept before it is upgraded: beside it, e.g.
/// `sitediff.redb.schema-2.bak`.
pub fn backup_path(path: &Path, found: u64) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".schema-{found}.bak"));
    path.with_file_name(name)
}

/// Copy the file at `path` (schema `found`, not being written: the caller holds a read-only
/// handle, which keeps writers out) to [`backup_path`], through a temporary name and a rename so a
/// crash never leaves a half copy under the backup's name. An existing backup is replaced (an
/// earlier upgrade that did not commit left the file as it was).
pub(super) fn backup_before_upgrade(path: &Path, found: u64) -> Result<PathBuf, StoreError> {
    let dest = backup_path(path, found);
    let mut partial = dest.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let started = Instant::now();
    tracing::info!(
        path = %path.display(), backup = %dest.display(),
        bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or_default(), from = found, to = SCHEMA_VERSION,
        "the store needs a schema upgrade: copying it first"
    );
    let copy = || -> std::io::Result<u64> {
        let bytes = std::fs::copy(path, &partial)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &dest)?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; a directory that cannot be opened still has the copy.
            if let Ok(d) = std::fs::File::open(dir) {
                d.sync_all()?;
            }
        }
        Ok(bytes)
    };
    let bytes = copy().map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        StoreError::Backup { path: path.to_path_buf(), dest: dest.clone(), source }
    })?;
    tracing::info!(
        path = %path.display(), backup = %dest.display(), bytes, from = found, to = SCHEMA_VERSION,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "copied the store before upgrading its schema"
    );
    Ok(dest)
}

/// Upgrade a file at schema `found` (older than this build's) to [`SCHEMA_VERSION`] in `wtx`.
/// Returns the descriptions of the steps applied.
pub(super) fn upgrade(wtx: &WriteTransaction, found: u64) -> Result<Vec<&'static str>, StoreError> {
    upgrade_with(STEPS, SCHEMA_VERSION, wtx, found)
}

fn upgrade_with(
    steps: &[Step],
    target: u64,
    wtx: &WriteTransaction,
    found: u64,
) -> Result<Vec<&'static str>, StoreError> {
    const OP: &str = "upgrading the schema";
    let mut version = found;
    let mut applied = Vec::new();
    while version < target {
        let step = steps
            .iter()
            .find(|s| s.from == version)
            .ok_or(StoreError::NoUpgrade { found: version, supported: target })?;
        let started = Instant::now();
        tracing::info!(from = version, to = version + 1, what = step.what, "schema upgrade step");
        (step.run)(wtx)?;
        tracing::info!(
            from = version,
            to = version + 1,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "schema upgrade step done"
        );
        applied.push(step.what);
        version += 1;
    }
    let mut meta = wtx.open_table(META).map_err(db_err(OP))?;
    meta.insert(META_SCHEMA_VERSION, target).map_err(db_err(OP))?;
    Ok(applied)
}

// The helpers below serve steps that rewrite records; the steps so far only add fields with
// defaults, so outside the tests nothing calls them yet.
/// Records between two progress lines of a long step.
#[cfg_attr(not(test), allow(dead_code))]
const PROGRESS_EVERY: u64 = 10_000;
/// At most this long between two progress lines.
#[cfg_attr(not(test), allow(dead_code))]
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Progress of a step over many records, logged every [`PROGRESS_EVERY`] records or
/// [`PROGRESS_INTERVAL`], whichever comes first, so an upgrade of a big store is visibly moving.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    last: Instant,
    /// Progress lines logged so far.
    lines: u32,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Progress {
    pub(super) fn new(what: &'static str, total: u64) -> Progress {
        Progress { what, total, done: 0, last: Instant::now(), lines: 0 }
    }

    pub(super) fn tick(&mut self) {
        self.done += 1;
        if self.done.is_multiple_of(PROGRESS_EVERY) || self.last.elapsed() >= PROGRESS_INTERVAL {
            self.last = Instant::now();
            self.lines += 1;
            let percent = (self.done * 100).checked_div(self.total).unwrap_or(100);
            tracing::info!(
                what = self.what,
                done = self.done,
                total = self.total,
                percent,
                "schema upgrade progress"
            );
        }
    }
}

/// Rewrite the JSON values of one table: `f` gets each stored value and returns the new bytes, or
/// `None` to keep it as it is (an idempotent step returns `None` for a record already in the new
/// shape). Progress is logged as it goes. Returns how many records were rewritten.
///
/// The changed records are collected while reading, then written: redb does not write a table
/// while iterating it. Only changed records are held in memory.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn rewrite_values<K: redb::Key + 'static>(
    wtx: &WriteTransaction,
    table: TableDefinition<K, &'static [u8]>,
    what: &'static str,
    mut f: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<u64, StoreError> {
    const OP: &str = "rewriting records during a schema upgrade";
    let mut t = wtx.open_table(table).map_err(db_err(OP))?;
    let mut progress = Progress::new(what, t.len().map_err(db_err(OP))?);
    let mut changed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for entry in t.iter().map_err(db_err(OP))? {
        let (k, v) = entry.map_err(db_err(OP))?;
        if let Some(new) = f(v.value())? {
            changed.push((K::as_bytes(&k.value()).as_ref().to_vec(), new));
        }
        progress.tick();
    }
    for (k, v) in &changed {
        t.insert(K::from_bytes(k), v.as_slice()).map_err(db_err(OP))?;
    }
    Ok(changed.len() as u64)
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};

    use super::*;

    #[test]
    fn steps_chain_to_the_current_version() {
        let mut v = 1;
        for s in STEPS {
            assert_eq!(s.from, v, "steps are consecutive");
            v += 1;
        }
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn the_backup_sits_beside_the_file_and_names_its_version() {
        assert_eq!(
            backup_path(Path::new("/srv/sd/sitediff.redb"), 2),
            Path::new("/srv/sd/sitediff.redb.schema-2.bak")
        );
        assert_eq!(backup_path(Path::new("db.redb"), 1), Path::new("db.redb.schema-1.bak"));
    }

    const T: TableDefinition<u64, &[u8]> = TableDefinition::new("t");

    /// A made-up step 1 -> 2 that adds a field to every record, the way a real rewriting step does.
    fn add_flag(wtx: &WriteTransaction) -> Result<(), StoreError> {
        rewrite_values(wtx, T, "flag", |v| {
            let mut rec: serde_json::Value = serde_json::from_slice(v).unwrap();
            if rec.get("flag").is_some() {
                return Ok(None);
            }
            rec["flag"] = true.into();
            Ok(Some(serde_json::to_vec(&rec).unwrap()))
        })
        .map(|_| ())
    }

    const TEST_STEPS: &[Step] = &[Step { from: 1, what: "flag", run: add_flag }];

    fn records(db: &Database) -> Vec<String> {
        let rtx = db.begin_read().unwrap();
        let t = rtx.open_table(T).unwrap();
        t.iter().unwrap().map(|e| String::from_utf8(e.unwrap().1.value().to_vec()).unwrap()).collect()
    }

    #[test]
    fn a_rewriting_step_runs_in_one_transaction_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("m.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(T).unwrap();
            for i in 0..(PROGRESS_EVERY + 5) {
                t.insert(i, format!("{{\"n\":{i}}}").as_bytes()).unwrap();
            }
        }
        w.commit().unwrap();

        // Aborted (dropped without commit): nothing changed, version included.
        let w = db.begin_write().unwrap();
        assert_eq!(upgrade_with(TEST_STEPS, 2, &w, 1).unwrap(), ["flag"]);
        drop(w);
        assert!(records(&db).iter().all(|r| !r.contains("flag")));

        let w = db.begin_write().unwrap();
        upgrade_with(TEST_STEPS, 2, &w, 1).unwrap();
        w.commit().unwrap();
        let once = records(&db);
        assert!(once.iter().all(|r| r.contains("\"flag\":true")), "{:?}", &once[..3]);
        assert_eq!(once.len() as u64, PROGRESS_EVERY + 5);

        // Running the step again over its own output changes nothing.
        let w = db.begin_write().unwrap();
        assert_eq!(rewrite_values(&w, T, "flag", |_| Ok(None)).unwrap(), 0);
        add_flag(&w).unwrap();
        w.commit().unwrap();
        assert_eq!(records(&db), once);
        let rtx = db.begin_read().unwrap();
        assert_eq!(rtx.open_table(META).unwrap().get(META_SCHEMA_VERSION).unwrap().unwrap().value(), 2);
    }

    #[test]
    fn a_missing_step_is_an_error_not_a_silent_version_bump() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("m.redb")).unwrap();
        let w = db.begin_write().unwrap();
        let err = upgrade_with(TEST_STEPS, 3, &w, 1).unwrap_err();
        assert!(matches!(err, StoreError::NoUpgrade { found: 2, supported: 3 }), "{err}");
    }

    #[test]
    fn progress_is_logged_every_so_many_records() {
        let mut p = Progress::new("x", PROGRESS_EVERY * 2);
        for _ in 0..(PROGRESS_EVERY * 2 + 1) {
            p.tick();
        }
        assert!(p.lines >= 2, "{} lines", p.lines);
    }
}
