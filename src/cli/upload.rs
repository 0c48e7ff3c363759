//! `sitediff upload SITE DIR [--json] [--server URL]`: a crawl from screenshots made elsewhere (one
//! PNG per page key: the file's path relative to DIR minus `.png`), compared with the site's
//! baselines. Without `--server` it opens the store itself (no daemon may be running); with
//! `--server` it posts the images to a running daemon's upload API.

use std::path::PathBuf;
use std::process::ExitCode;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::multipart::{Form, Part};

use super::{find_site, load_plugins, open_store, runtime, ConfigArg, EXIT_CHANGES, EXIT_ERROR, EXIT_OK};
use sitediff::compare::Comparer;
use sitediff::report::CrawlReport;
use sitediff::store::CrawlStatus;
use sitediff::upload::{self, UploadedImage};

/// Characters kept as they are in the file names sent to a daemon (the rest percent-encoded).
const FILE_NAME_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'.').remove(b'-').remove(b'_');

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The site (in the config) whose baselines the images are compared with.
    pub site: String,
    /// Directory of PNGs: `DIR/docs/intro.html.png` is the page `/docs/intro.html`.
    pub dir: PathBuf,
    /// One JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Post the images to a running daemon (e.g. http://127.0.0.1:8080) instead of opening the store.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

fn exit_for(status: CrawlStatus, changed: u32) -> ExitCode {
    ExitCode::from(match status {
        CrawlStatus::Reviewing if changed > 0 => EXIT_CHANGES,
        CrawlStatus::Reviewing | CrawlStatus::Passed => EXIT_OK,
        _ => EXIT_ERROR,
    })
}

pub fn run(args: &UploadArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let site = find_site(&cfg, &args.site)?.clone();
    let images = upload::read_dir_images(&site.name, &args.dir)?;
    if let Some(server) = &args.server {
        return post(server, &site.name, cfg.server.token(), images, args.json);
    }
    let plugins = load_plugins(&cfg, &site.plugins)?;
    let store = open_store(&cfg)?;
    let comparer = Comparer::new(store.clone(), plugins, None);
    let crawl = upload::ingest(&comparer, &site, images, cfg.store.keep_crawls as usize)?;
    let pages = store.pages(crawl.id)?;
    let report = CrawlReport::new(&crawl, &pages);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprint!("{}", report.human());
    }
    Ok(exit_for(crawl.status, crawl.counts.changed))
}

/// A multipart/form-data form with one part per image (file name = percent-encoded key + `.png`).
/// The file names are already percent-encoded (ASCII letters, digits, `/._-%`), so reqwest sends
/// them as they are (`percent_encode_noop`), not as RFC 5987 `filename*`.
fn multipart_form(images: Vec<UploadedImage>) -> anyhow::Result<Form> {
    let mut form = Form::new().percent_encode_noop();
    for img in images {
        let file_name = format!("{}.png", utf8_percent_encode(&img.key, FILE_NAME_KEEP));
        form = form.part("image", Part::bytes(img.png).file_name(file_name).mime_str("image/png")?);
    }
    Ok(form)
}

fn post(
    server: &str,
    site: &str,
    token: Option<String>,
    images: Vec<UploadedImage>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let form = multipart_form(images)?;
    let url = format!(
        "{}/api/sites/{}/uploads",
        server.trim_end_matches('/'),
        utf8_percent_encode(site, NON_ALPHANUMERIC)
    );
    let rt = runtime()?;
    let (status, text) = rt.block_on(async {
        let mut req = reqwest::Client::new().post(&url).multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        anyhow::Ok((status, resp.text().await?))
    })?;
    if !status.is_success() {
        anyhow::bail!("{url} answered {status}: {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text)?;
    if json {
        println!("{text}");
    } else {
        eprintln!(
            "upload crawl {} of {}: {} pages, {} changed, {} new",
            v["id"], site, v["counts"]["pages"], v["counts"]["changed"], v["counts"]["new"]
        );
    }
    let changed = v["counts"]["changed"].as_u64().unwrap_or(0) as u32;
    let status = match v["status"].as_str() {
        Some("reviewing") => CrawlStatus::Reviewing,
        Some("passed") => CrawlStatus::Passed,
        _ => CrawlStatus::Failed,
    };
    Ok(exit_for(status, changed))
}
