//! The server state every handler gets: the daemon's [`WebState`], the auth keys, the listing
//! cache and the review actions, plus the review actions as the web runs them (off the async
//! threads, with the listing cache kept fresh): verdicts, page approvals and restores.

use std::net::SocketAddr;
use std::sync::Arc;

use super::auth::Auth;
use super::data::{blocking, Catalog};
use super::error::RequestError;
use super::hosts::HostPolicy;
use super::state::WebState;
use crate::review::{self, BaselineMove, CrawlApproval, PageApproval, Review, Verdict};
use crate::store::CrawlRecord;

/// Shared server state.
pub struct App {
    pub state: WebState,
    pub auth: Auth,
    pub catalog: Catalog,
    pub review: Review,
}

impl App {
    /// The state of a server whose listener is bound to `bound`.
    pub fn new(state: WebState, bound: SocketAddr) -> App {
        let auth = Auth::new(state.token.clone(), HostPolicy::new(bound, &state.config.server.allowed_hosts));
        let catalog = Catalog::new(state.store.clone());
        let sites = state.config.sites.iter().map(|s| s.name.clone());
        let review = Review::new(state.store.clone()).with_pending_gauge(state.metrics.clone(), sites);
        App { state, auth, catalog, review }
    }

    /// Start a crawl of `site` now (`full`: every page rendered); the new crawl's id.
    pub async fn trigger(&self, site: &str, full: bool) -> Result<u64, RequestError> {
        Ok(review::trigger(&self.state.scheduler, site, full).await?)
    }

    /// Start a crawl of a site given whole (a pair crawl through the API) now; its id.
    pub async fn trigger_site(&self, site: crate::config::SiteConfig) -> Result<u64, RequestError> {
        Ok(review::trigger_site(&self.state.scheduler, site).await?)
    }

    /// Approve or reject a whole crawl.
    pub async fn verdict(self: &Arc<Self>, id: u64, v: Verdict) -> Result<CrawlRecord, RequestError> {
        let app = self.clone();
        blocking("recording a verdict", move || {
            let result = app.review.verdict(id, v);
            app.catalog.invalidate(id);
            Ok(result?)
        })
        .await
    }

    /// Approve one page (the last pending page approves its crawl: see [`Review::approve_page`]).
    pub async fn approve_page(self: &Arc<Self>, id: u64, key: String) -> Result<PageApproval, RequestError> {
        let app = self.clone();
        blocking("approving a page", move || {
            let result = app.review.approve_page(id, &key);
            app.catalog.invalidate(id);
            Ok(result?)
        })
        .await
    }

    /// Restore an older crawl as the site's baseline, on purpose (see [`Review::restore`]).
    pub async fn restore(self: &Arc<Self>, id: u64) -> Result<CrawlApproval, RequestError> {
        let app = self.clone();
        blocking("restoring a crawl", move || {
            let result = app.review.restore(id);
            app.catalog.invalidate(id);
            Ok(result?)
        })
        .await
    }

    /// Restore one page of an older crawl as its key's baseline, on purpose.
    pub async fn restore_page(self: &Arc<Self>, id: u64, key: String) -> Result<PageApproval, RequestError> {
        let app = self.clone();
        blocking("restoring a page", move || {
            let result = app.review.restore_page(id, &key);
            app.catalog.invalidate(id);
            Ok(result?)
        })
        .await
    }

    /// The crawl, and the baselines restoring it (or only its page `key`) would move.
    pub async fn restore_preview(
        self: &Arc<Self>,
        id: u64,
        key: Option<String>,
    ) -> Result<(CrawlRecord, Vec<BaselineMove>), RequestError> {
        let app = self.clone();
        blocking("previewing a restore", move || {
            let crawl = app.catalog.crawl(id)?;
            let moved = app.review.restore_preview(id, key.as_deref())?;
            Ok((crawl, moved))
        })
        .await
    }
}
