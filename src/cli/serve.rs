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
