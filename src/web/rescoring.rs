//! Review at scale, as the web runs it (off the async threads, the listing cache kept fresh): the
//! ignore areas of a site (configured and stored) and saving or removing one, which re-scores the
//! affected pages of the site's current crawl; re-scoring any kept crawl; change groups and their
//! approval.

use std::sync::Arc;

use serde::Serialize;

use super::app::App;
use super::data::{blocking, AreaSource, ListedArea};
use super::error::RequestError;
use crate::compare::Comparer;
use crate::config::SiteConfig;
use crate::diff::Rect;
use crate::groups::{change_groups, ChangeGroup};
use crate::rescore::{self, Rescored};
use crate::review::{GroupApproval, ReviewError};
use crate::settle;
use crate::store::{CrawlKind, IgnoreArea, IGNORE_EVERY_PAGE};

/// A new ignore area as posted.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewArea {
    /// A page key, or `"*"` for every page.
    pub key: String,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// Who saves it (defaults to "api" / "reviewer").
    #[serde(default)]
    pub by: Option<String>,
}

/// Longest `by` kept.
const MAX_BY_LEN: usize = 100;
/// Longest page key accepted for an area.
const MAX_KEY_LEN: usize = 2048;

impl NewArea {
    fn check(&self) -> Result<Rect, RequestError> {
        if self.key.is_empty() || self.key.len() > MAX_KEY_LEN || self.key.chars().any(char::is_control) {
            return Err(RequestError::bad_request(format!(
                "key {:?} must be a page key or \"{IGNORE_EVERY_PAGE}\"",
                self.key
            )));
        }
        if self.w == 0 || self.h == 0 {
            return Err(RequestError::bad_request("an ignore area needs a positive w and h"));
        }
        if self.by.as_ref().is_some_and(|b| b.len() > MAX_BY_LEN || b.chars().any(char::is_control)) {
            return Err(RequestError::bad_request(format!(
                "by: at most {MAX_BY_LEN} characters, no control ones"
            )));
        }
        Ok(Rect { x: self.x, y: self.y, width: self.w, height: self.h })
    }
}

/// The result of saving or removing an area: the area and the re-score of the current crawl.
#[derive(Debug, Clone, Serialize)]
pub struct AreaChange {
    pub area: IgnoreArea,
    pub rescored: Option<Rescored>,
}

impl App {
    /// The site's settings in the config crawls start with now (the last one reloaded).
    fn site_config(&self, site: &str) -> Result<SiteConfig, RequestError> {
        self.state
            .scheduler
            .config()
            .site(site)
            .cloned()
            .ok_or_else(|| ReviewError::UnknownSite { site: site.to_string() }.into())
    }

    fn comparer(&self) -> Comparer {
        Comparer::new(
            self.state.store.clone(),
            self.state.scheduler.plugins(),
            Some(self.state.metrics.clone()),
        )
    }

    /// The ignore areas of a site: configured ones, then stored ones.
    pub async fn ignore_areas(self: &Arc<Self>, site: String) -> Result<Vec<ListedArea>, RequestError> {
        let app = self.clone();
        blocking("listing ignore areas", move || {
            let cfg = app.site_config(&site)?;
            let mut out: Vec<ListedArea> = cfg
                .ignore_areas
                .iter()
                .map(|a| ListedArea {
                    id: None,
                    source: AreaSource::Config,
                    key: a.key.clone(),
                    x: a.rect.x,
                    y: a.rect.y,
                    w: a.rect.width,
                    h: a.rect.height,
                    created_by: None,
                    created_at: None,
                })
                .collect();
            out.extend(app.state.store.ignore_areas(&site)?.into_iter().map(|a| ListedArea {
                id: Some(a.id),
                source: AreaSource::Stored,
                key: a.key,
                x: a.rect.x,
                y: a.rect.y,
                w: a.rect.width,
                h: a.rect.height,
                created_by: Some(a.created_by),
                created_at: Some(a.created_at),
            }));
            Ok(out)
        })
        .await
    }

    /// Save an ignore area and re-score the pages it applies to in the site's current crawl.
    pub async fn add_ignore_area(
        self: &Arc<Self>,
        site: String,
        area: NewArea,
        default_by: &'static str,
    ) -> Result<AreaChange, RequestError> {
        let rect = area.check()?;
        let app = self.clone();
        blocking("saving an ignore area", move || {
            let cfg = app.site_config(&site)?;
            let by = area.by.clone().unwrap_or_else(|| default_by.to_string());
            let saved = app.state.store.add_ignore_area(&site, &area.key, rect, &by)?;
            tracing::info!(site, id = saved.id, key = %saved.key, ?rect, by = %saved.created_by, "ignore area saved");
            let rescored = app.rescore_current(&cfg, &saved)?;
            Ok(AreaChange { area: saved, rescored })
        })
        .await
    }

    /// Remove a stored ignore area and re-score the pages it applied to in the current crawl.
    pub async fn remove_ignore_area(
        self: &Arc<Self>,
        site: String,
        id: u64,
    ) -> Result<AreaChange, RequestError> {
        let app = self.clone();
        blocking("removing an ignore area", move || {
            let cfg = app.site_config(&site)?;
            let removed = app
                .state
                .store
                .remove_ignore_area(&site, id)?
                .ok_or_else(|| RequestError::not_found(format!("ignore area {id} of site {site:?}")))?;
            tracing::info!(site, id, key = %removed.key, "ignore area removed");
            let rescored = app.rescore_current(&cfg, &removed)?;
            Ok(AreaChange { area: removed, rescored })
        })
        .await
    }

    /// Re-score the pages `area` applies to in the site's newest completed site or upload crawl
    /// (blocking); `None` when the site has none.
    fn rescore_current(&self, cfg: &SiteConfig, area: &IgnoreArea) -> Result<Option<Rescored>, RequestError> {
        let store = &self.state.store;
        let mut current = None;
        for id in store.crawl_ids(&cfg.name)?.into_iter().rev() {
            match store.crawl(id)? {
                Some(c) if settle::is_completed(c.status) && c.kind != CrawlKind::Pair => {
                    current = Some(c.id);
                    break;
                }
                _ => {}
            }
        }
        let Some(id) = current else { return Ok(None) };
        let only = |key: &str| area.applies_to(key);
        let done = self.rescore_blocking(cfg, id, Some(&only))?;
        Ok(Some(done))
    }

    fn rescore_blocking(
        &self,
        cfg: &SiteConfig,
        id: u64,
        only: Option<&(dyn Fn(&str) -> bool + Sync)>,
    ) -> Result<Rescored, RequestError> {
        let done = rescore::rescore(&self.comparer(), cfg, id, only, Some(&self.state.metrics));
        self.catalog.invalidate(id);
        let done = done?;
        self.review.refresh_pending()?;
        Ok(done)
    }

    /// Re-score a kept crawl from its stored images.
    pub async fn rescore(self: &Arc<Self>, id: u64) -> Result<Rescored, RequestError> {
        let app = self.clone();
        blocking("re-scoring a crawl", move || {
            let crawl = app.catalog.crawl(id)?;
            let cfg = app.site_config(&crawl.site)?;
            app.rescore_blocking(&cfg, id, None)
        })
        .await
    }

    /// The change groups of a crawl, biggest first.
    pub async fn groups(self: &Arc<Self>, id: u64) -> Result<Vec<ChangeGroup>, RequestError> {
        let app = self.clone();
        blocking("listing change groups", move || {
            app.catalog.crawl(id)?;
            Ok(change_groups(&app.state.store.pages(id)?))
        })
        .await
    }

    /// Approve every pending page of a change group.
    pub async fn approve_group(
        self: &Arc<Self>,
        id: u64,
        group: String,
    ) -> Result<GroupApproval, RequestError> {
        let app = self.clone();
        blocking("approving a change group", move || {
            let result = app.review.approve_group(id, &group);
            app.catalog.invalidate(id);
            Ok(result?)
        })
        .await
    }
}
