//! Command line: argument definitions and dispatch to one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::sync::Arc;

use sitediff::config::{Config, PluginConfig, SiteConfig};
use sitediff::plugin::PluginHost;
use sitediff::store::{Store, StoreError};

pub mod crawl;
pub mod diff;
pub mod pair;
pub mod plugin;
pub mod rescore;
pub mod review;
pub mod serve;
pub mod status;
pub mod upload;

/// Exit code: success, nothing over threshold.
pub const EXIT_OK: u8 = 0;
/// Exit code: the run worked and found changes.
pub const EXIT_CHANGES: u8 = 1;
/// Exit code: an error stopped the run.
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sitediff",
    version,
    about = "Whole-site visual regression: crawl, capture, diff, review, alert"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: scheduled crawls, review UI, JSON API and /metrics.
    Serve(serve::ServeArgs),
    /// Crawl a site now, compare every page with its baseline, and report.
    Crawl(crawl::CrawlArgs),
    /// Make a crawl (default: the site's latest) the baseline; --restore to go back to an older one.
    Approve(review::ApproveArgs),
    /// Mark a crawl (default: the site's latest) bad.
    Reject(review::ReviewArgs),
    /// Show sites, crawls and changed pages.
    Status(status::StatusArgs),
    /// Compare two images (PNG, JPEG or WebP).
    Diff(diff::DiffArgs),
    /// Pair Diff: crawl the head prefix and compare every page with the base prefix's.
    Pair(pair::PairArgs),
    /// A crawl from screenshots made elsewhere (one PNG per page key), compared with baselines.
    Upload(upload::UploadArgs),
    /// Compare a kept crawl's pages again from their stored images (after ignore areas changed).
    Rescore(rescore::RescoreArgs),
    /// Validate or try a WebAssembly plugin.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Options shared by the commands that read the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config file (default: $SITEDIFF_CONFIG, then config/sitediff.toml).
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// Load and validate the config file this argument names (or `SITEDIFF_CONFIG`, or the
    /// default); a missing file says where it was looked for and how to name another.
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load_located(&Config::locate(self.config.as_deref()))?)
    }
}

/// Open the configured store. The redb file lock guarantees no other sitediff process has it, so
/// crawls still marked `running` were left by a process that died: mark them `interrupted`.
pub fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let store = Store::open(&cfg.store.path)?;
    interrupt_stale(&store)?;
    Ok(store)
}

/// Open the configured store for a read-only command: as [`open_store`] when no other process has
/// it, else read-only beside that process (the daemon), seeing what it has committed. Never
/// refused because the daemon runs.
pub fn open_store_for_reading(cfg: &Config) -> anyhow::Result<Store> {
    match Store::open(&cfg.store.path) {
        Ok(store) => {
            interrupt_stale(&store)?;
            Ok(store)
        }
        Err(StoreError::InUse { path }) => {
            tracing::info!(path = %path.display(), "the database is open in another process (the daemon): reading beside it");
            Ok(Store::open_read_only(&path)?)
        }
        Err(e) => Err(e.into()),
    }
}

fn interrupt_stale(store: &Store) -> anyhow::Result<()> {
    let stale = store.interrupt_running("sitediff stopped before the crawl finished")?;
    if !stale.is_empty() {
        tracing::warn!(crawls = ?stale, "crawls left running by a stopped process are now interrupted");
    }
    Ok(())
}

/// Compile and check the plugins named in `wanted` (None when there are none). Every broken
/// plugin is reported at once, naming the plugin and the problem.
pub fn load_plugins(cfg: &Config, wanted: &[String]) -> anyhow::Result<Option<Arc<PluginHost>>> {
    let configs: Vec<PluginConfig> =
        cfg.plugins.iter().filter(|p| wanted.contains(&p.name)).cloned().collect();
    if configs.is_empty() {
        return Ok(None);
    }
    match PluginHost::load(&configs) {
        Ok(host) => Ok(Some(Arc::new(host))),
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
            anyhow::bail!("config file {}: plugin problem(s):\n{}", cfg.source.display(), lines.join("\n"))
        }
    }
}

/// Look a site up by name, with an error that lists the configured ones.
pub fn find_site<'a>(cfg: &'a Config, name: &str) -> anyhow::Result<&'a SiteConfig> {
    cfg.site(name).ok_or_else(|| {
        let known: Vec<&str> = cfg.sites.iter().map(|s| s.name.as_str()).collect();
        anyhow::anyhow!(
            "no site named {name:?} in {} (configured: {})",
            cfg.source.display(),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )
    })
}

/// A multi-threaded tokio runtime for commands that do async work.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Install the tracing subscriber (stderr).
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sitediff=info",
        _ => "debug,sitediff=debug,hyper=info,h2=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if let Err(e) = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init()
    {
        tracing::warn!(error = %e, "a tracing subscriber was installed already; keeping it");
    }
}

/// Run one command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crawl(args) => crawl::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Approve(args) => review::approve(&args),
        Command::Reject(args) => review::run(&args, review::Verdict::Reject),
        Command::Status(args) => status::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Plugin(cmd) => plugin::run(&cmd),
        Command::Pair(args) => pair::run(&args),
        Command::Upload(args) => upload::run(&args),
        Command::Rescore(args) => rescore::run(&args),
    }
}
