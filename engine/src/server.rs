//! `uig serve`: binds the API, runs the workers and shuts down gracefully on SIGTERM or Ctrl-C.

use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::db::redact_url;
use crate::engine::Engine;

/// How long in-flight deliveries may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Starts the engine and serves until a shutdown signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    tracing::info!(database = %redact_url(&config.database_url), plugins_dir = %config.plugins_dir.display(), "starting");
    let engine = Engine::start(config).await?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
    tracing::info!(address = %listener.local_addr()?, instance = %engine.instance_id, "listening");

    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    if engine.config.worker.enabled {
        workers.push(tokio::spawn(crate::worker::run(engine.clone(), stopped.clone())));
        workers.push(tokio::spawn(crate::callbacks::run(engine.clone(), stopped.clone())));
        workers.push(tokio::spawn(crate::scheduler::run(engine.clone(), stopped.clone())));
    }
    workers.push(tokio::spawn(crate::limits::run(engine.clone(), stopped.clone())));
    workers.push(tokio::spawn(checkpoint_wal(engine.clone(), stopped.clone())));

    let mut api_stopped = stopped.clone();
    axum::serve(listener, crate::api::app(engine.clone()))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
            let _ = api_stopped.changed().await;
        })
        .await?;

    tracing::info!("api stopped, waiting for workers");
    let wait = futures_join(workers);
    if tokio::time::timeout(SHUTDOWN_GRACE, wait).await.is_err() {
        tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "workers did not stop in time; their leases expire and other instances re-claim the messages");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Checkpoints the SQLite WAL every second until `shutdown`, so that commits never do it.
async fn checkpoint_wal(engine: std::sync::Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        match engine.db.checkpoint_wal(crate::db::WAL_RESTART_FRAMES).await {
            Ok((frames, copied)) if frames > 0 => tracing::debug!(frames, copied, "WAL checkpoint"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
        }
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received");
}
