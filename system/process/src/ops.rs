//! The `/healthz`, `/readyz` and `/metrics` endpoints every binary serves, the process-wide
//! Prometheus recorder behind `/metrics`, and readiness.

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

/// The sum of the samples of metric `name` in this process whose labels contain `label` (every
/// sample when `None`): a counter's total across its labels, read without an HTTP round trip.
pub fn metric_sum(name: &str, label: Option<&str>) -> f64 {
    metric_sum_in(&metrics_handle().render(), name, label)
}

/// As [`metric_sum`], in `exposition` (Prometheus text, such as another process's `/metrics`).
pub fn metric_sum_in(exposition: &str, name: &str, label: Option<&str>) -> f64 {
    exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            label
                .is_none_or(|label| labels.contains(label))
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
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
    use super::metric_sum;

    #[test]
    fn metric_sum_adds_a_counters_samples_whose_labels_match() {
        metrics_handle_ready();
        metrics::counter!("ops_test_calls_total", "outcome" => "ok").increment(3);
        metrics::counter!("ops_test_calls_total", "outcome" => "failed").increment(2);
        metrics::counter!("ops_test_calls_total_other").increment(7);
        metrics::counter!("ops_test_plain_total").increment(4);
        assert_eq!(metric_sum("ops_test_calls_total", None), 5.0);
        assert_eq!(
            metric_sum("ops_test_calls_total", Some("outcome=\"ok\"")),
            3.0
        );
        assert_eq!(metric_sum("ops_test_plain_total", None), 4.0);
        assert_eq!(metric_sum("ops_test_absent_total", None), 0.0);
    }

    fn metrics_handle_ready() {
        let _ = super::metrics_handle();
    }
}
