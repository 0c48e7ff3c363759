//! sitediff integration tests: one binary, real parts (Chromium via chromedriver, redb files, HTTP
//! servers on 127.0.0.1:0, wasm modules). Shared fixtures live in `helpers`.

mod approval;
mod backup;
mod capture;
mod crash;
mod crawl;
mod daemon;
mod diff;
mod fixture_store;
mod flake;
mod gate;
mod grid;
mod helpers;
mod hostile;
mod incremental;
mod mask;
mod mistakes;
mod notify;
mod ops;
mod pair;
mod pipeline;
mod plugin;
mod prometheus;
mod reload;
mod retention;
mod review_scale;
mod sdk;
mod secrets;
mod security;
mod settle;
mod store;
mod tall;
mod web;
