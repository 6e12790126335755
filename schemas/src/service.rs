//! Process plumbing shared by every binary of the product: logs, metrics, shutdown signals and
//! the `/healthz` `/readyz` `/metrics` HTTP endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Reads every `KAFKA_*` variable as a librdkafka property: `KAFKA_SASL_USERNAME=u` becomes
/// `sasl.username=u` (prefix dropped, lower case, `_` read as `.`), sorted by name. This is how
/// every process passes any librdkafka property through from its environment.
pub fn kafka_properties_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut properties: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix("KAFKA_")?;
            (!rest.is_empty()).then(|| (rest.to_ascii_lowercase().replace('_', "."), value))
        })
        .collect();
    properties.sort();
    properties
}

/// Whether a Kafka property's value must never be printed: its name mentions a password, secret,
/// key or token (but not a file location, such as `ssl.key.location`).
pub fn is_secret_property(name: &str) -> bool {
    ["password", "secret", "key", "token"]
        .iter()
        .any(|word| name.contains(word))
        && !name.ends_with(".location")
}

/// Starts logging to stderr: text, or JSON lines when `json` is set. The level comes from
/// `RUST_LOG` (default `info`). Calling it twice is harmless (tests start several services).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
    };
}

/// The process-wide Prometheus recorder, installed on first use. Every `metrics::counter!` and
/// friends in the process report to it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist already (a test harness); then this one only renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A token cancelled on the first SIGINT (Ctrl-C) or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whether a process is ready for work; `/readyz` answers 200 when it is, 503 when not.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether it is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `/healthz` (always 200 while the process serves), `/readyz` and `/metrics`.
pub fn ops_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(readiness): State<Readiness>| async move {
                if readiness.get() {
                    (StatusCode::OK, "ready\n").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
                }
            }),
        )
        .route("/metrics", get(|| async { metrics_handle().render() }))
        .with_state(readiness)
}

/// Serves [`ops_router`] on `addr` until `shutdown`; returns the bound address.
pub async fn spawn_ops_server(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, ops_router(readiness))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics and health server failed");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_variables_become_sorted_properties_and_secret_names_are_recognised() {
        let vars = [
            ("KAFKA_SASL_PASSWORD", "x"),
            ("KAFKA_BOOTSTRAP_SERVERS", "b:9092"),
            ("KAFKA_", "no"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(
            kafka_properties_from_env(vars),
            [
                ("bootstrap.servers".to_owned(), "b:9092".to_owned()),
                ("sasl.password".to_owned(), "x".to_owned())
            ]
        );
        assert!(is_secret_property("sasl.password"));
        assert!(is_secret_property("sasl.oauthbearer.client.secret"));
        assert!(!is_secret_property("ssl.key.location"));
        assert!(!is_secret_property("security.protocol"));
    }
}
