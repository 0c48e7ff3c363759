//! Schema upgrades: each step takes a file from one schema version to the next inside the same
//! write transaction that records the new version, so a crash leaves the old or the new schema,
//! never a mixture.

use redb::WriteTransaction;

use super::db_err;
use super::error::StoreError;
use super::schema::{IGNORE_AREAS, META, META_SCHEMA_VERSION, SCHEMA_VERSION};

/// One upgrade step.
struct Step {
    from: u64,
    /// What changes, for the log line.
    what: &'static str,
    run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every step, in order; the last one ends at [`SCHEMA_VERSION`].
const STEPS: &[Step] = &[
    Step {
        from: 1,
        what: "crawl status `passed`, page change `still_failing` with its count, page referrers, baseline mask rectangles",
        run: additive_only,
    },
    Step {
        from: 2,
        what: "review at scale: page thumbnails, change previews, change groups, applied ignore areas; the ignore_areas table",
        run: v3_review,
    },
];

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

/// Upgrade a file at schema `found` (older than this build's) to [`SCHEMA_VERSION`] in `wtx`.
/// Returns the descriptions of the steps applied.
pub(super) fn upgrade(wtx: &WriteTransaction, found: u64) -> Result<Vec<&'static str>, StoreError> {
    const OP: &str = "upgrading the schema";
    let mut version = found;
    let mut applied = Vec::new();
    while version < SCHEMA_VERSION {
        let step = STEPS
            .iter()
            .find(|s| s.from == version)
            .ok_or(StoreError::NoUpgrade { found: version, supported: SCHEMA_VERSION })?;
        (step.run)(wtx)?;
        applied.push(step.what);
        version += 1;
    }
    let mut meta = wtx.open_table(META).map_err(db_err(OP))?;
    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION).map_err(db_err(OP))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
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
}
