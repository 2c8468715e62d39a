//! The HTTP edge: `/healthz` and `/metrics` for the host's supervisor and scraper.
//!
//! [`router`] builds the axum router from the app, so tests drive it in-process. It translates
//! only: readiness comes from the gateway gauge in [`crate::metrics::Metrics`] and a read of the
//! store; numbers come from the metrics and the store's request counts. Never imports serenity,
//! sled or the AWS SDK.
//!
//! * `GET /healthz`: `200 ok` once the Discord gateway is connected and the store answers,
//!   else `503` with the reason, one line.
//! * `GET /metrics`: Prometheus text format 0.0.4.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::App;

/// The content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A store key read by the health check (any key: the read itself is the check).
const HEALTH_PROBE_KEY: &str = "health.probe";

/// The router of `/healthz` and `/metrics` over `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let unavailable = |reason: String| (StatusCode::SERVICE_UNAVAILABLE, reason);
    if let Err(e) = app.store.get_meta(HEALTH_PROBE_KEY) {
        return unavailable(format!("store: {e}\n"));
    }
    if !app.metrics.gateway_connected() {
        return unavailable("discord: the gateway is not connected\n".to_string());
    }
    (StatusCode::OK, "ok\n".to_string())
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let counts = match app.store.request_counts() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "/metrics: cannot count requests by state");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        app.metrics.render(counts.as_deref()),
    )
}
