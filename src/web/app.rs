//! The server state every handler gets: the daemon's [`WebState`], the auth keys, the listing
//! cache and the review actions, plus the review actions as the web runs them (off the async
//! threads, with the listing cache kept fresh).

use std::sync::Arc;

use super::auth::Auth;
use super::data::{blocking, Catalog};
use super::error::RequestError;
use super::state::WebState;
use crate::review::{self, PageApproval, Review, Verdict};
use crate::store::CrawlRecord;

/// Shared server state.
pub struct App {
    pub state: WebState,
    pub auth: Auth,
    pub catalog: Catalog,
    pub review: Review,
}

impl App {
    pub fn new(state: WebState) -> App {
        let auth = Auth::new(state.token.clone());
        let catalog = Catalog::new(state.store.clone());
        let sites = state.config.sites.iter().map(|s| s.name.clone());
        let review = Review::new(state.store.clone()).with_pending_gauge(state.metrics.clone(), sites);
        App { state, auth, catalog, review }
    }

    /// Start a crawl of `site` now; the new crawl's id.
    pub async fn trigger(&self, site: &str) -> Result<u64, RequestError> {
        Ok(review::trigger(&self.state.scheduler, site).await?)
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
}
