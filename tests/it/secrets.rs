//! Secrets stay where they belong: chromedriver and every browser process run without the daemon's
//! write token or any site password in their environment, and a site's extra headers, cookies and
//! basic-auth credentials reach only the site's own origin (never a third-party server its pages
//! load from or redirect to), in the browser and in discovery alike.

use std::time::Duration;

use crate::helpers::{
    children_of, http_get, metric_value, sitediff_bin, solid_png, wait_for, Daemon, FixtureServer, Response,
    TempProject,
};

/// `pid` and every process below it, with their command names.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for (child, comm) in children_of(p) {
            todo.push(child);
            out.push((child, comm));
        }
    }
    out
}

/// The process's initial environment (`/proc/PID/environ`); `None` once it has exited.
fn environ(pid: u32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/environ")).ok()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A value no environment holds by chance.
fn secret(label: &str) -> String {
    let n: u64 = rand::random();
    format!("{label}-{n:016x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromedriver_and_browsers_never_see_the_token_or_site_passwords() {
    let token = secret("token");
    let password = secret("password");
    let srv = FixtureServer::start().await;
    srv.set("/s/", Response::html("<title>home</title><h1>Home</h1>"));
    srv.require_authorization(&format!("Basic {}", base64_of(&format!("me:{password}"))));
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_TEST_SECRETS_TOKEN\"\n\
         [browser]\nsessions = 1\n\
         [[sites]]\nname = \"s\"\nstart = \"{}\"\nviewport = {{ width = 480, height = 360 }}\n\
         basic_auth = {{ user = \"me\", password_env = \"SITEDIFF_TEST_SECRETS_PW\" }}\n",
        srv.url("/s/")
    ));
    let daemon = Daemon::start_with_env(
        &cfg,
        &[("SITEDIFF_TEST_SECRETS_TOKEN", &token), ("SITEDIFF_TEST_SECRETS_PW", &password)],
    );
    // A page captured with the password: the browser really ran the site.
    let resp = reqwest::Client::new()
        .post(daemon.url("/api/sites/s/crawl"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}: {}", resp.status(), resp.text().await.unwrap_or_default());
    let metrics = daemon.url("/metrics");
    wait_for(Duration::from_secs(90), "the page to be captured", || {
        let url = metrics.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let n = metric_value(&text, "sitediff_pages_captured_total{outcome=\"ok\",site=\"s\"}")?;
            (n >= 1.0).then_some(())
        }
    })
    .await;

    let own = environ(daemon.child.id()).expect("the daemon's environment");
    assert!(contains(&own, &token) && contains(&own, &password), "the daemon itself has both");
    let tree = descendants(daemon.child.id());
    let drivers: Vec<_> = tree.iter().filter(|(_, c)| c == "chromedriver").collect();
    assert_eq!(drivers.len(), 1, "{tree:?}");
    let browsers: Vec<_> = tree.iter().filter(|(_, c)| c != "chromedriver").collect();
    assert!(!browsers.is_empty(), "no browser process under chromedriver: {tree:?}");
    let mut read = 0;
    for (pid, comm) in &tree {
        let Some(env) = environ(*pid) else { continue };
        read += 1;
        assert!(!contains(&env, &token), "{comm} ({pid}) has the write token in its environment");
        assert!(!contains(&env, &password), "{comm} ({pid}) has the site password in its environment");
        assert!(!contains(&env, "SITEDIFF_TEST_SECRETS"), "{comm} ({pid}) has the variables at all");
    }
    assert!(read >= 2, "read {read} of {} environments: {tree:?}", tree.len());
    // chromedriver and the browser it started (its children) show their real environment (the
    // browser's helpers write their command line over theirs): a minimal one, PATH kept.
    let driver = drivers[0].0;
    for pid in std::iter::once(driver).chain(children_of(driver).into_iter().map(|(p, _)| p)) {
        let env = environ(pid).unwrap_or_default();
        let text = String::from_utf8_lossy(&env).replace('\0', " ");
        assert!(contains(&env, "PATH="), "process {pid} has no PATH: {text}");
        eprintln!("process {pid}: {text}");
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Whether a request carries any of the site's headers, cookies or credentials.
fn carries_site_secrets(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, _)| k == "x-env" || k == "authorization" || k == "cookie")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_headers_and_credentials_reach_only_the_sites_origin() {
    let password = secret("pw");
    let site = FixtureServer::start().await;
    let third = FixtureServer::start().await;
    // Another origin: another port, and another host name (the site's cookie is for 127.0.0.1).
    let t = format!("http://localhost:{}", third.addr.port());
    site.set(
        "/site/",
        Response::html(format!(
            "<!doctype html><title>home</title><link rel=stylesheet href='{t}/t/style.css'>\
             <h1>Home</h1><img src='{t}/t/img.png' width=10 height=10>\
             <img src='/site/bounce.png' width=10 height=10><script src='{t}/t/app.js'></script>\
             <a href='page2.html'>2</a> <a href='away.html'>away</a>"
        )),
    );
    site.set("/site/page2.html", Response::html("<title>two</title><h1>Two</h1>"));
    site.set("/site/bounce.png", Response::redirect(&format!("{t}/t/bounced.png")));
    site.set("/site/away.html", Response::redirect(&format!("{t}/t/landing.html")));
    site.require_authorization(&format!("Basic {}", base64_of(&format!("me:{password}"))));
    for path in ["/t/img.png", "/t/bounced.png"] {
        third.set(path, Response::with_type(200, "image/png", solid_png(10, 10, [255, 0, 0, 255])));
    }
    third.set("/t/style.css", Response::with_type(200, "text/css", b"h1 { color: red }".to_vec()));
    third.set("/t/app.js", Response::with_type(200, "text/javascript", b"document.title += '.'".to_vec()));
    third.set("/t/landing.html", Response::html("<title>elsewhere</title>"));
    // The third party challenges too: its challenge must not be answered with the site's password.
    third.require_authorization("Basic never");

    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[browser]\nsessions = 1\n\
         [[sites]]\nname = \"s\"\nstart = \"{}\"\nviewport = {{ width = 480, height = 360 }}\n\
         headers = {{ X-Env = \"staging\" }}\ncookies = [{{ name = \"consent\", value = \"yes\" }}]\n\
         basic_auth = {{ user = \"me\", password_env = \"SITEDIFF_TEST_SITE_ONLY_PW\" }}\n",
        site.url("/site/")
    ));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(sitediff_bin())
            .args(["crawl", "s", "--config", &cfg, "--json"])
            .env_remove("SITEDIFF_CONFIG")
            .env("SITEDIFF_TEST_SITE_ONLY_PW", &password)
            .output()
            .expect("run sitediff")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    // The site got its headers, cookie and credentials from discovery and from the browser.
    let seen = site.requests();
    let ua = |h: &[(String, String)]| h.iter().find(|(k, _)| k == "user-agent").map(|(_, v)| v.clone());
    let header =
        |h: &[(String, String)], name: &str| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    for browser in [false, true] {
        let (_, h) = seen
            .iter()
            .find(|(t, h)| {
                t == "/site/page2.html"
                    && ua(h).is_some_and(|u| u.contains("Chrome") == browser)
                    && header(h, "authorization").is_some()
            })
            .unwrap_or_else(|| panic!("no authorised request for page2 (browser: {browser}): {seen:?}"));
        assert_eq!(header(h, "x-env").as_deref(), Some("staging"), "browser: {browser}");
        assert_eq!(header(h, "cookie").as_deref(), Some("consent=yes"), "browser: {browser}");
    }
    assert!(seen.iter().any(|(t, _)| t == "/site/bounce.png"), "the browser loaded the bouncing image");

    // The third party saw the page's subresources and the redirected image, none of the site's
    // headers, cookie or credentials, and no request from discovery (the redirect was not followed).
    let got = third.requests();
    for path in ["/t/img.png", "/t/style.css", "/t/app.js", "/t/bounced.png"] {
        assert!(
            got.iter().any(|(t, _)| t == path),
            "the browser never asked the third party for {path}: {got:?}"
        );
    }
    let leaked: Vec<_> = got.iter().filter(|(_, h)| carries_site_secrets(h)).collect();
    assert!(leaked.is_empty(), "the third party got the site's secrets: {leaked:?}");
    assert!(
        !got.iter().any(|(t, _)| t == "/t/landing.html"),
        "discovery followed a redirect off the site: {got:?}"
    );

    let outcomes: Vec<(&str, &str)> = report["page_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap(), p["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes, [("/", "ok"), ("/page2.html", "ok")], "{report}\n{stderr}");
}
