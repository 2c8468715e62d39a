//! The HTTP edge: `/healthz` and `/metrics` for the host's supervisor and scraper.
//!
//! [`router`] builds the axum router from the app, so tests drive it in-process. It translates
//! only: readiness comes from the gateway gauge in [`crate::metrics::Metrics`] and a read of the
//! store; numbers come from the metrics and the store's request counts. Never imports serenity,
//! sled or the AWS SDK. With `discord.interactions = "http"`, `hanko run` merges Discord's
//! `POST /interactions` ([`crate::discord::endpoint`]) into the same server.
//!
//! * `GET /healthz`: `200 ok` once the store answers and, with interactions over the gateway,
//!   the gateway is connected (over HTTP there is no connection to wait for); else `503` with
//!   the reason, one line.
//! * `GET /metrics`: Prometheus text format 0.0.4.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::App;

/// The content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The router of `/healthz` and `/metrics` over `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let unavailable = |reason: String| (StatusCode::SERVICE_UNAVAILABLE, reason);
    if let Err(e) = app.store.probe() {
        return unavailable(format!("store: {e}\n"));
    }
    let over_gateway = !app.settings.discord.interactions.is_http();
    if over_gateway && !app.metrics.gateway_connected() {
        return unavailable("discord: the gateway is not connected\n".to_string());
    }
    (StatusCode::OK, format!("ok\n{}", replica_lines(&app)))
}

/// The backend and this replica's roles, after `/healthz`'s first line.
fn replica_lines(app: &App) -> String {
    let mut roles = app.replica.roles();
    roles.push(format!("executing {}", app.engine.running_count()));
    format!(
        "backend: {}\nreplica: {}\nroles: {}\n",
        app.store.backend_name(),
        app.replica.id,
        roles.join(", ")
    )
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let counts = match app.store.request_counts() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "/metrics: cannot count requests by state");
            None
        }
    };
    let mut body = app.metrics.render(counts.as_deref());
    body.push_str(&format!(
        "# HELP hanko_store_write_conflicts_total Store transactions that met a concurrent write (another replica) and ran again.\n\
         # TYPE hanko_store_write_conflicts_total counter\n\
         hanko_store_write_conflicts_total {}\n\
         # HELP hanko_lease_takeovers_total Leases (a run, ingest, the gateway, a card) this replica took over after their holder stopped renewing them.\n\
         # TYPE hanko_lease_takeovers_total counter\n\
         hanko_lease_takeovers_total {}\n",
        app.store.write_conflicts(),
        app.store.lease_takeovers(),
    ));
    // What DynamoDB itself reported (`ReturnConsumedCapacity`): the bill's own measure.
    if let Some((read, write)) = app.store.consumed_capacity() {
        body.push_str(&format!(
            "# HELP hanko_dynamodb_consumed_capacity_units_total Capacity units DynamoDB reported as consumed by this replica's store.\n\
             # TYPE hanko_dynamodb_consumed_capacity_units_total counter\n\
             hanko_dynamodb_consumed_capacity_units_total{{kind=\"read\"}} {read}\n\
             hanko_dynamodb_consumed_capacity_units_total{{kind=\"write\"}} {write}\n"
        ));
    }
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::aws::ClientFactory;
    use crate::playbooks::Playbooks;
    use crate::store::Store;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CONFIG: &str = r#"
[discord]
guild_id = "1180000000000000100"
channel_id = "1180000000000000101"
[responders]
approver_roles = ["1180000000000000500"]
[aws]
regions = ["us-east-1"]
[store]
path = "/nonexistent/hanko-http-test"
"#;

    fn app() -> App {
        app_of(CONFIG)
    }

    fn app_of(config: &str) -> App {
        let settings = crate::config::parse(config, Path::new("hanko.toml")).unwrap();
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        App::new(
            settings,
            Playbooks::defaults(),
            Store::open_temporary().unwrap(),
            ClientFactory::from_sdk_config(conf, None),
        )
    }

    async fn get(router: Router, path: &str) -> (u16, String, String) {
        exchange(
            router,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
        .await
    }

    /// Serves `router` on a free local port for one connection, sends `request` (a whole
    /// HTTP/1.1 request) and reads the answer to its end: (status, content type, body). For the
    /// tests of this module and of `discord::endpoint`, which share the server.
    pub(crate) async fn exchange(router: Router, request: String) -> (u16, String, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        conn.read_to_string(&mut raw).await.unwrap();
        server.abort();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        (status, content_type, body.to_string())
    }

    #[tokio::test]
    async fn healthz_is_503_with_the_reason_until_the_gateway_is_connected() {
        let app = app();
        let (status, _, body) = get(router(app.clone()), "/healthz").await;
        assert_eq!(status, 503);
        assert_eq!(body, "discord: the gateway is not connected\n");
        app.metrics.set_gateway_connected(true);
        let (status, _, body) = get(router(app), "/healthz").await;
        assert_eq!(status, 200);
        assert!(body.starts_with("ok\nbackend: sled\n"), "{body}");
    }

    #[tokio::test]
    async fn healthz_does_not_wait_for_a_gateway_over_http_interactions() {
        let key = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[3; 32])
                .verifying_key()
                .to_bytes(),
        );
        let config = CONFIG.replacen(
            "[discord]",
            &format!("[discord]\ninteractions = \"http\"\npublic_key = \"{key}\""),
            1,
        );
        let app = app_of(&config);
        assert!(!app.metrics.gateway_connected());
        let (status, _, body) = get(router(app), "/healthz").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("ok\nbackend: sled\n"), "{body}");
    }

    #[tokio::test]
    async fn metrics_counts_requests_by_state_from_the_store() {
        let app = app();
        app.metrics.record_finding_ingested();
        let (status, content_type, body) = get(router(app), "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, PROMETHEUS_CONTENT_TYPE);
        assert!(
            body.contains("\nhanko_findings_ingested_total 1\n"),
            "{body}"
        );
        for state in crate::approval::RequestState::ALL {
            assert!(
                body.contains(&format!(
                    "hanko_requests{{state=\"{}\"}} 0\n",
                    state.as_str()
                )),
                "{state}: {body}"
            );
        }
    }
}
