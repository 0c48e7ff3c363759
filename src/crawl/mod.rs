//! Discovery: breadth-first crawl of a site's prefix over HTTP (reqwest), feeding page URLs to capture.

pub mod links;
