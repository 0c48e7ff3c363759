//! Online backup and restore: `sitediff backup` through a running daemon while crawls and
//! approvals write, the daemon SIGKILLed in the middle of a backup (the store and any finished
//! backup still open and verify, no half file under the backup's name), and `sitediff restore`
//! (refused while the daemon runs or for a damaged file).

use std::path::Path;
use std::time::Duration;

use sitediff::store::*;

use crate::helpers::{kill_hard, run_sitediff_in, Daemon, FixtureServer, Response, TempProject};

const TOKEN: &str = "backup-test-token";

/// A listen address that was free a moment ago (the CLI finds the daemon through the config).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Put `mb` MiB of distinct artifacts in the store, so that a backup takes a while.
fn fill(path: &Path, mb: usize) {
    let store = Store::open(path).unwrap();
    let c = store.begin_crawl("bulk", CrawlKind::Site, "http://bulk/", None).unwrap();
    for i in 0..mb {
        let bytes: Vec<u8> =
            (0..1 << 20).map(|j: usize| (j.wrapping_mul(31) ^ i.wrapping_mul(7919)) as u8).collect();
        let mut bytes = bytes;
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let mut p =
            PageRecord::failed(format!("/p{i}"), format!("http://bulk/p{i}"), PageOutcome::Ok, String::new());
        p.error = None;
        p.change = PageChange::New;
        p.png = Some(Hash::of(&bytes));
        store.put_page(c.id, &p, &[Blob::new(&bytes)]).unwrap();
    }
    let mut rec = store.crawl(c.id).unwrap().unwrap();
    rec.status = CrawlStatus::Reviewing;
    store.update_crawl(&rec).unwrap();
}

async fn site() -> FixtureServer {
    let srv = FixtureServer::start().await;
    let links: String = (0..6).map(|i| format!("<a href=\"p{i}.html\">p{i}</a> ")).collect();
    srv.set("/s/", Response::html(format!("<title>home</title><h1>Home</h1>{links}")));
    for i in 0..6 {
        srv.set(&format!("/s/p{i}.html"), Response::html(format!("<title>p{i}</title><h1>Page {i}</h1>")));
    }
    srv
}

/// The daemon's config; `backups`: the one directory `POST /api/backup` may write into.
fn config(project: &TempProject, srv: &FixtureServer, port: u16, backups: &Path) -> String {
    project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"SITEDIFF_TEST_BACKUP_TOKEN\"\n\
         backup_dirs = [{:?}]\n\
         [browser]\nsessions = 2\n\
         [[sites]]\nname = \"s\"\nstart = \"{}\"\nviewport = {{ width = 480, height = 360 }}\n",
        backups.display().to_string(),
        srv.url("/s/")
    ))
}

/// Crawl and approve through the API, over and over, until the daemon is gone.
fn heavy_writes(base: String) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let mut writes = 0;
        loop {
            let Ok(r) = client.post(format!("{base}/api/sites/s/crawl")).bearer_auth(TOKEN).send().await
            else {
                return writes;
            };
            let text = r.text().await.unwrap_or_default();
            let crawl =
                serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["crawl"].as_u64());
            if let Some(id) = crawl.map(|c| c.saturating_sub(1)).filter(|c| *c > 1) {
                // Approve the previous crawl (if it is reviewable; refusals are fine).
                if client
                    .post(format!("{base}/api/crawls/{id}/approve"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .is_err()
                {
                    return writes;
                }
            }
            writes += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// SIGKILL the daemon (and then its chromedriver's process group: nothing else would stop it).
fn sigkill(daemon: &mut Daemon) {
    kill_hard(&mut daemon.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_writes_survives_sigkill_and_restores() {
    let srv = site().await;
    let project = TempProject::new();
    let port = free_port();
    let out_dir = tempfile::tempdir().unwrap();
    let cfg = config(&project, &srv, port, out_dir.path());
    let db = project.db_path();
    fill(&db, 96);
    let env = [("SITEDIFF_TEST_BACKUP_TOKEN", TOKEN)];

    // 1. SIGKILL in the middle of a backup, during crawls and approvals.
    let mut daemon = Daemon::start_with_env(&cfg, &env);
    let writer = heavy_writes(daemon.base.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dest = out_dir.path().join("killed.redb");
    let partial = partial_path(&dest);
    let d = dest.display().to_string();
    let (c, e) = (cfg.clone(), env);
    let backup =
        tokio::spawn(async move { run_sitediff_in(None, &e, &["backup", &d, "--config", &c]).await });
    let seen = crate::helpers::wait_for(Duration::from_secs(120), "the backup to start writing", || {
        let (p, dst) = (partial.clone(), dest.clone());
        async move { (p.exists() || dst.exists()).then_some(p.exists()) }
    })
    .await;
    sigkill(&mut daemon);
    let out = backup.await.unwrap();
    let writes = writer.await.unwrap();
    assert!(writes >= 1, "crawls were triggered while backing up");
    assert!(seen, "the backup was killed before it got its name (finished too fast to test)");
    assert_ne!(out.code, 0, "the CLI reports the backup the daemon never finished: {}", out.stdout);
    assert!(!dest.exists(), "a half backup got the backup's name");
    // The writer's open repairs what the kill left (redb's crash recovery), then all is there.
    let store = Store::open(&db).unwrap_or_else(|e| panic!("the store after SIGKILL: {e}"));
    let report = store.verify().unwrap_or_else(|e| panic!("the store after SIGKILL: {e}"));
    assert!(report.blobs >= 96, "{report:?}");
    drop(store);

    // 2. A finished backup while writes go on, then SIGKILL: both files open and verify.
    let mut daemon = Daemon::start_with_env(&cfg, &env);
    let writer = heavy_writes(daemon.base.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The daemon writes only into `server.backup_dirs`: another directory (or a way out of it
    // through `..`) is refused, naming the setting, and nothing is written there.
    let elsewhere = tempfile::tempdir().unwrap();
    for outside in [elsewhere.path().join("x.redb"), out_dir.path().join("..").join("y.redb")] {
        let out =
            run_sitediff_in(None, &env, &["backup", &outside.display().to_string(), "--config", &cfg]).await;
        assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("server.backup_dirs"), "{}", out.stderr);
        assert!(!outside.exists() && !partial_path(&outside).exists(), "{}", outside.display());
    }
    let dest = out_dir.path().join("done.redb");
    let out = run_sitediff_in(None, &env, &["backup", &dest.display().to_string(), "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("asking it for the backup"), "{}", out.stderr);
    eprintln!("{}", out.stdout);
    sigkill(&mut daemon);
    writer.await.unwrap();
    let backed = verify_file(&dest).unwrap();
    let live = Store::open(&db).unwrap();
    let live_report = live.verify().unwrap();
    assert!(backed.blobs >= 96 && backed.crawls >= 1, "{backed:?}");
    let copy = Store::open(&dest).unwrap();
    assert!(copy.crawl_ids("bulk").unwrap().len() == 1);
    // Writes went on after the backup: the live store is at least as new. (Not as many crawls:
    // retention, `keep_crawls`, may have removed older ones since.)
    let newest = |s: &Store| s.crawl_ids("s").unwrap().into_iter().max();
    assert!(newest(&live) >= newest(&copy), "{live_report:?} {backed:?}");
    drop((copy, live));

    // 3. Restore: refused while the daemon runs and for a damaged file; done when it is stopped.
    let daemon = Daemon::start_with_env(&cfg, &env);
    let refused =
        run_sitediff_in(None, &env, &["restore", &dest.display().to_string(), "--config", &cfg]).await;
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("stop the daemon"), "{}", refused.stderr);
    drop(daemon);
    let damaged = out_dir.path().join("damaged.redb");
    let bytes = std::fs::read(&dest).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let out =
        run_sitediff_in(None, &env, &["restore", &damaged.display().to_string(), "--config", &cfg]).await;
    assert_eq!(out.code, 2, "a damaged file is not restored: {}", out.stdout);
    verify_file(&db).unwrap();
    let out = run_sitediff_in(None, &env, &["restore", &dest.display().to_string(), "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(verify_file(&db).unwrap(), backed, "the store is the backup now");
    let mut old = db.clone().into_os_string();
    old.push(".before-restore");
    assert_eq!(verify_file(Path::new(&old)).unwrap(), verify_file(Path::new(&old)).unwrap());
    // 4. Without a daemon the CLI copies the store itself.
    let direct = out_dir.path().join("direct.redb");
    let out = run_sitediff_in(None, &env, &["backup", &direct.display().to_string(), "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(verify_file(&direct).unwrap(), backed);
}
