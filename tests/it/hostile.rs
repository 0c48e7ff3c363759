//! A hostile site, crawled with the real browser: every trap is handled, bounded and recorded, and
//! the crawl completes.

use std::time::{Duration, Instant};

use crate::helpers::{run_sitediff, FixtureServer, Response, TempProject};
use sitediff::store::{PageOutcome, Store};

/// The `?page=N` chain served (longer than the crawl may follow).
const INFINITE_PAGES: usize = 200;
const MAX_QUERY_VARIANTS: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_site_is_crawled_to_completion() {
    let srv = FixtureServer::start().await;
    let base = srv.url("");
    srv.set(
        "/h/",
        Response::html(format!(
            "<title>hostile</title>\
             <a href='infinite?page=1'>infinite</a> <a href='loop-a'>loop</a> <a href='away'>away</a>\
             <a href='e500'>500</a> <a href='hang'>hang</a> <a href='tall'>tall</a> <a href='big'>big</a>\
             <a href='badutf8'>utf8</a> <a href='binary'>binary</a> <a href='alert'>alert</a>\
             <a href='navaway'>navaway</a> <a href='../secret.html'>escape</a> <a href='sub/../../secret2.html'>escape2</a>\
             <a href='javascript:alert(1)'>js</a> <a href='mailto:x@y.z'>mail</a> <a href='data:text/html,<b>x</b>'>data</a>\
             <a href='tel:+123'>tel</a>\
             <a href='caf%C3%A9.html'>enc1</a> <a href='caf%c3%a9.html'>enc2</a> <a href='%63af%C3%A9.html'>enc3</a>\
             <a href='HTTP://{host}/h/caf%C3%A9.html'>enc4</a>",
            host = srv.addr
        )),
    );
    for n in 1..=INFINITE_PAGES {
        srv.set(
            &format!("/h/infinite?page={n}"),
            Response::html(format!("<p>page {n}</p><a href='infinite?page={}'>next</a>", n + 1)),
        );
    }
    srv.set("/h/loop-a", Response::redirect("/h/loop-b"));
    srv.set("/h/loop-b", Response::redirect("/h/loop-a"));
    srv.set("/h/away", Response::redirect("/elsewhere/landing.html"));
    srv.set("/h/e500", Response::status(500, "<h1>Internal error</h1>"));
    srv.set("/h/hang", Response::hang());
    srv.set(
        "/h/tall",
        Response::html("<div style='height:30000px;background:linear-gradient(red,blue)'></div>"),
    );
    let big: String = (0..100_000).map(|i| format!("<p>paragraph {i} of a very large page</p>\n")).collect();
    assert!(big.len() > 4_000_000);
    srv.set("/h/big", Response::html(big));
    srv.set(
        "/h/badutf8",
        Response::with_type(
            200,
            "text/html",
            b"<title>bad \xff\xfe utf8</title><p>\xc3\x28 broken \xe2\x82</p>".to_vec(),
        ),
    );
    srv.set(
        "/h/binary",
        Response::with_type(200, "text/html", (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect()),
    );
    srv.set(
        "/h/alert",
        Response::html("<script>alert('hi'); confirm('sure?');</script><h1>after alert</h1>"),
    );
    srv.set(
        "/h/navaway",
        Response::html("<h1>leaving</h1><script>location.href = '/elsewhere/trap.html';</script>"),
    );
    srv.set("/h/caf%C3%A9.html", Response::html("<h1>café</h1>"));
    for trap in ["/secret.html", "/secret2.html", "/elsewhere/landing.html", "/elsewhere/trap.html"] {
        srv.set(trap, Response::html("<h1>must never be requested</h1>"));
    }

    let project = TempProject::new();
    // request_timeout_ms bounds /hang; it must leave the 10-hop redirect loop time to be seen as a
    // loop on a loaded machine (at 2 s it sometimes timed out first).
    let cfg = project.write_config(&format!(
        "[browser]\nsessions = 2\n[[sites]]\nname = \"h\"\nstart = \"{base}/h/\"\nmax_query_variants = {MAX_QUERY_VARIANTS}\n\
         request_timeout_ms = 5000\npage_timeout_ms = 20000\nmax_height = 20000\nviewport = {{ width = 800, height = 600 }}\n"
    ));
    let started = Instant::now();
    let out = run_sitediff(&["crawl", "h", "--config", &cfg, "--json"]).await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "failing (and truncated) pages fail the run\n{}\n{}", out.stdout, out.stderr);
    assert!(took < Duration::from_secs(180), "crawl took {took:?}");
    let j = out.json();
    assert_eq!(j["status"], "reviewing");
    assert_eq!(j["skipped_off_prefix_redirect"], 1);
    assert!(j["skipped_query_variants"].as_u64().unwrap() >= 1, "{j}");

    let store = Store::open(&project.db_path()).unwrap();
    let crawl = store.latest_crawl("h").unwrap().unwrap();
    let pages = store.pages(crawl.id).unwrap();
    let page = |k: &str| pages.iter().find(|p| p.key == k).unwrap_or_else(|| panic!("no page {k}"));

    let infinite = pages.iter().filter(|p| p.key.starts_with("/infinite?")).count();
    assert_eq!(infinite, MAX_QUERY_VARIANTS, "the infinite link space is bounded");

    let lp = page("/loop-a");
    assert_eq!(lp.outcome, PageOutcome::HttpError);
    assert!(lp.error.as_deref().unwrap().contains("redirect"), "{lp:?}");
    assert_eq!(page("/e500").http_status, Some(500));
    let hang = page("/hang");
    assert_eq!(hang.outcome, PageOutcome::HttpError);
    assert!(hang.error.as_deref().unwrap().contains("timed out"), "{hang:?}");

    let tall = page("/tall");
    assert_eq!(tall.outcome, PageOutcome::Truncated, "{tall:?}");
    assert!(tall.truncated && tall.height == 20_000, "{tall:?}");
    let big = page("/big");
    assert_eq!(big.outcome, PageOutcome::Truncated, "{big:?}");
    assert!(big.truncated);
    for k in ["/badutf8", "/binary", "/alert"] {
        assert_eq!(page(k).outcome, PageOutcome::Ok, "{:?}", page(k));
    }
    // One page for every spelling of café.
    assert_eq!(
        pages.iter().filter(|p| p.key.contains("caf")).count(),
        1,
        "{:?}",
        pages.iter().map(|p| &p.key).collect::<Vec<_>>()
    );

    // Nothing outside the prefix was ever requested: not by discovery, not by the browser.
    let hits = srv.hits();
    for trap in ["/secret.html", "/secret2.html", "/elsewhere/landing.html", "/elsewhere/trap.html"] {
        assert!(!hits.iter().any(|h| h == trap), "{trap} was requested: {hits:?}");
    }
    // The page that navigates away is recorded, captured as itself.
    let nav = page("/navaway");
    assert!(nav.outcome == PageOutcome::Ok || nav.outcome == PageOutcome::CaptureError, "{nav:?}");
}
