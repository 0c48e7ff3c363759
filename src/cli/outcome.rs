//! The outcome of a finished run, the same in local and client (`--server`) mode: the report
//! printed (human or `--json`), the JUnit/HTML files written, and the exit code computed by the one
//! shared policy ([`exit_code`], with `--fail-on`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK};
use sitediff::report::{html, junit, CrawlReport};
use sitediff::store::{CrawlCounts, CrawlStatus, Hash, PageRecord};

/// What fails a run (exit 1) when at least one page is so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Changed,
    Added,
    Removed,
    /// Newly failing pages.
    Failed,
    New,
    /// Pages failing as in the approved crawl (not by default).
    StillFailing,
}

/// The default `--fail-on`: changed, added, removed or newly failed pages.
pub const DEFAULT_FAIL_ON: [FailOn; 4] = [FailOn::Changed, FailOn::Added, FailOn::Removed, FailOn::Failed];

impl FailOn {
    fn count(self, c: &CrawlCounts) -> u32 {
        match self {
            FailOn::Changed => c.changed,
            FailOn::Added => c.added,
            FailOn::Removed => c.removed,
            FailOn::Failed => c.failed,
            FailOn::New => c.new,
            FailOn::StillFailing => c.still_failing,
        }
    }
}

/// The exit code of a finished crawl: 2 when it did not finish (failed, interrupted, still
/// running), else 1 when any page is of a kind in `fail_on`, else 0.
pub fn exit_code(status: CrawlStatus, counts: &CrawlCounts, fail_on: &[FailOn]) -> u8 {
    match status {
        CrawlStatus::Running | CrawlStatus::Interrupted | CrawlStatus::Failed => EXIT_ERROR,
        CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Approved | CrawlStatus::Rejected => {
            if fail_on.iter().any(|f| f.count(counts) > 0) {
                EXIT_CHANGES
            } else {
                EXIT_OK
            }
        }
    }
}

/// Print a crawl's report: one JSON object on stdout, or the human summary on stderr.
pub fn print_report(report: &CrawlReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        eprint!("{}", report.human());
    }
    Ok(())
}

/// Write the JUnit XML file.
pub fn write_junit(path: &Path, report: &CrawlReport, ui_base: &str) -> anyhow::Result<()> {
    std::fs::write(path, junit::render(report, ui_base))
        .with_context(|| format!("cannot write the JUnit report {}", path.display()))?;
    eprintln!("JUnit report: {}", path.display());
    Ok(())
}

/// Write the HTML report directory with the artifacts in `blobs`.
pub fn write_html(
    dir: &Path,
    report: &CrawlReport,
    pages: &[PageRecord],
    blobs: &HashMap<Hash, Vec<u8>>,
    ui_base: &str,
) -> anyhow::Result<()> {
    let done = html::write_dir(dir, report, pages, &|h| blobs.get(h).cloned(), ui_base)?;
    eprintln!(
        "HTML report: {} ({} images, {} thumbnails)",
        done.index.display(),
        done.images,
        done.thumbnails
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_policy() {
        let c = |f: fn(&mut CrawlCounts)| {
            let mut c = CrawlCounts::default();
            f(&mut c);
            c
        };
        let d = &DEFAULT_FAIL_ON;
        assert_eq!(exit_code(CrawlStatus::Passed, &c(|_| {}), d), EXIT_OK);
        assert_eq!(exit_code(CrawlStatus::Reviewing, &c(|c| c.changed = 1), d), EXIT_CHANGES);
        assert_eq!(exit_code(CrawlStatus::Reviewing, &c(|c| c.failed = 1), d), EXIT_CHANGES);
        assert_eq!(exit_code(CrawlStatus::Reviewing, &c(|c| c.removed = 1), d), EXIT_CHANGES);
        assert_eq!(exit_code(CrawlStatus::Reviewing, &c(|c| c.new = 3), d), EXIT_OK);
        assert_eq!(exit_code(CrawlStatus::Passed, &c(|c| c.still_failing = 2), d), EXIT_OK);
        assert_eq!(
            exit_code(CrawlStatus::Passed, &c(|c| c.still_failing = 2), &[FailOn::StillFailing]),
            EXIT_CHANGES
        );
        assert_eq!(exit_code(CrawlStatus::Reviewing, &c(|c| c.changed = 1), &[FailOn::New]), EXIT_OK);
        assert_eq!(exit_code(CrawlStatus::Interrupted, &c(|_| {}), d), EXIT_ERROR);
        assert_eq!(exit_code(CrawlStatus::Failed, &c(|_| {}), d), EXIT_ERROR);
    }
}
