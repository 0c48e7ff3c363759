//! Config reload (SIGHUP, `POST /api/reload`): read the config file again, load its plugins, and
//! hand both to the scheduler for the crawls started from then on. A config that does not load
//! keeps the running one: every problem is logged, `sitediff_config_reload_success` drops to 0
//! and `/healthz` names the problems until a reload succeeds. Settings the running daemon cannot
//! change (`[server]`, `[store] path`, `[browser]`) are reported as needing a restart.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, PluginConfig};
use crate::metrics::Metrics;
use crate::plugin::PluginHost;
use crate::scheduler::SchedulerHandle;

/// What a successful reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub plugins: usize,
    /// Sections whose changes take effect only at the next start.
    pub restart_needed: Vec<&'static str>,
}

/// Why a reload was refused: every problem found, as lines.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("config reload refused, the previous config stays in use: {}", .problems.join("; "))]
    Invalid { problems: Vec<String> },
    #[error("config reload failed: the scheduler has stopped")]
    Stopped,
}

/// Load the config at `source` and its plugins; every problem, one per line.
fn load(source: &Path) -> Result<(Config, Option<Arc<PluginHost>>), Vec<String>> {
    let config = Config::load_located(&Config::locate(Some(source))).map_err(|e| {
        crate::errors::chain(&e)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
    })?;
    let wanted: Vec<PluginConfig> = config.plugins.clone();
    let plugins = if wanted.is_empty() {
        None
    } else {
        Some(Arc::new(
            PluginHost::load(&wanted)
                .map_err(|errs| errs.iter().map(|e| crate::errors::chain(e)).collect::<Vec<_>>())?,
        ))
    };
    Ok((config, plugins))
}

fn summarize(old: &Config, new: &Config) -> ReloadSummary {
    let names = |c: &Config| c.sites.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let (was, now) = (names(old), names(new));
    let mut restart_needed = Vec::new();
    if format!("{:?}", old.server) != format!("{:?}", new.server) {
        restart_needed.push("server");
    }
    if old.store.path != new.store.path {
        restart_needed.push("store.path");
    }
    if format!("{:?}", old.browser) != format!("{:?}", new.browser) {
        restart_needed.push("browser");
    }
    ReloadSummary {
        added: now.iter().filter(|n| !was.contains(n)).cloned().collect(),
        removed: was.iter().filter(|n| !now.contains(n)).cloned().collect(),
        changed: new
            .sites
            .iter()
            .filter(|s| old.site(&s.name).is_some_and(|o| format!("{o:?}") != format!("{s:?}")))
            .map(|s| s.name.clone())
            .collect(),
        plugins: new.plugins.len(),
        restart_needed,
    }
}

/// Reload the config from the file the running one came from. Blocking work (parsing, compiling
/// plugins) runs off the async threads.
pub async fn reload(scheduler: &SchedulerHandle, metrics: &Metrics) -> Result<ReloadSummary, ReloadError> {
    let old = scheduler.config();
    let source = old.source.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&source))
        .await
        .unwrap_or_else(|e| Err(vec![format!("loading the config did not finish: {e}")]));
    let (config, plugins) = match loaded {
        Ok(x) => x,
        Err(problems) => {
            for p in &problems {
                tracing::error!(config = %old.source.display(), problem = %p, "config reload: problem");
            }
            tracing::error!(
                config = %old.source.display(), problems = problems.len(),
                "config reload refused: the previous config stays in use"
            );
            metrics.config_reloaded(false);
            scheduler.set_reload_problems(problems.clone());
            return Err(ReloadError::Invalid { problems });
        }
    };
    let summary = summarize(&old, &config);
    scheduler.reload(Arc::new(config), plugins).await.map_err(|_| ReloadError::Stopped)?;
    metrics.config_reloaded(true);
    scheduler.set_reload_problems(Vec::new());
    if !summary.restart_needed.is_empty() {
        tracing::warn!(sections = ?summary.restart_needed, "config reload: these changes take effect at the next restart");
    }
    tracing::info!(
        config = %old.source.display(), added = ?summary.added, removed = ?summary.removed,
        changed = ?summary.changed, plugins = summary.plugins, "config reloaded"
    );
    Ok(summary)
}
