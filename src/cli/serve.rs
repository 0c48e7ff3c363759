//! `sitediff serve`: run the daemon until SIGTERM or ctrl-c.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{load_plugins, runtime, ConfigArg, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    // Refuse unprotected writes before the slow start-up steps (the daemon checks again).
    sitediff::web::WriteAccess::from_config(&cfg.server)?;
    raise_fd_limit();
    let all: Vec<String> = cfg.plugins.iter().map(|p| p.name.clone()).collect();
    let plugins = load_plugins(&cfg, &all)?;
    let rt = runtime()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            eprintln!("sitediff: stopping");
            on_signal.cancel();
        });
        sitediff::daemon::run(cfg, plugins, shutdown, None).await
    })?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Raise the soft limit on open files to the hard limit: every connection, store file and
/// browser pipe is one, and `server.max_connections` defaults to 256 on top of them.
fn raise_fd_limit() {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-files limit");
                return;
            }
            if lim.rlim_cur >= lim.rlim_max {
                return;
            }
            let from = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(from, to = lim.rlim_cur, "raised the open-files limit");
            } else {
                tracing::warn!(error = %std::io::Error::last_os_error(), from, "cannot raise the open-files limit");
            }
        }
    }
}

/// SIGTERM or SIGINT (ctrl-c). A signal that cannot be listened for is logged and never fires.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; ctrl-c (SIGINT) still stops sitediff");
                ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await;
    }
}

/// Ctrl-c (SIGINT); never, when it cannot be listened for.
async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot listen for ctrl-c (SIGINT)");
        std::future::pending::<()>().await;
    }
}
