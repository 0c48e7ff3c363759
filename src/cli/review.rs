//! `sitediff approve|reject SITE [--crawl ID]` and `sitediff approve SITE --crawl ID --restore`:
//! review verdicts from the command line, through the same review actions as the daemon's UI and
//! API. Approving a crawl older than the site's newest approval is refused (exit 2, with the
//! reason); `--restore` moves the baselines back on purpose and lists them.

use std::process::ExitCode;

use super::client::ServerArgs;
use super::{find_site, open_store, remote, ConfigArg, EXIT_OK};
pub use sitediff::review::Verdict;
use sitediff::review::{Review, ReviewError};

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// The site whose crawl is reviewed.
    pub site: String,
    /// The crawl id (default: the site's latest crawl).
    #[arg(long)]
    pub crawl: Option<u64>,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub review: ReviewArgs,
    /// Make an older crawl the baseline again, on purpose: baselines from newer crawls move back
    /// to its captures (each one listed).
    #[arg(long)]
    pub restore: bool,
}

pub fn approve(args: &ApproveArgs) -> anyhow::Result<ExitCode> {
    if let Some(client) = args.review.server.client()? {
        let action = if args.restore { "restore" } else { "approve" };
        return remote::verdict(&client, &args.review.site, args.review.crawl, action);
    }
    if !args.restore {
        return run(&args.review, Verdict::Approve);
    }
    let (store, crawl) = resolve(&args.review)?;
    let done = Review::new(store).restore(crawl)?;
    let back = done.moved.iter().filter(|m| m.is_back()).count();
    eprintln!(
        "crawl {} of {} restored: {} baselines changed, {back} moved back to older captures",
        done.crawl.id,
        done.crawl.site,
        done.moved.len()
    );
    for m in &done.moved {
        match m.from {
            Some(from) => eprintln!("  {}: crawl {from} -> crawl {}", m.key, m.to),
            None => eprintln!("  {}: (none) -> crawl {}", m.key, m.to),
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

pub fn run(args: &ReviewArgs, verdict: Verdict) -> anyhow::Result<ExitCode> {
    if let Some(client) = args.server.client()? {
        let action = match verdict {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        };
        return remote::verdict(&client, &args.site, args.crawl, action);
    }
    let (store, crawl) = resolve(args)?;
    let rec = match Review::new(store.clone()).verdict(crawl, verdict) {
        Ok(rec) => rec,
        Err(e @ ReviewError::Verdict { .. }) if is_rollback(&e) => {
            // The reason ends "restore it to do that on purpose": say how.
            let hint = format!("sitediff approve {} --crawl {crawl} --restore", shell_word(&args.site));
            anyhow::bail!("{}: {hint}", sitediff::errors::chain(&e));
        }
        Err(e) => return Err(e.into()),
    };
    match verdict {
        Verdict::Approve => {
            let n = store.baselines(&args.site)?.len();
            eprintln!("crawl {} of {} approved: {n} page baselines", rec.id, rec.site);
        }
        Verdict::Reject => eprintln!("crawl {} of {} rejected; baselines unchanged", rec.id, rec.site),
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// Open the store and find the crawl the arguments mean.
fn resolve(args: &ReviewArgs) -> anyhow::Result<(sitediff::store::Store, u64)> {
    let cfg = args.config.load()?;
    let store = open_store(&cfg)?;
    // Pair crawls run with `sitediff pair` live under a site name the config need not have.
    if cfg.site(&args.site).is_none() && store.crawl_ids(&args.site)?.is_empty() {
        find_site(&cfg, &args.site)?;
    }
    let crawl = store.resolve_crawl(&args.site, args.crawl)?;
    Ok((store, crawl.id))
}

fn is_rollback(e: &ReviewError) -> bool {
    matches!(e, ReviewError::Verdict { source, .. } if source.is_rollback())
}

/// A site name as one shell word (quoted when it needs to be).
fn shell_word(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
