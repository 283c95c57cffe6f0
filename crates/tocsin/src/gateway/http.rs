//! The HTTP listener: `/healthz`, `/readyz`, `/metrics` (open) and the
//! `/api/v1` JSON API (bearer token when configured).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};

use super::Readiness;
use crate::api::Api;
use crate::internal_events::HttpListening;

/// The open routes, besides `/api/v1`. The OpenAPI test checks each is
/// documented.
pub const ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Where the API is nested.
pub const API_PREFIX: &str = "/api/v1";

/// The whole listener's routes.
pub fn router(readiness: Readiness, api: &Api) -> Router {
    Router::new()
        .route(ROUTES[0], get(|| async { "ok\n" }))
        .route(ROUTES[1], get(readyz))
        .route(ROUTES[2], get(metrics))
        .with_state(readiness)
        // A service, not a nested router: `nest` leaves `/api/v1/` to this
        // router's empty 404, where `nest_service` sends it to the API's.
        .nest_service(API_PREFIX, api.router())
}

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, readiness: Readiness, api: Api) {
    if let Ok(addr) = listener.local_addr() {
        HttpListening {
            addr,
            api_token: api.has_token(),
        }
        .emit();
    }
    if let Err(e) = axum::serve(listener, router(readiness, &api)).await {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}

async fn readyz(State(r): State<Readiness>) -> impl IntoResponse {
    let why = r.not_ready();
    if why.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join("; ")),
        )
    }
}

async fn metrics(State(r): State<Readiness>) -> impl IntoResponse {
    // The lag as of now: a clock nothing moves (the broker away, a commit
    // that hangs) falls further behind between reports.
    r.metrics.refresh_clock_lag(chrono::Utc::now());
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&r.metrics.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            buf,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            e.to_string().into_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route served, open and API, is a path in the OpenAPI document.
    #[test]
    fn every_route_is_documented() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../../schemas/openapi.json"))
                .expect("schemas/openapi.json is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let served = ROUTES.iter().map(|r| r.to_string()).chain(
            crate::api::ROUTES
                .iter()
                .map(|r| format!("{API_PREFIX}{r}")),
        );
        for route in served {
            assert!(
                paths.get(&route).and_then(|p| p.get("get")).is_some(),
                "{route} is served but not documented in schemas/openapi.json"
            );
        }
        assert_eq!(
            paths.len(),
            ROUTES.len() + crate::api::ROUTES.len(),
            "schemas/openapi.json documents a path the router does not serve"
        );
    }
}
