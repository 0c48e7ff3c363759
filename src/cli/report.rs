//! `sitediff report CRAWL [--site SITE] --format junit|html|json [--out PATH]`: a finished crawl's
//! report from the local store (read beside a running daemon) or, with `--server`, from the daemon.
//! CRAWL is a crawl id, or `latest` with `--site`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::client::ServerArgs;
use super::outcome::{write_html, write_junit};
use super::remote::{fetch_blobs, resolve_crawl, Records};
use super::{local_ui_base, open_store_for_reading, runtime, ConfigArg, EXIT_OK};
use sitediff::report::{junit, CrawlReport};
use sitediff::store::{CrawlRecord, PageRecord};

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JUnit XML (one testsuite, one testcase per page).
    Junit,
    /// A self-contained directory (index.html and images) that works from file://.
    Html,
    /// The `crawl --json` object.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The crawl id, or `latest` (with --site).
    pub crawl: String,
    /// The crawl's site (required with `latest`; otherwise checked).
    #[arg(long)]
    pub site: Option<String>,
    #[arg(long, value_enum)]
    pub format: Format,
    /// Where to write (junit/json: a file, default stdout; html: a directory, default
    /// `sitediff-report-CRAWL`).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

fn crawl_id(args: &ReportArgs) -> anyhow::Result<Option<u64>> {
    if args.crawl == "latest" {
        if args.site.is_none() {
            anyhow::bail!("`latest` needs --site SITE");
        }
        return Ok(None);
    }
    args.crawl
        .parse::<u64>()
        .map(Some)
        .with_context(|| format!("CRAWL {:?} is neither a crawl id nor `latest`", args.crawl))
}

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let id = crawl_id(args)?;
    let (crawl, pages, blobs, ui) = match args.server.client()? {
        Some(client) => runtime()?.block_on(async {
            let id = match (id, &args.site) {
                (Some(id), _) => id,
                (None, Some(site)) => resolve_crawl(&client, site, None).await?,
                (None, None) => anyhow::bail!("`latest` needs --site SITE"),
            };
            let r: Records = client.get(&format!("/api/crawls/{id}/records")).await?;
            let blobs = match args.format {
                Format::Html => fetch_blobs(&client, &r.pages).await?,
                _ => HashMap::new(),
            };
            anyhow::Ok((r.crawl, r.pages, blobs, client.base()))
        })?,
        None => {
            let cfg = args.config.load()?;
            let store = open_store_for_reading(&cfg)?;
            let crawl: CrawlRecord = match (&args.site, id) {
                (Some(site), id) => store.resolve_crawl(site, id)?,
                (None, Some(id)) => {
                    store.crawl(id)?.ok_or_else(|| anyhow::anyhow!("no crawl {id} in the store"))?
                }
                (None, None) => anyhow::bail!("`latest` needs --site SITE"),
            };
            let pages: Vec<PageRecord> = store.pages(crawl.id)?;
            let mut blobs = HashMap::new();
            if args.format == Format::Html {
                for h in sitediff::report::html::needed_blobs(&pages) {
                    if let Some(b) = store.blob(&h)? {
                        blobs.insert(h, b);
                    }
                }
            }
            (crawl, pages, blobs, local_ui_base(&cfg))
        }
    };
    if let Some(site) = &args.site {
        if &crawl.site != site {
            anyhow::bail!("crawl {} belongs to site {:?}, not {site:?}", crawl.id, crawl.site);
        }
    }
    let report = CrawlReport::new(&crawl, &pages);
    match args.format {
        Format::Json => emit(args.out.as_ref(), &serde_json::to_string(&report)?)?,
        Format::Junit => match &args.out {
            Some(path) => write_junit(path, &report, &ui)?,
            None => print!("{}", junit::render(&report, &ui)),
        },
        Format::Html => {
            let dir =
                args.out.clone().unwrap_or_else(|| PathBuf::from(format!("sitediff-report-{}", crawl.id)));
            write_html(&dir, &report, &pages, &blobs, &ui)?;
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn emit(out: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            std::fs::write(p, format!("{text}\n")).with_context(|| format!("cannot write {}", p.display()))
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}
