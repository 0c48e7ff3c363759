//! Stores written by earlier releases (tests/fixtures/store-vN, one per older schema) are upgraded to
//! the current schema on open: a copy is made beside the file first, every crawl, approval,
//! baseline and artifact is kept, opening again changes nothing, and a crawl of the unchanged site
//! finds nothing changed. A schema bump adds its fixture to [`FIXTURES`] (see `store/migrate.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sitediff::store::migrate::backup_path;
use sitediff::store::schema::{BASELINES, BLOBS, CRAWLS, META, META_SCHEMA_VERSION, PAGES, SCHEMA_VERSION};
use sitediff::store::*;

use crate::helpers::{run_sitediff_in, FixtureServer, Response, TempProject};

/// One fixture store per older schema version: what it holds, checked after the upgrade.
struct Fixture {
    version: u64,
    /// Crawl ids per site, after retention.
    crawls: &'static [(&'static str, &'static [u64])],
    statuses: &'static [(u64, CrawlStatus)],
    /// (site, page key, crawl the baseline comes from).
    baselines: &'static [(&'static str, &'static str, u64)],
    /// (crawl, page key) approved on its own.
    page_approvals: &'static [(u64, &'static str)],
    /// (crawl, page key, HTTP status) of a failing page.
    failing: (u64, &'static str, u16),
    /// Whether the directory holds the site as every baseline shows it (`site/`).
    has_site: bool,
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        version: 1,
        crawls: &[("blog", &[2, 5]), ("docs", &[1, 3, 4, 6])],
        statuses: &[
            (1, CrawlStatus::Approved),
            (2, CrawlStatus::Approved),
            (3, CrawlStatus::Reviewing),
            (4, CrawlStatus::Rejected),
            (5, CrawlStatus::Reviewing),
            (6, CrawlStatus::Reviewing),
        ],
        baselines: &[
            ("blog", "/intro.html", 2),
            ("blog", "/setup.html", 2),
            ("docs", "/about.html", 3),
            ("docs", "/guide/intro.html", 1),
            ("docs", "/guide/setup.html", 1),
            ("docs", "/index.html", 1),
        ],
        page_approvals: &[(3, "/about.html")],
        failing: (6, "/guide/setup.html", 404),
        has_site: false,
    },
    Fixture {
        version: 2,
        crawls: &[("blog", &[2, 5]), ("docs", &[1, 4, 6, 7, 8])],
        statuses: &[
            (1, CrawlStatus::Approved),
            (2, CrawlStatus::Approved),
            (4, CrawlStatus::Reviewing),
            (5, CrawlStatus::Reviewing),
            (6, CrawlStatus::Rejected),
            (7, CrawlStatus::Passed),
            (8, CrawlStatus::Reviewing),
        ],
        baselines: &[
            ("blog", "/intro.html", 2),
            ("blog", "/setup.html", 2),
            ("docs", "/about.html", 4),
            ("docs", "/guide/intro.html", 1),
            ("docs", "/guide/setup.html", 1),
            ("docs", "/index.html", 1),
        ],
        page_approvals: &[(4, "/about.html")],
        failing: (8, "/guide/setup.html", 404),
        has_site: true,
    },
];

fn fixture_dir(version: u64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/store-v{version}"))
}

fn schema_version(path: &Path) -> u64 {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let rtx = db.begin_read().unwrap();
    let meta = rtx.open_table(META).unwrap();
    let version = meta.get(META_SCHEMA_VERSION).unwrap().unwrap().value();
    version
}

/// A copy of fixture `version` in a temp dir (the committed file is never opened to write).
fn fixture_copy(version: u64) -> (tempfile::TempDir, PathBuf) {
    let src = fixture_dir(version).join("sitediff.redb");
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("sitediff.redb");
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("cannot copy {}: {e}", src.display()));
    (dir, dst)
}

/// Every record of the file as JSON, keyed by table and key, and every blob's hash of its bytes:
/// read with redb alone, so it works on any schema.
fn dump(path: &Path) -> BTreeMap<String, serde_json::Value> {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let rtx = db.begin_read().unwrap();
    let mut out = BTreeMap::new();
    fn json<K: redb::Key + 'static>(
        rtx: &redb::ReadTransaction,
        t: TableDefinition<K, &[u8]>,
        name: &str,
        key: impl Fn(K::SelfType<'_>) -> String,
        out: &mut BTreeMap<String, serde_json::Value>,
    ) {
        for e in rtx.open_table(t).unwrap().iter().unwrap() {
            let (k, v) = e.unwrap();
            out.insert(format!("{name} {}", key(k.value())), serde_json::from_slice(v.value()).unwrap());
        }
    }
    json(&rtx, CRAWLS, "crawl", |k| k.to_string(), &mut out);
    json(&rtx, PAGES, "page", |(c, k)| format!("{c} {k}"), &mut out);
    json(&rtx, BASELINES, "baseline", |(s, k)| format!("{s} {k}"), &mut out);
    for e in rtx.open_table(BLOBS).unwrap().iter().unwrap() {
        let (k, v) = e.unwrap();
        let hash = *k.value();
        assert_eq!(*blake3::hash(v.value()).as_bytes(), hash, "a blob's bytes match its address");
        out.insert(format!("blob {}", hex(&hash)), v.value().len().into());
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether `new` holds everything `old` holds (an upgrade may add fields, never drop or change one).
fn holds(old: &serde_json::Value, new: &serde_json::Value) -> bool {
    match (old, new) {
        (serde_json::Value::Object(o), serde_json::Value::Object(n)) => {
            o.iter().all(|(k, v)| n.get(k).is_some_and(|nv| holds(v, nv)))
        }
        _ => old == new,
    }
}

#[test]
fn every_older_schema_has_a_fixture() {
    for version in 1..SCHEMA_VERSION {
        let dir = fixture_dir(version);
        assert!(
            dir.join("README.md").is_file() && dir.join("sitediff.redb").is_file(),
            "schema {version} has no fixture store: write {} with that release's binary (see store/migrate.rs)",
            dir.display()
        );
        assert_eq!(
            schema_version(&dir.join("sitediff.redb")),
            version,
            "the committed fixture stays at {version}"
        );
        assert!(FIXTURES.iter().any(|f| f.version == version), "schema {version} is missing from FIXTURES");
    }
}

#[test]
fn older_fixtures_are_upgraded_once_with_a_copy_beside_them_and_keep_every_record() {
    for f in FIXTURES {
        let (dir, path) = fixture_copy(f.version);
        let before = dump(&path);
        let original = std::fs::read(&path).unwrap();
        let started = std::time::Instant::now();
        let store = Store::open(&path).unwrap_or_else(|e| panic!("schema {}: {e}", f.version));
        eprintln!("schema {} fixture upgraded in {:?}", f.version, started.elapsed());
        drop(store);
        assert_eq!(schema_version(&path), SCHEMA_VERSION);

        let backup = backup_path(&path, f.version);
        assert_eq!(backup, dir.path().join(format!("sitediff.redb.schema-{}.bak", f.version)));
        // The newest fixture is at the current schema until the next bump: nothing to upgrade.
        let upgraded = f.version < SCHEMA_VERSION;
        assert_eq!(backup.exists(), upgraded, "schema {}: a copy is made exactly when upgrading", f.version);
        if upgraded {
            assert!(
                std::fs::read(&backup).unwrap() == original,
                "the copy beside it is the file before the upgrade"
            );
            assert_eq!(schema_version(&backup), f.version);
            std::fs::remove_file(&backup).unwrap();
        }

        let after = dump(&path);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "schema {}",
            f.version
        );
        for (key, old) in &before {
            assert!(holds(old, &after[key]), "schema {}: {key} changed:\n{old}\n{}", f.version, after[key]);
        }

        // Opening again finds nothing to do: no new copy, the records stay as they are.
        drop(Store::open(&path).unwrap());
        assert!(!backup.exists(), "a second open upgraded again");
        assert_eq!(dump(&path), after);
    }
}

#[test]
fn older_fixtures_keep_crawls_approvals_baselines_and_artifacts() {
    for f in FIXTURES {
        let (_dir, path) = fixture_copy(f.version);
        let store = Store::open(&path).unwrap();
        let v = f.version;
        let mut sites = store.site_names().unwrap();
        sites.sort();
        assert_eq!(sites, f.crawls.iter().map(|(s, _)| *s).collect::<Vec<_>>(), "schema {v}");
        for (site, ids) in f.crawls {
            assert_eq!(store.crawl_ids(site).unwrap(), *ids, "schema {v}: crawls of {site}");
        }
        for (id, status) in f.statuses {
            let c = store.crawl(*id).unwrap().unwrap_or_else(|| panic!("schema {v}: crawl {id} missing"));
            assert_eq!(c.status, *status, "schema {v}: crawl {id}");
            let pages = store.pages(*id).unwrap();
            assert_eq!(pages.len(), c.counts.pages as usize, "schema {v}: pages of crawl {id}");
            for p in pages {
                for h in [p.png, p.html, p.diff, p.baseline_png].into_iter().flatten() {
                    assert!(
                        store.blob(&h).unwrap().is_some(),
                        "schema {v}: crawl {id} {}: artifact missing",
                        p.key
                    );
                }
            }
        }
        for (crawl, key) in f.page_approvals {
            let p = store.page(*crawl, key).unwrap().unwrap_or_else(|| panic!("schema {v}: {crawl} {key}"));
            assert!(p.approved, "schema {v}: the page approval of crawl {crawl} is kept");
        }
        let (crawl, key, status) = f.failing;
        let failed = store.page(crawl, key).unwrap().unwrap_or_else(|| panic!("schema {v}: {crawl} {key}"));
        assert_eq!(failed.http_status, Some(status), "schema {v}");

        let mut baselines = Vec::new();
        for site in ["blog", "docs"] {
            for (key, b) in store.baselines(site).unwrap() {
                let png = store
                    .blob(&b.png)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{site} {key}: baseline PNG missing"));
                let img = image::load_from_memory(&png).unwrap();
                assert_eq!((img.width(), img.height()), (b.width, b.height), "schema {v}: {site} {key}");
                if let Some(html) = b.html {
                    assert!(
                        store.blob(&html).unwrap().is_some(),
                        "schema {v}: {site} {key}: baseline HTML missing"
                    );
                }
                baselines.push((site, key, b.crawl));
            }
        }
        baselines.sort();
        let want: Vec<_> = f.baselines.iter().map(|(s, k, c)| (*s, k.to_string(), *c)).collect();
        assert_eq!(baselines, want, "schema {v}");
    }
}

/// Serve a fixture's `site/` directory on 127.0.0.1:0.
async fn serve_site(version: u64) -> FixtureServer {
    let server = FixtureServer::start().await;
    let root = fixture_dir(version).join("site");
    for path in ["index.html", "about.html", "guide/intro.html", "guide/setup.html"] {
        let body = std::fs::read(root.join(path)).unwrap();
        // As `python3 -m http.server` served it when the fixture was made: no charset.
        server.set(&format!("/{path}"), Response::with_type(200, "text/html", body));
    }
    server
}

#[tokio::test]
async fn a_crawl_of_the_unchanged_site_against_an_upgraded_fixture_finds_nothing_changed() {
    for f in FIXTURES.iter().filter(|f| f.has_site) {
        let server = serve_site(f.version).await;
        let project = TempProject::new();
        std::fs::copy(fixture_dir(f.version).join("sitediff.redb"), project.db_path()).unwrap();
        let config = project.write_config(&format!(
            r#"[browser]
webdriver = "spawn"
sessions = 2

[[sites]]
name = "docs"
start = "{docs}"
prefix = "{root}"
viewport = {{ width = 800, height = 600 }}
max_distortion = 0.0

[[sites]]
name = "blog"
start = "{intro}"
prefix = "{guide}"
viewport = {{ width = 640, height = 480 }}
"#,
            docs = server.url("/index.html"),
            root = server.url("/"),
            intro = server.url("/guide/intro.html"),
            guide = server.url("/guide/"),
        ));
        for (site, pages) in [("docs", 4), ("blog", 2)] {
            let out = run_sitediff_in(None, &[], &["crawl", site, "--config", &config, "--json"]).await;
            let json = out.json();
            assert_eq!(out.code, 0, "schema {}: {site}: {}\n{}", f.version, out.stdout, out.stderr);
            assert_eq!(json["pages"], pages, "{json}");
            assert_eq!(json["changed"], 0, "schema {}: {site}: {json}", f.version);
            assert_eq!(json["failed"], 0, "{json}");
            assert_eq!(json["new"], 0, "every page still has its baseline: {json}");
            assert_eq!(json["status"], "passed", "{json}");
        }
        let copied = backup_path(&project.db_path(), f.version).exists();
        assert_eq!(
            copied,
            f.version < SCHEMA_VERSION,
            "the CLI's open copies an older store before upgrading"
        );
    }
}
