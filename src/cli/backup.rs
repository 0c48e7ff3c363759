//! `sitediff backup DEST` and `sitediff restore SRC`: a consistent copy of the store, taken by the
//! daemon when it runs (through `POST /api/backup`) or directly when it does not; and putting a
//! verified copy back while the daemon is stopped.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sitediff::config::Config;
use sitediff::store::{restore_file, Store, StoreError, VerifyReport};

use super::{runtime, ConfigArg, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist). With the daemon running, the daemon writes it.
    pub dest: PathBuf,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A store file written by `sitediff backup`; checked before it replaces the store.
    pub src: PathBuf,
    #[command(flatten)]
    pub config: ConfigArg,
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
}

fn summary(r: &VerifyReport) -> String {
    format!(
        "schema {}, {} crawls, {} pages, {} baselines, {} artifacts ({} bytes)",
        r.schema_version, r.crawls, r.pages, r.baselines, r.blobs, r.blob_bytes
    )
}

pub fn backup(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let dest = absolute(&args.dest)?;
    anyhow::ensure!(!dest.exists(), "{} exists: a backup never overwrites", dest.display());
    anyhow::ensure!(cfg.store.path.exists(), "there is no store at {} to back up", cfg.store.path.display());
    let started = std::time::Instant::now();
    let report = match Store::open(&cfg.store.path) {
        Ok(store) => store.backup_to(&dest)?,
        Err(StoreError::InUse { .. }) => {
            eprintln!("sitediff: the daemon has the store open: asking it for the backup");
            let answer = daemon_post(&cfg, "/api/backup", &serde_json::json!({ "dest": dest }))?;
            serde_json::from_value(answer["report"].clone())
                .with_context(|| format!("unexpected answer from the daemon: {answer}"))?
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "backed up {} to {} in {:.1} s: {}",
        cfg.store.path.display(),
        dest.display(),
        started.elapsed().as_secs_f64(),
        summary(&report)
    );
    Ok(ExitCode::from(EXIT_OK))
}

pub fn restore(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let (report, kept) = restore_file(&args.src, &cfg.store.path).map_err(|e| match e {
        StoreError::InUse { path } => anyhow::anyhow!(
            "the store {} is open in another process: stop the daemon (systemctl stop sitediff) before restoring",
            path.display()
        ),
        e => anyhow::Error::new(e).context(format!("cannot restore {}", args.src.display())),
    })?;
    println!("restored {} to {}: {}", args.src.display(), cfg.store.path.display(), summary(&report));
    if let Some(old) = kept {
        println!("the store that was there is kept as {}", old.display());
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// How long the daemon may take to write a backup.
const BACKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// POST `body` as JSON to `path` on the daemon listening at the configured address, with the
/// config's write token (through the CLI's one daemon client), and return the JSON answer.
fn daemon_post(cfg: &Config, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let mut addr = cfg.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let token_var = cfg.server.token_env.as_deref().unwrap_or(super::client::TOKEN_ENV);
    let client =
        super::client::DaemonClient::new(&format!("http://{addr}"), token_var)?.with_timeout(BACKUP_TIMEOUT);
    Ok(runtime()?.block_on(client.post(path, Some(body)))?)
}
