//! `sitediff serve`: run the daemon until SIGTERM or ctrl-c.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{runtime, ConfigArg, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let rt = runtime()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            eprintln!("sitediff: stopping");
            on_signal.cancel();
        });
        crate::daemon::run(cfg, shutdown, None).await
    })?;
    Ok(ExitCode::from(EXIT_OK))
}

/// SIGTERM or SIGINT (ctrl-c).
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
