//! sitediff integration tests: one binary, real parts (Chromium via chromedriver, redb files, HTTP
//! servers on 127.0.0.1:0, wasm modules). Shared fixtures live in `helpers`.

mod approval;
mod capture;
mod crash;
mod crawl;
mod daemon;
mod diff;
mod fixture_store;
mod flake;
mod grid;
mod helpers;
mod hostile;
mod mask;
mod mistakes;
mod pair;
mod pipeline;
mod plugin;
mod prometheus;
mod retention;
mod secrets;
mod security;
mod settle;
mod store;
mod web;
