//! Command line: argument definitions and dispatch to one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::sync::Arc;

use sitediff::config::{Config, PluginConfig, SiteConfig};
use sitediff::plugin::PluginHost;
use sitediff::store::{Store, StoreError};

pub mod backup;
pub mod check;
pub mod client;
pub mod crawl;
pub mod diff;
pub mod outcome;
pub mod pair;
pub mod plugin;
pub mod plugin_new;
pub mod ready;
pub mod remote;
pub mod report;
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
    /// Colour in log lines: auto = only when stderr is a terminal (and NO_COLOR is unset).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", env = "SITEDIFF_COLOR")]
    pub color: ColorChoice,
    /// Log line format on stderr: text for people, json (one object per line) for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT",
        env = "SITEDIFF_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
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
    /// Write a crawl's report: JUnit XML, a self-contained HTML directory, or JSON.
    Report(report::ReportArgs),
    /// Write a consistent copy of the store to DEST (through the daemon when it runs).
    Backup(backup::BackupArgs),
    /// Replace the store with a verified copy (the daemon must be stopped).
    Restore(backup::RestoreArgs),
    /// Validate the config file (sites, plugins, write token) without starting; exit 0 or 2.
    CheckConfig(check::CheckArgs),
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

/// The release-gate options of `crawl` and `pair`: client mode, waiting, exit policy, reports.
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    #[command(flatten)]
    pub server: client::ServerArgs,
    /// With --server: print the crawl id and return at once (exit 0) instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Which pages fail the run (exit 1), comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = outcome::DEFAULT_FAIL_ON)]
    pub fail_on: Vec<outcome::FailOn>,
    /// Write the crawl's JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the crawl's self-contained HTML report into this directory.
    #[arg(long, value_name = "DIR")]
    pub html: Option<PathBuf>,
    /// Before starting, wait until this URL answers 2xx (e.g. a just-deployed staging server).
    #[arg(long, value_name = "URL")]
    pub wait_for: Option<String>,
    /// How long --wait-for waits, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "wait_for")]
    pub wait_timeout: u64,
}

impl GateArgs {
    /// Run the `--wait-for` readiness wait, if asked.
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.wait_for {
            ready::wait_until_ready(url, std::time::Duration::from_secs(self.wait_timeout)).await?;
        }
        Ok(())
    }
}

/// The review UI's address in a local run's report links: the configured listen address.
pub fn local_ui_base(cfg: &Config) -> String {
    format!("http://{}", cfg.server.listen)
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

/// When log lines on stderr carry ANSI colour escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether stderr is a terminal and whether `NO_COLOR` is set.
    fn enabled(self, stderr_is_terminal: bool, no_color: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_is_terminal && !no_color,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Client libraries whose debug and trace lines dump what goes over the wire (WebDriver and
/// DevTools frames, HTTP headers): site passwords, cookies and header values. Capped at info
/// whatever `RUST_LOG` says, so that no secret reaches the log.
const WIRE_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "fantoccini",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "webdriver",
];

/// Install the tracing subscriber (stderr): plain text without escape codes unless colour is
/// wanted (see [`ColorChoice`]), or one JSON object per line.
pub fn init_tracing(verbose: u8, color: ColorChoice, format: LogFormat) {
    use std::io::IsTerminal;
    let default = match verbose {
        0 => "warn",
        1 => "info,sitediff=info",
        _ => "debug,sitediff=debug,hyper=info,h2=info",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    for target in WIRE_TARGETS {
        match format!("{target}=info").parse() {
            Ok(d) => filter = filter.add_directive(d),
            Err(e) => eprintln!("sitediff: cannot cap the log level of {target}: {e}"),
        }
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = color.enabled(std::io::stderr().is_terminal(), no_color);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(false).with_ansi(false).try_init()
        }
    };
    if let Err(e) = installed {
        tracing::warn!(error = %e, "a tracing subscriber was installed already; keeping it");
    }
}

/// Run one command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crawl(args) => crawl::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::CheckConfig(args) => check::run(&args),
        Command::Backup(args) => backup::backup(&args),
        Command::Restore(args) => backup::restore(&args),
        Command::Approve(args) => review::approve(&args),
        Command::Reject(args) => review::run(&args, review::Verdict::Reject),
        Command::Status(args) => status::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Plugin(cmd) => plugin::run(&cmd),
        Command::Pair(args) => pair::run(&args),
        Command::Upload(args) => upload::run(&args),
        Command::Rescore(args) => rescore::run(&args),
        Command::Report(args) => report::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::ColorChoice;

    #[test]
    fn colour_only_on_a_terminal_unless_asked() {
        assert!(!ColorChoice::Auto.enabled(false, false), "a pipe or file gets no escapes");
        assert!(ColorChoice::Auto.enabled(true, false));
        assert!(!ColorChoice::Auto.enabled(true, true), "NO_COLOR wins on a terminal");
        assert!(ColorChoice::Always.enabled(false, true));
        assert!(!ColorChoice::Never.enabled(true, false));
    }
}
