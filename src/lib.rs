//! sitediff: whole-site visual regression watch.
//!
//! Data flow (see `README.md`):
//! `config` -> `scheduler` -> `sweep` (one crawl: `crawl` discovery -> `capture` -> `plugin` masks ->
//! `diff` -> `plugin` scores -> `store`) ; `store` -> `web` (review UI, JSON API) ; `review` (verdicts,
//! page approvals, crawl-now) below `web` and `cli` ; `metrics` at every step.

pub mod capture;
pub mod compare;
pub mod config;
pub mod crawl;
pub mod daemon;
pub mod diff;
pub mod errors;
pub mod groups;
pub mod metrics;
pub mod notify;
pub mod pair;
pub mod plugin;
pub mod preview;
pub mod reload;
pub mod report;
pub mod rescore;
pub mod review;
pub mod scheduler;
pub mod settle;
pub mod store;
pub mod structure;
pub mod sweep;
pub mod upload;
pub mod web;
