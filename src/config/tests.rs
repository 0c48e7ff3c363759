//! Tests of loading a config end to end: defaults, every key's checks, messages with key paths and
//! lines, and every shipped config file.

use std::sync::Arc;

use url::Url;

use super::defaults::DEFAULT_VIEWPORT;
use super::*;

/// The error and its causes, as the CLI prints them (`{:#}`).
fn report(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/tmp/x/sitediff.toml"))
}

const MINIMAL: &str = r#"
[[sites]]
name = "docs"
start = "http://127.0.0.1:8000/docs/index.html"
"#;

#[test]
fn every_shipped_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!cfg.sites.is_empty(), "{} has no site", path.display());
            n += 1;
        }
    }
    assert!(n >= 2, "expected the example and the demo config");
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.store.keep_crawls, 20);
    assert_eq!(c.browser.webdriver, WebDriverEndpoint::Spawn);
    let s = &c.sites[0];
    assert_eq!(s.scope.prefix().as_str(), "http://127.0.0.1:8000/docs/");
    assert_eq!(s.viewport, Viewport { width: 1280, height: 800 });
    assert_eq!(s.threshold, 0.1);
    assert!(s.schedule.is_none());
    assert_eq!(c.store.path, PathBuf::from("/tmp/x/data/sitediff.redb"));
}

#[test]
fn unknown_key_is_named_with_its_line_and_the_closest_key() {
    let text = "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nthreshhold = 0.2\n";
    let err = parse(text).unwrap_err();
    let msg = report(&err);
    assert!(msg.contains("sitediff.toml"), "{msg}");
    assert!(msg.contains("line 4: sites[0].threshhold: unknown key, did you mean \"threshold\"?"), "{msg}");
    let ConfigError::Invalid { path, issues } = &err else { panic!("{err:?}") };
    assert_eq!(path, Path::new("/tmp/x/sitediff.toml"));
    assert_eq!(issues.len(), 1, "{issues:?}");
}

#[test]
fn every_unknown_key_is_reported_at_once_in_file_order() {
    let text = r#"[server]
listn = "127.0.0.1:1"

[[sites]]
name = "a"
strat = "http://127.0.0.1/"
viewport = { width = 800, hieght = 600 }
urls = ["a.html", { url = "b.html", viewprt = { width = 1, height = 1 } }]

[[sites]]
name = "b"
start = "http://127.0.0.1/b/"
colour = "red"

[serverr]
x = 1
"#;
    let err = parse(text).unwrap_err();
    let ConfigError::Invalid { issues, .. } = &err else { panic!("{err:?}") };
    let got: Vec<(Option<usize>, &str, &str)> =
        issues.iter().map(|i| (i.line, i.key.as_str(), i.message.as_str())).collect();
    assert_eq!(
        got[..6],
        [
            (Some(2), "server.listn", "unknown key, did you mean \"listen\"?"),
            (Some(6), "sites[0].strat", "unknown key, did you mean \"start\"?"),
            (Some(7), "sites[0].viewport.hieght", "unknown key, did you mean \"height\"?"),
            (Some(8), "sites[0].urls[1].viewprt", "unknown key, did you mean \"viewport\"?"),
            (Some(13), "sites[1].colour", got[4].2),
            (Some(15), "serverr", "unknown key, did you mean \"server\"?"),
        ]
    );
    assert!(got[4].2.starts_with("unknown key (known here: name, start, prefix,"), "{}", got[4].2);
    // The rest is validated too, but a key absent because it was misspelt is said once: no
    // "missing start URL" for site a, and no "missing height" for its viewport.
    assert_eq!(issues.len(), 6, "{issues:?}");
    let err = parse("[[sites]]\nname = \"a\"\nstrat = \"http://127.0.0.1/\"\nthreshold = 9\n").unwrap_err();
    let ConfigError::Invalid { issues, .. } = &err else { panic!("{err:?}") };
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["sites[0].strat", "sites[0].threshold"], "{issues:?}");
}

#[test]
fn an_unknown_key_and_a_wrong_type_are_reported_together() {
    let text =
        "[store]\nkeep = 3\n[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nmax_pages = \"ten\"\n";
    let err = parse(text).unwrap_err();
    let ConfigError::Invalid { issues, .. } = &err else { panic!("{err:?}") };
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert_eq!((issues[0].key.as_str(), issues[0].line), ("store.keep", Some(2)));
    assert_eq!(issues[0].message, "unknown key, did you mean \"keep_crawls\"?");
    assert_eq!((issues[1].key.as_str(), issues[1].line), ("sites[0].max_pages", Some(6)));
    assert!(issues[1].message.contains("invalid type"), "{}", issues[1].message);
    // Wrong types are all reported too, and a value taken out for its type is not also "missing".
    let err = parse("[[sites]]\nname = 5\nstart = \"http://127.0.0.1/\"\nmax_pages = \"ten\"\n").unwrap_err();
    let ConfigError::Invalid { issues, .. } = &err else { panic!("{err:?}") };
    let keys: Vec<(&str, Option<usize>)> = issues.iter().map(|i| (i.key.as_str(), i.line)).collect();
    assert_eq!(keys, [("sites[0].name", Some(2)), ("sites[0].max_pages", Some(4))], "{issues:?}");
    // Text that is not TOML stops at the parser, with its own message.
    let err = parse("[[sites]\nname = \"a\"\n").unwrap_err();
    let ConfigError::Parse { source, .. } = &err else { panic!("{err:?}") };
    assert!(source.to_string().contains("line 1"), "{source}");
}

#[test]
fn unreadable_file_keeps_the_io_error() {
    let err = Config::load(Path::new("/nonexistent/sitediff.toml")).unwrap_err();
    let ConfigError::Read { path, source } = &err else { panic!("{err:?}") };
    assert_eq!(path, Path::new("/nonexistent/sitediff.toml"));
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    let msg = report(&err);
    assert!(msg.starts_with("cannot read config file /nonexistent/sitediff.toml: "), "{msg}");
    assert_eq!(msg.matches(&source.to_string()).count(), 1, "the cause is said once: {msg}");
}

#[test]
fn a_missing_file_says_where_it_was_looked_for_and_how_to_name_one() {
    let location = |path: &str, origin| ConfigLocation { path: PathBuf::from(path), origin };
    let err = Config::load_located(&location("/nonexistent/s.toml", ConfigOrigin::Flag)).unwrap_err();
    let msg = crate::errors::chain(&err);
    assert_eq!(
        msg,
        "config file /nonexistent/s.toml not found (given with --config; looked for /nonexistent/s.toml): \
         name the config file with --config PATH or the SITEDIFF_CONFIG variable"
    );
    assert!(!msg.contains("os error"), "{msg}");
    let err = Config::load_located(&location("nope/s.toml", ConfigOrigin::Default)).unwrap_err();
    let msg = err.to_string();
    let absolute = std::env::current_dir().unwrap().join("nope/s.toml");
    assert!(msg.contains(&format!("looked for {}", absolute.display())), "the absolute path tried: {msg}");
    assert!(msg.contains("neither --config nor SITEDIFF_CONFIG is set"), "{msg}");
    let err = Config::load_located(&location("/x/s.toml", ConfigOrigin::Env)).unwrap_err();
    assert!(err.to_string().contains("(named by SITEDIFF_CONFIG;"), "{err}");
    // Other read errors stay what they were.
    let dir = Config::load_located(&location("/", ConfigOrigin::Flag)).unwrap_err();
    assert!(matches!(dir, ConfigError::Read { .. }), "{dir:?}");
}

#[test]
fn config_is_located_by_flag_then_variable_then_default() {
    let flag = Config::locate(Some(Path::new("a.toml")));
    assert_eq!((flag.path.as_path(), flag.origin), (Path::new("a.toml"), ConfigOrigin::Flag));
    // The variable is read from the environment: only the cases that do not depend on it here.
    let found = Config::locate(None);
    assert!(matches!(found.origin, ConfigOrigin::Env | ConfigOrigin::Default), "{found:?}");
    if found.origin == ConfigOrigin::Default {
        assert_eq!(found.path, Path::new(DEFAULT_CONFIG_PATH));
    }
}

#[test]
fn unknown_section_is_named() {
    let msg = report(&parse("[serverr]\nlisten = \"127.0.0.1:1\"\n").unwrap_err());
    assert!(msg.contains("line 1: serverr: unknown key, did you mean \"server\"?"), "{msg}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[server]
listen = "nowhere"
[browser]
sessions = 0
[[sites]]
name = "bad name!"
start = "ftp://example/"
threshold = 2.0
schedule = "every tuesday"
plugins = ["ghost"]
[[sites]]
start = "not a url"
"#;
    let err = parse(text).unwrap_err();
    let ConfigError::Invalid { issues, .. } = &err else { panic!("{err}") };
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for k in [
        "server.listen",
        "browser.sessions",
        "sites[0].name",
        "sites[0].start",
        "sites[0].threshold",
        "sites[0].schedule",
        "sites[0].plugins",
        "sites[1].name",
        "sites[1].start",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    let msg = err.to_string();
    assert!(msg.contains("ghost"), "{msg}");
    assert!(msg.contains("not a URL"), "{msg}");
}

#[test]
fn validation_errors_carry_their_line() {
    let text = "[server]\nlisten = \"x\"\n\n[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\n\n[[sites]]\nname = \"b\"\n# comment\nthreshold = 3\n";
    let msg = parse(text).unwrap_err().to_string();
    assert!(msg.contains("line 2: server.listen"), "{msg}");
    assert!(msg.contains("line 11: sites[1].threshold"), "{msg}");
    // A missing key points at its table.
    assert!(msg.contains("line 8: sites[1].start"), "{msg}");
    // Keys inside inline tables have their own line.
    let text = "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nbasic_auth = { user = \"me\",\n  password_env = \"SITEDIFF_TEST_PW_SURELY_UNSET\" }\n";
    let msg = parse(text).unwrap_err().to_string();
    assert!(msg.contains("line 5: sites[0].basic_auth.password_env"), "{msg}");
    assert_eq!(locate_key("[[sites]]\nname=1\n[[plugins]]\nname=2\n", "plugins[0].name"), Some(4));
    assert_eq!(locate_key("", "server.listen"), None);
}

#[test]
fn missing_start_names_the_site() {
    let msg = parse("[[sites]]\nname = \"shop\"\n").unwrap_err().to_string();
    assert!(msg.contains("sites[0].start") && msg.contains("shop"), "{msg}");
}

#[test]
fn start_outside_prefix_is_rejected() {
    let msg =
        parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/x/\"\nprefix = \"http://127.0.0.1/y/\"\n")
            .unwrap_err()
            .to_string();
    assert!(msg.contains("outside the prefix"), "{msg}");
}

#[test]
fn duplicate_site_names_rejected() {
    let msg = parse(&format!("{MINIMAL}{MINIMAL}")).unwrap_err().to_string();
    assert!(msg.contains("defined twice"), "{msg}");
}

#[test]
fn schedule_and_zone() {
    let c = parse(
        "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nschedule = \"*/5 * * * * *\"\ntimezone = \"Europe/Paris\"\n",
    )
    .unwrap();
    let s = c.sites[0].schedule.as_ref().unwrap();
    let now = chrono::Utc::now();
    let next = s.next_after(now).unwrap();
    assert!(next > now && next - now <= chrono::Duration::seconds(5));
    let msg = parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\ntimezone = \"Mars/Base\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Mars/Base"), "{msg}");
}

#[test]
fn remote_webdriver_url() {
    let c = parse(&format!("[browser]\nwebdriver = \"http://127.0.0.1:4444/wd/hub\"\n{MINIMAL}")).unwrap();
    assert!(matches!(c.browser.webdriver, WebDriverEndpoint::Remote(_)));
    let msg = parse("[browser]\nwebdriver = \"grid\"\n").unwrap_err().to_string();
    assert!(msg.contains("browser.webdriver"), "{msg}");
}

#[test]
fn sessions_auto_transport_and_session_timeout() {
    use crate::config::{Capacity, Transport};
    let c = parse(MINIMAL).unwrap();
    assert_eq!((c.browser.capacity, c.browser.transport), (Capacity::Fixed, Transport::Auto));
    assert_eq!(c.browser.session_timeout, std::time::Duration::from_secs(60));
    assert!(c.browser.node_devtools, "a Grid node's own DevTools by default");
    let grid = "[browser]\nwebdriver = \"http://127.0.0.1:4444/\"\nsessions = \"auto\"\n\
                transport = \"webdriver\"\nsession_timeout_ms = 5000\nnode_devtools = false\n";
    let c = parse(&format!("{grid}{MINIMAL}")).unwrap();
    assert!(!c.browser.node_devtools);
    assert_eq!(c.browser.capacity, Capacity::Auto);
    assert_eq!(c.browser.sessions, 64, "auto: at most browser.sessions' upper bound");
    assert_eq!(c.browser.transport, Transport::WebDriver);
    assert_eq!(c.browser.session_timeout, std::time::Duration::from_secs(5));
    let c = parse(&format!("[browser]\ntransport = \"w3c\"\nsessions = 3\n{MINIMAL}")).unwrap();
    assert_eq!(
        (c.browser.sessions, c.browser.capacity, c.browser.transport),
        (3, Capacity::Fixed, Transport::W3c)
    );
    for (bad, key) in [
        ("sessions = \"many\"", "browser.sessions"),
        ("sessions = -1", "browser.sessions"),
        ("transport = \"cdp\"", "browser.transport"),
        ("session_timeout_ms = 10", "browser.session_timeout_ms"),
        ("node_devtools = \"yes\"", "browser.node_devtools"),
    ] {
        let msg = parse(&format!("[browser]\n{bad}\n{MINIMAL}")).unwrap_err().to_string();
        assert!(msg.contains(key), "{bad}: {msg}");
    }
}

#[test]
fn urls_resolve_against_prefix() {
    let c = parse(
        "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/d/\"\nurls = [\"a.html\", \"sub/b.html?x=1\"]\n",
    )
    .unwrap();
    let urls: Vec<&str> = c.sites[0].urls.iter().map(Url::as_str).collect();
    assert_eq!(urls, ["http://127.0.0.1/d/a.html", "http://127.0.0.1/d/sub/b.html?x=1"]);
    let msg = parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/d/\"\nurls = [\"/elsewhere\"]\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("outside the prefix"), "{msg}");
}

#[test]
fn capture_options_are_parsed() {
    std::env::set_var("SITEDIFF_TEST_PW_OK", "s3cret");
    let c = parse(
        r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
viewports = [{ width = 1280, height = 800 }, { width = 375, height = 667 }]
inject_js = "document.body.dataset.x = 1"
remove_selectors = [".banner"]
cookies = [{ name = "consent", value = "yes" }]
headers = { X-Env = "staging" }
basic_auth = { user = "me", password_env = "SITEDIFF_TEST_PW_OK" }
user_agent = "sitediff-test"
block_urls = ["*.ads.*", "*/tracker.js"]
"#,
    )
    .unwrap();
    let s = &c.sites[0];
    assert_eq!(s.viewport, Viewport { width: 1280, height: 800 });
    assert_eq!(s.viewports, vec![s.viewport, Viewport { width: 375, height: 667 }]);
    let o = &s.capture;
    assert_eq!(o.inject_js, "document.body.dataset.x = 1");
    assert_eq!(o.remove_selectors, vec![".banner".to_string()]);
    assert_eq!(o.cookies, vec![Cookie { name: "consent".into(), value: "yes".into() }]);
    assert_eq!(o.headers, vec![("X-Env".to_string(), "staging".to_string())]);
    assert_eq!(o.basic_auth, Some(BasicAuth { user: "me".into(), password: "s3cret".into() }));
    assert!(!format!("{o:?}").contains("s3cret"), "the password is redacted in Debug");
    assert_eq!(o.user_agent.as_deref(), Some("sitediff-test"));
    assert_eq!(o.block_urls.len(), 2);
    // Defaults: one viewport, nothing else.
    let d = parse(MINIMAL).unwrap();
    assert_eq!(d.sites[0].viewports, vec![DEFAULT_VIEWPORT]);
    assert!(d.sites[0].capture.cookies.is_empty() && d.sites[0].capture.basic_auth.is_none());
}

#[test]
fn bad_capture_options_are_each_reported() {
    let text = r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
viewport = { width = 800, height = 600 }
viewports = [{ width = 800, height = 600 }]
remove_selectors = ["}{"]
cookies = [{ name = "a b", value = "1" }, { name = "c", value = "x;y" }]
headers = { "Bad Header" = "v", Cookie = "x=1" }
basic_auth = { user = "me", password_env = "SITEDIFF_TEST_PW_SURELY_UNSET" }
user_agent = ""
block_urls = [""]
[[sites]]
name = "b"
start = "http://127.0.0.1/e/"
viewports = [{ width = 800, height = 600 }, { width = 800, height = 900 }]
"#;
    let err = parse(text).unwrap_err();
    let ConfigError::Invalid { issues, .. } = &err else { panic!("{err}") };
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for k in [
        "sites[0].viewports",
        "sites[0].remove_selectors",
        "sites[0].cookies",
        "sites[0].headers",
        "sites[0].basic_auth.password_env",
        "sites[0].user_agent",
        "sites[0].block_urls",
        "sites[1].viewports",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert_eq!(keys.iter().filter(|k| **k == "sites[0].cookies").count(), 2, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| **k == "sites[0].headers").count(), 2, "{keys:?}");
    let msg = err.to_string();
    assert!(msg.contains("SITEDIFF_TEST_PW_SURELY_UNSET"), "{msg}");
    assert!(msg.contains("same width"), "{msg}");
}

#[test]
fn url_entries_with_options_and_urls_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("urls.txt"), "# pages\nc.html\n\n  d.html?x=1  \nb.html\n").unwrap();
    let text = r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
crawl = false
urls = [{ url = "a.html", viewport = { width = 375, height = 700 }, hide_selectors = [".ad"] }, "b.html"]
urls_file = "urls.txt"
"#;
    let c = Config::parse(text, &dir.path().join("sitediff.toml")).unwrap();
    let s = &c.sites[0];
    let urls: Vec<&str> = s.urls.iter().map(Url::as_str).collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1/d/a.html",
            "http://127.0.0.1/d/b.html",
            "http://127.0.0.1/d/c.html",
            "http://127.0.0.1/d/d.html?x=1"
        ]
    );
    let base = Arc::new(s.capture.clone());
    let (vp, opts) = s.capture_for("/a.html", s.viewport, &base);
    assert_eq!(vp, Viewport { width: 375, height: 700 });
    assert_eq!(opts.hide_selectors, [".ad"]);
    let (vp, opts) = s.capture_for("/b.html", s.viewport, &base);
    assert_eq!(vp, s.viewport);
    assert!(Arc::ptr_eq(&opts, &base));

    let bad = r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
urls = [{ url = "a.html", viewport = { width = 0, height = 700 } }, { url = "/x/y.html" }, { url = "b.html", hide_selectors = ["}{"] }]
urls_file = "missing.txt"
"#;
    let msg = Config::parse(bad, &dir.path().join("sitediff.toml")).unwrap_err().to_string();
    for part in
        ["out of range", "outside the prefix", "not a CSS selector", "missing.txt", "sites[0].urls_file"]
    {
        assert!(msg.contains(part), "missing {part:?} in {msg}");
    }
    let unknown = parse(
        "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/d/\"\nurls = [{ url = \"a\", zoom = 2 }]\n",
    );
    assert!(unknown.is_err());
}

#[test]
fn compare_to_is_accepted_and_checked() {
    let c = parse(
        "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/d/\"\ncompare_to = \"http://127.0.0.1:2/d/\"\n",
    )
    .unwrap();
    assert_eq!(c.sites[0].compare_to.as_ref().unwrap().as_str(), "http://127.0.0.1:2/d/");
    let msg = parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/d/\"\ncompare_to = \"http://127.0.0.1:1/d/\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("own prefix"), "{msg}");
    let s = SiteConfig::for_pair("pair-x", "http://127.0.0.1:1/d/", "http://127.0.0.1:2/d/").unwrap();
    assert_eq!(s.scope.prefix().as_str(), "http://127.0.0.1:1/d/");
    assert_eq!(s.viewport, DEFAULT_VIEWPORT);
    assert!(SiteConfig::for_pair("pair-x", "ftp://x/", "http://127.0.0.1:2/d/").is_err());
}

#[test]
fn builtin_plugins_and_resolved_plugin_paths() {
    let text = "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nplugins = [\"m\", \"f\"]\n\
                [[plugins]]\nname = \"m\"\npath = \"builtin:mask_selectors\"\n\
                [[plugins]]\nname = \"f\"\npath = \"plugins/mine.wasm\"\n";
    let c = parse(text).unwrap();
    match &c.plugins[0].source {
        PluginSource::Builtin { name, wat } => {
            assert_eq!(*name, "mask_selectors");
            assert!(wat.contains("sitediff_mask"), "the example's text is embedded");
        }
        other => panic!("not built in: {other:?}"),
    }
    assert_eq!(c.plugins[0].source.to_string(), "builtin:mask_selectors");
    assert_eq!(c.plugins[1].source, PluginSource::File(PathBuf::from("/tmp/x/plugins/mine.wasm")));

    // A relative config path still gives absolute plugin paths (and messages naming them).
    let rel = Config::parse(text, Path::new("somewhere/config/sitediff.toml")).unwrap();
    let want = std::env::current_dir().unwrap().join("somewhere/plugins/mine.wasm");
    assert_eq!(rel.plugins[1].source, PluginSource::File(want));

    let bad = text.replace("builtin:mask_selectors", "builtin:mask_clock");
    let msg = parse(&bad).unwrap_err().to_string();
    assert!(msg.contains("line 7: plugins[0].path"), "{msg}");
    assert!(msg.contains("no built-in plugin \"mask_clock\" (built in: builtin:mask_selectors)"), "{msg}");
}

#[test]
fn server_security_keys_default_and_parse() {
    let c = parse(MINIMAL).unwrap();
    assert!(!c.server.allow_anonymous_writes);
    assert!(c.server.allowed_hosts.is_empty());
    assert_eq!(c.server.max_connections, 256);
    assert_eq!(c.server.header_timeout, std::time::Duration::from_secs(20));
    assert_eq!(c.server.body_timeout, std::time::Duration::from_secs(30));
    let text = format!(
        "[server]\nallow_anonymous_writes = true\nallowed_hosts = [\"Sitediff.Example.com\", \"ci:8080\", \"[::1]:9000\", \"10.0.0.5:80\"]\n\
         max_connections = 4096\nheader_timeout_ms = 2000\nbody_timeout_ms = 5000\n{MINIMAL}"
    );
    let s = parse(&text).unwrap().server;
    assert!(s.allow_anonymous_writes);
    let hosts: Vec<(&str, Option<u16>)> = s.allowed_hosts.iter().map(|h| (h.host.as_str(), h.port)).collect();
    assert_eq!(
        hosts,
        [("sitediff.example.com", None), ("ci", Some(8080)), ("[::1]", Some(9000)), ("10.0.0.5", Some(80))]
    );
    assert_eq!(s.max_connections, 4096);
    assert_eq!(s.header_timeout, std::time::Duration::from_secs(2));
    assert_eq!(s.body_timeout, std::time::Duration::from_secs(5));
}

#[test]
fn bad_server_security_keys_are_each_reported() {
    let text = format!(
        "[server]\ntoken_env = \"T\"\nallow_anonymous_writes = true\n\
         allowed_hosts = [\"http://x.example\", \"ok.example\", \"*.example\", \"\"]\n\
         max_connections = 0\nheader_timeout_ms = 5\nbody_timeout_ms = 0\n{MINIMAL}"
    );
    let msg = report(&parse(&text).unwrap_err());
    for key in [
        "line 3: server.allow_anonymous_writes: cannot be true while server.token_env is set",
        "server.allowed_hosts[0]: \"http://x.example\"",
        "server.allowed_hosts[2]: \"*.example\"",
        "server.allowed_hosts[3]",
        "server.max_connections: 0 is out of range",
        "server.header_timeout_ms: 5 ms",
        "server.body_timeout_ms: 0 ms",
    ] {
        assert!(msg.contains(key), "{key} in:\n{msg}");
    }
    assert!(!msg.contains("allowed_hosts[1]"), "{msg}");
}

#[test]
fn notify_and_pair_prefixes_are_validated_with_their_key_paths() {
    let text = format!(
        "[server]\nallow_anonymous_writes = true\npair_prefixes = [\"https://www.example.com/docs/\", \"*.staging.example.com\", \"ftp://x/\", \"a/b\"]\n\
         {MINIMAL}\n\
         [[notify]]\nurl = \"https://hooks.example.com/x\"\n\
         [[notify]]\nurl = \"file:///etc/passwd\"\non = [\"changed\", \"exploded\"]\nformat = \"xml\"\nsecret_env = \"\"\n\
         [[notify]]\nurll = \"https://x/\"\n"
    );
    let msg = report(&parse(&text).unwrap_err());
    for key in [
        "server.pair_prefixes[2]: \"ftp://x/\"",
        "server.pair_prefixes[3]: \"a/b\"",
        "notify[1].url: \"file:///etc/passwd\" is not an http(s) URL",
        "notify[1].on[1]: \"exploded\"",
        "notify[1].format: \"xml\"",
        "notify[1].secret_env",
        "urll",
    ] {
        assert!(msg.contains(key), "{key} in:\n{msg}");
    }
    assert!(
        !msg.contains("pair_prefixes[0]") && !msg.contains("pair_prefixes[1]") && !msg.contains("notify[0]"),
        "{msg}"
    );

    let ok = parse(&format!(
        "[server]\nallow_anonymous_writes = true\npair_prefixes = [\"*.staging.example.com\"]\n{MINIMAL}\n\
         [[notify]]\nurl = \"https://hooks.example.com/x\"\non = [\"finished\"]\nformat = \"slack\"\nsecret_env = \"HOOK\"\n"
    ))
    .unwrap();
    assert_eq!(ok.server.pair_prefixes.len(), 1);
    let n = &ok.notify[0];
    assert_eq!(
        (n.on.as_slice(), n.format, n.secret_env.as_deref()),
        (&[NotifyOn::Finished][..], NotifyFormat::Slack, Some("HOOK"))
    );
}

#[test]
fn incremental_is_on_by_default_and_full_every_must_be_positive() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.sites[0].incremental, "incremental sweeps are on unless a site turns them off");
    assert_eq!(c.sites[0].full_every, None);
    let site = "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nincremental = true\n";
    let c = parse(&format!("{site}full_every = 24\n")).unwrap();
    assert!(c.sites[0].incremental);
    assert_eq!(c.sites[0].full_every, Some(24));
    let off = "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nincremental = false\n";
    assert!(!parse(off).unwrap().sites[0].incremental, "a site can turn incremental sweeps off");
    let msg = report(&parse(&format!("{site}full_every = 0\n")).unwrap_err());
    assert!(msg.contains("full_every: must be at least 1"), "{msg}");
    let msg = report(&parse(&format!("{site}incremetal = true\n")).unwrap_err());
    assert!(msg.contains("did you mean \"incremental\"?"), "{msg}");
}
