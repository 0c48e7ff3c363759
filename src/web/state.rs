//! What the daemon hands the web server: config, store, metrics, the scheduler's handle, the write
//! token and the browser health probe. `config` is the start-up config, whose `[server]` settings
//! hold until a restart; sites and plugins come from the scheduler (`SchedulerHandle::config`,
//! `SchedulerHandle::plugins`), which follows config reloads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::scheduler::SchedulerHandle;
use crate::store::Store;

/// Whether the browser side can take captures right now.
pub type BrowserProbe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Everything the handlers need from the daemon.
#[derive(Clone)]
pub struct WebState {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Metrics,
    pub scheduler: SchedulerHandle,
    /// The write token (`Authorization: Bearer`), when one is configured.
    pub token: Option<String>,
    pub browser: BrowserProbe,
}
