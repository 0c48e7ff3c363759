//! Running sitediff as a service: the systemd unit verifies, `check-config` says whether the daemon
//! would start, log lines through a pipe carry no escape codes (JSON lines parse), and no secret
//! reaches the log even at the most verbose level.

use std::time::Duration;

use crate::helpers::{
    http_get, metric_value, run_sitediff_in, sitediff_bin, wait_for, Daemon, FixtureServer, Response,
    TempProject,
};

fn unit_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/sitediff.service")).unwrap()
}

#[test]
fn the_service_unit_is_hardened_and_verifies() {
    let unit = unit_text();
    for line in [
        "User=sitediff",
        "ProtectSystem=strict",
        "StateDirectory=sitediff",
        "EnvironmentFile=/etc/sitediff/sitediff.env",
        "ExecStartPre=/usr/local/bin/sitediff check-config --config /etc/sitediff/sitediff.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=true",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l == line), "dist/sitediff.service lacks {line:?}");
    }
    let analyze = std::process::Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: install Debian's systemd package (.ci/run does)"
    );
    // verify checks that the commands exist: point them at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sitediff.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/sitediff", &sitediff_bin().display().to_string()))
        .unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "systemd-analyze verify failed:\n{said}");
    // Unknown keys and bad values are only warnings to systemd: none is allowed here.
    assert!(said.trim().is_empty(), "systemd-analyze verify warned:\n{said}");
}

fn valid_config(project: &TempProject) -> String {
    project.write_config(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_TEST_OPS_TOKEN\"\n\n\
         [[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:9/docs/\"\n",
    )
}

#[tokio::test]
async fn check_config_exits_0_on_a_config_that_would_start_and_2_naming_every_problem() {
    let project = TempProject::new();
    let cfg = valid_config(&project);
    let ok =
        run_sitediff_in(None, &[("SITEDIFF_TEST_OPS_TOKEN", "t0k")], &["check-config", "--config", &cfg])
            .await;
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("1 site(s)"), "{}", ok.stdout);

    let no_token = run_sitediff_in(None, &[], &["check-config", "--config", &cfg]).await;
    assert_eq!(no_token.code, 2, "the daemon would refuse to start without its token: {}", no_token.stderr);
    assert!(no_token.stderr.contains("SITEDIFF_TEST_OPS_TOKEN"), "{}", no_token.stderr);

    let bad = project.write_config(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_TEST_OPS_TOKEN\"\n\n\
         [[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:9/docs/\"\nschedul = \"0 * * * *\"\n\
         viewport = { width = 0, height = 600 }\n",
    );
    let out =
        run_sitediff_in(None, &[("SITEDIFF_TEST_OPS_TOKEN", "t0k")], &["check-config", "--config", &bad])
            .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("schedul"), "the unknown key is named: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

/// A daemon whose stderr is a pipe, with `env` added; its log once it served one metrics scrape.
async fn daemon_log(env: &[(&str, &str)]) -> String {
    let project = TempProject::new();
    let cfg = valid_config(&project);
    let mut all = vec![("SITEDIFF_TEST_OPS_TOKEN", "t0k")];
    all.extend_from_slice(env);
    let mut daemon = Daemon::start_with_env(&cfg, &all);
    let (status, _) = http_get(&daemon.url("/metrics")).await;
    assert_eq!(status, 200);
    daemon.terminate(Duration::from_secs(60));
    daemon.log()
}

#[tokio::test]
async fn log_lines_through_a_pipe_carry_no_escape_codes_unless_asked() {
    let plain = daemon_log(&[]).await;
    assert!(plain.contains("INFO"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "escape codes in a piped log:\n{plain:?}");
    let forced = daemon_log(&[("SITEDIFF_COLOR", "always")]).await;
    assert!(forced.contains('\u{1b}'), "--color always colours even through a pipe:\n{forced}");
}

#[tokio::test]
async fn json_log_lines_parse() {
    let log = daemon_log(&[("SITEDIFF_LOG_FORMAT", "json")]).await;
    let mut parsed = 0;
    for line in log.lines() {
        if line.starts_with("sitediff: ") {
            continue; // the human status lines (`serving on ...`), not log records
        }
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
        assert!(v["message"].is_string(), "{line}");
        parsed += 1;
    }
    assert!(parsed >= 2, "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_even_at_debug() {
    let n: u64 = rand::random();
    let (token, password, header, cookie, wrong) = (
        format!("token-{n:016x}"),
        format!("password-{n:016x}"),
        format!("header-{n:016x}"),
        format!("cookie-{n:016x}"),
        format!("wrongtoken-{n:016x}"),
    );
    let srv = FixtureServer::start().await;
    srv.set("/s/", Response::html("<title>home</title><h1>Home</h1><a href=\"b.html\">b</a>"));
    srv.set("/s/b.html", Response::html("<title>b</title><h1>B</h1>"));
    srv.require_authorization(&format!("Basic {}", base64_of(&format!("me:{password}"))));
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_TEST_OPS_TOKEN\"\n\
         [browser]\nsessions = 1\n\
         [[sites]]\nname = \"s\"\nstart = \"{}\"\nviewport = {{ width = 480, height = 360 }}\n\
         basic_auth = {{ user = \"me\", password_env = \"SITEDIFF_TEST_OPS_PW\" }}\n\
         headers = {{ X-Api-Key = \"{header}\" }}\n\
         cookies = [{{ name = \"session\", value = \"{cookie}\" }}]\n",
        srv.url("/s/")
    ));
    let daemon = Daemon::start_with_env(
        &cfg,
        &[("SITEDIFF_TEST_OPS_TOKEN", &token), ("SITEDIFF_TEST_OPS_PW", &password), ("RUST_LOG", "trace")],
    );
    let client = reqwest::Client::new();
    let refused = client.post(daemon.url("/api/sites/s/crawl")).bearer_auth(&wrong).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let resp = client.post(daemon.url("/api/sites/s/crawl")).bearer_auth(&token).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let metrics = daemon.url("/metrics");
    wait_for(Duration::from_secs(120), "both pages to be captured", || {
        let url = metrics.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let n = metric_value(&text, "sitediff_pages_captured_total{outcome=\"ok\",site=\"s\"}")?;
            (n >= 2.0).then_some(())
        }
    })
    .await;
    let log = daemon.log();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the log is at its most verbose");
    for (what, s) in [
        ("write token", &token),
        ("wrong token", &wrong),
        ("password", &password),
        ("header", &header),
        ("cookie", &cookie),
    ] {
        assert!(!log.contains(s.as_str()), "the {what} is in the log:\n{}", excerpt(&log, s));
    }
    let b64 = base64_of(&format!("me:{password}"));
    assert!(!log.contains(&b64), "the basic-auth header is in the log:\n{}", excerpt(&log, &b64));
}

fn excerpt(log: &str, s: &str) -> String {
    log.lines().filter(|l| l.contains(s)).take(5).collect::<Vec<_>>().join("\n")
}
