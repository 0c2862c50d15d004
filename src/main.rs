//! The `jam-server` binary: parse the configuration, start logging, run until Ctrl-C or
//! SIGTERM, then shut down cleanly.

use anyhow::Result;
use clap::CommandFactory;
use jam_server::config::LogFormat;
use jam_server::{Config, RunningServer};
use tracing_subscriber::EnvFilter;

fn main() -> Result<()> {
    let config = Config::from_command_line();
    if let Err(e) = config.validate() {
        Config::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit();
    }
    let runtime = match config.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,quinn=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        // One JSON object a line, the span's fields (connection, room) flattened in.
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
    // Every connection is a descriptor: start with as many as the system allows.
    match jam_server::descriptors::raise() {
        Ok(limits) => tracing::info!(
            was = limits.was,
            soft = limits.soft,
            hard = limits.hard,
            "descriptor limit"
        ),
        Err(e) => tracing::warn!(error = %e, "could not raise the descriptor limit"),
    }
    if config.make_cert {
        let source = jam_server::tls::CertSource::Dev {
            dir: Some(config.cert_dir.clone()),
            lifetime: config.dev_cert_lifetime,
        };
        if let Some(id) = source.renew()? {
            println!("{}", id.hash_hex);
        }
        return Ok(());
    }
    let server = RunningServer::start(config).await?;
    tracing::info!(url = %server.http_url(), "open the web demo");
    wait_for_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
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
