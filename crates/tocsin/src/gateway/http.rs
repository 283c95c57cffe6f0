//! The HTTP listener: `/healthz`, `/readyz`, `/metrics` (open) and the
//! `/api/v1` JSON API (bearer token when configured).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};

use super::Readiness;
use super::connections::{Closing, Connection, Connections};
use crate::api::Api;
use crate::internal_events::{
    HttpAcceptFailed, HttpConnectionShed, HttpConnectionsFull, HttpListening, Metrics, ShedReason,
};

/// The open routes, besides `/api/v1`. The OpenAPI test checks each is
/// documented.
pub const ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Where the API is nested.
pub const API_PREFIX: &str = "/api/v1";

/// The whole listener's routes.
pub fn router(readiness: Readiness, api: &Api) -> Router {
    ops_router(readiness)
        // A service, not a nested router: `nest` leaves `/api/v1/` to this
        // router's empty 404, where `nest_service` sends it to the API's.
        .nest_service(API_PREFIX, api.router())
}

/// The open routes alone: what the `[http] ops_addr` listener serves.
pub fn ops_router(readiness: Readiness) -> Router {
    Router::new()
        .route(ROUTES[0], get(|| async { "ok\n" }))
        .route(ROUTES[1], get(readyz))
        .route(ROUTES[2], get(metrics))
        .with_state(readiness)
}

/// Most connections served at once: a scraper or an API client needs a
/// few, and a client holding thousands open would otherwise take every file
/// descriptor the gateway has, its broker and store connections' included.
/// At the limit the connection idle longest, of those that can close
/// without loss, is closed for each new one (see [`Connections`]); when
/// none can, new ones wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may take to send a request's headers, and may sit
/// idle between requests. Without it, connections that send half a request
/// and wait are held for ever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections the kernel holds for the listener beyond those it serves:
/// a burst (scrapes and API clients together, or the limit reached) waits
/// there rather than being refused (the default is 128).
const BACKLOG: u32 = 1024;

/// The kernel's send buffer for each connection (Linux doubles it). Left
/// to itself it grows to megabytes on loopback, and a client that sends
/// requests without reading the answers had the gateway render some two
/// hundred `/metrics` scrapes into it before its writes waited: four
/// hundred such clients took both cores and the probes timed out. Small,
/// it also lets a slow reader's writes go on more often, which is what
/// tells a slow reader from one that has stopped ([`STALLED`],
/// [`WRITE_TIMEOUT`]): at 256 KiB one reading 10 KB/s looked stalled. 64
/// KiB still carries 100 MB/s at a millisecond's round trip.
///
/// [`STALLED`]: super::connections::STALLED
const SEND_BUFFER: u32 = 64 * 1024;

/// Listens on `addr` (a host name is resolved; the first address that
/// binds is taken) with a backlog of [`BACKLOG`] and a send buffer of
/// [`SEND_BUFFER`].
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        // Inherited by every accepted connection.
        socket.set_send_buffer_size(SEND_BUFFER)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// How long a write to a client may make no progress before its
/// connection is closed: a client that asks (or pipelines requests) and
/// never reads the answers would otherwise hold its connection for good.
/// Progress resets it, so a large report read slowly is not cut off
/// unless the client reads slower than about 2 KB/s (see
/// [`SEND_BUFFER`]).
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves until the process ends: HTTP/1.1, at most [`MAX_CONNECTIONS`]
/// at once (the one idle longest closed to make room for a new one), each
/// closed when its headers take longer than [`HEADER_READ_TIMEOUT`] or a
/// write makes no progress for [`WRITE_TIMEOUT`].
///
/// `api`: the API to serve beside the open routes; none for the
/// `[http] ops_addr` listener, which has its own connections.
pub async fn serve(listener: tokio::net::TcpListener, readiness: Readiness, api: Option<Api>) {
    if let Ok(addr) = listener.local_addr() {
        HttpListening {
            addr,
            api_token: api.as_ref().map(Api::has_token),
        }
        .emit();
    }
    let metrics = readiness.metrics.clone();
    let app = match &api {
        Some(api) => router(readiness, api),
        None => ops_router(readiness),
    };
    let table = Connections::new(MAX_CONNECTIONS);
    let mut warned: Option<tokio::time::Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most often: wait rather than spin.
                HttpAcceptFailed { error: &e }.emit();
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let (connection, was_full) = table.admit().await;
        // Said once a minute at most: under a flood the table fills again
        // at every connection.
        if was_full && warned.is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY) {
            warned = Some(tokio::time::Instant::now());
            HttpConnectionsFull {
                limit: MAX_CONNECTIONS,
            }
            .emit();
        }
        tokio::spawn(serve_connection(
            stream,
            connection,
            app.clone(),
            metrics.clone(),
        ));
    }
}

/// How often the listener says at most that its connections are at their
/// limit.
const FULL_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves one connection until it closes, or until the table tells it to
/// and it can close without loss ([`Connection::told_to_close`]).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    connection: Connection,
    app: Router,
    metrics: std::sync::Arc<Metrics>,
) {
    use http_body_util::BodyExt;

    let mut io = tokio_io_timeout::TimeoutStream::new(stream);
    io.set_write_timeout(Some(WRITE_TIMEOUT));
    let io = connection.watch(Box::pin(io));
    let routes = hyper_util::service::TowerToHyperService::new(app);
    let service = hyper::service::service_fn(|request| {
        // In hand from the headers' end until the answer's body is taken
        // to be written (the body holds the guard); the writing is watched
        // on the stream.
        let in_hand = connection.request();
        let answer = hyper::service::Service::call(&routes, request);
        async move {
            answer.await.map(|response| {
                response.map(|body| {
                    body.map_frame(move |frame| {
                        let _ = &in_hand;
                        frame
                    })
                })
            })
        }
    });
    let serving = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(serving);
    let ended = loop {
        tokio::select! {
            ended = serving.as_mut() => break ended,
            told = connection.told_to_close() => {
                // Told, and nothing lost by closing: dropped here. Told but
                // busy since: it keeps its place and serves on.
                if let Some(why) = told {
                    let reason = match why {
                        Closing::Idle => ShedReason::IdleAtLimit,
                        Closing::Stalled => ShedReason::WriteStalled,
                    };
                    HttpConnectionShed { reason }.emit(&metrics);
                    return;
                }
            }
        }
    };
    if let Err(e) = ended
        && write_stalled(&e)
    {
        HttpConnectionShed {
            reason: ShedReason::WriteStalled,
        }
        .emit(&metrics);
    }
}

/// Whether a connection ended because a write made no progress for
/// [`WRITE_TIMEOUT`] (the timeout's own error, somewhere in the chain).
fn write_stalled(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
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
