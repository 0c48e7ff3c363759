//! `sitediff pair --base PREFIX --head PREFIX [--site NAME] [--json]`: Pair Diff of two live copies
//! of a site (e.g. staging against production), page by page, stored as a reviewable pair crawl.

use std::process::ExitCode;

use anyhow::Context;
use url::Url;

use super::crawl::run_site;
use super::ConfigArg;
use sitediff::config::{Config, SiteConfig};
use sitediff::crawl::links::{normalize_url, Scope};

/// Longest site name (the config's rule).
const MAX_SITE_NAME: usize = 64;

#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// The reference copy (e.g. production): each page's counterpart is captured under this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub base: String,
    /// The copy under test (e.g. staging): crawled from this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub head: String,
    /// Store the crawl under this site name (default: `pair-` + the head's host, port and path). A
    /// configured site of that name lends its settings (viewport, thresholds, selectors, plugins).
    #[arg(long)]
    pub site: Option<String>,
    /// One JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The default site name of a pair crawl: `pair-HOST-PORT-PATH` with every other character `-`.
pub fn pair_site_name(head: &Url) -> String {
    let mut raw = String::from("pair-");
    raw.push_str(head.host_str().unwrap_or("host"));
    if let Some(p) = head.port() {
        raw.push_str(&format!("-{p}"));
    }
    raw.push_str(head.path());
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') { c } else { '-' };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    let name = name.trim_end_matches('-');
    name.chars().take(MAX_SITE_NAME).collect::<String>().trim_end_matches('-').to_string()
}

fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    let location = Config::locate(arg.config.as_deref());
    if arg.config.is_none() && !location.path.exists() {
        eprintln!("sitediff: no config at {}: using defaults", location.path.display());
        return Ok(Config::parse("", &location.path)?);
    }
    Ok(Config::load_located(&location)?)
}

/// The site the pair crawl runs as: a configured site moved onto `head`, or defaults.
fn pair_site(cfg: &Config, name: &str, head: &str, base: &str) -> anyhow::Result<SiteConfig> {
    let fresh = SiteConfig::for_pair(name, head, base).map_err(|issues| {
        let lines: Vec<String> = issues.iter().map(|i| format!("  - {}", i.message)).collect();
        anyhow::anyhow!("bad pair arguments:\n{}", lines.join("\n"))
    })?;
    let Some(configured) = cfg.site(name) else { return Ok(fresh) };
    let mut site = configured.clone();
    let old_scope = site.scope.clone();
    let rebase = |u: &Url| old_scope.page_key(u).and_then(|k| fresh.scope.url_for_key(&k));
    site.urls = site.urls.iter().filter_map(rebase).collect();
    site.start = rebase(&site.start).unwrap_or_else(|| fresh.start.clone());
    site.scope = fresh.scope.clone();
    site.compare_to = fresh.compare_to.clone();
    site.schedule = None;
    Ok(site)
}

pub fn run(args: &PairArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args.config)?;
    let head = Url::parse(&args.head).with_context(|| format!("--head {:?} is not a URL", args.head))?;
    let name = match &args.site {
        Some(n) => n.clone(),
        None => pair_site_name(&Scope::new(&normalize_url(&head)).prefix().clone()),
    };
    let site = pair_site(&cfg, &name, &args.head, &args.base)?;
    eprintln!(
        "pair {}: {} (head) against {} (base)",
        site.name,
        site.scope.prefix(),
        site.compare_to.as_ref().map(Url::as_str).unwrap_or("?")
    );
    run_site(&cfg, site, args.json, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_site_names() {
        let n = pair_site_name(&Url::parse("http://127.0.0.1:9000/docs/v2/").unwrap());
        assert_eq!(n, "pair-127.0.0.1-9000-docs-v2");
        let n = pair_site_name(&Url::parse("https://Staging.Example.com/").unwrap());
        assert_eq!(n, "pair-staging.example.com");
        let long = format!("http://h/{}/", "x".repeat(200));
        let n = pair_site_name(&Url::parse(&long).unwrap());
        assert!(n.len() <= MAX_SITE_NAME && !n.ends_with('-'), "{n}");
    }
}
