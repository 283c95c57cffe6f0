//! The JSON API under `/api/v1` for operations teams and contract managers:
//! expectations, alerts and the compliance report, read from the store.
//! Documented in `schemas/openapi.json`.
//!
//! With a token configured (`[http] api_token_env` names the variable that
//! holds it) every request needs `Authorization: Bearer <token>`; without
//! one the API is open and a warning says so at start. Responses carry
//! patient identifiers (they are for clinical and operations teams), which
//! is why the token matters.

mod error;
mod params;
mod routes;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tocsin_tracker::Policy;

use crate::config::HttpSection;
use crate::gateway::StoreHandle;
use crate::internal_events::ApiOpen;

pub use error::ApiError;
#[cfg(test)]
pub use routes::ROUTES;

/// The API's shared state: the store once it is open, the token's digest,
/// and what reports need from the policy.
#[derive(Clone)]
pub struct Api {
    store: Arc<OnceLock<StoreHandle>>,
    /// SHA-256 of the token, compared in constant time.
    token: Option<[u8; 32]>,
    max_limit: usize,
    policy: Arc<Policy>,
    /// Requests being answered; beyond [`MAX_IN_FLIGHT`] others are shed.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Store reads running or waiting for the store, each holding one of
    /// [`MAX_IN_FLIGHT`] until it ends: a request whose client went away
    /// gives up its place in `in_flight` at once, while its read runs on
    /// (a blocking call is not stopped), so without this bound clients
    /// that ask for a year's report and hang up queued reads without end.
    reads: Arc<tokio::sync::Semaphore>,
}

/// Most API requests answered at once. They share one store connection,
/// so more only queue there, each holding one of the listener's
/// connections meanwhile: a review's 300 clients held them all, and
/// `/healthz` (a container's liveness check) and `/metrics` waited over
/// 30 s. Beyond it a request is answered 503 at once, with `Retry-After`
/// and its connection closed, so the listener's connections stay free.
pub const MAX_IN_FLIGHT: usize = 16;

impl Api {
    /// Reads the token from the environment variable the configuration
    /// names; warns once when there is none.
    pub fn new(http: &HttpSection, policy: &Policy) -> Self {
        Self::with_env(http, policy, |k| std::env::var(k).ok())
    }

    fn with_env(http: &HttpSection, policy: &Policy, var: impl Fn(&str) -> Option<String>) -> Self {
        let token = http
            .api_token_env
            .as_deref()
            .and_then(&var)
            .filter(|t| !t.trim().is_empty());
        if token.is_none() {
            ApiOpen {
                token_env: http.api_token_env.as_deref(),
            }
            .emit();
        }
        Self {
            store: Arc::new(OnceLock::new()),
            token: token.map(|t| Sha256::digest(t.trim().as_bytes()).into()),
            max_limit: http.api_max_limit.max(1),
            policy: Arc::new(policy.clone()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            reads: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Whether requests need a bearer token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Makes the store available once it has opened; until then the API
    /// answers 503.
    pub fn attach_store(&self, store: StoreHandle) {
        // A second attach (there is none) would keep the first store.
        let _ = self.store.set(store);
    }

    fn store(&self) -> Result<&StoreHandle, ApiError> {
        self.store
            .get()
            .ok_or_else(|| ApiError::Unavailable("the store is not open yet".into()))
    }

    /// Runs a read on the store, once more when it failed transiently: the
    /// API's own connection, found dead after a PostgreSQL restart or
    /// failover (its connections terminated), is made again by the next
    /// call, so the first request after one was a 503 to a client that did
    /// nothing wrong. A store still away answers 503 the second time.
    async fn read<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        F: Fn(&mut dyn tocsin_store::Store) -> Result<R, tocsin_store::StoreError>
            + Clone
            + Send
            + 'static,
        R: Send + 'static,
    {
        let store = self.store()?;
        let first = self.read_slot()?;
        let again = f.clone();
        match store.call(move |s| slotted(first, s, f)).await {
            Err(e) if e.is_transient() => {
                let second = self.read_slot()?;
                Ok(store.call(move |s| slotted(second, s, again)).await?)
            }
            answer => Ok(answer?),
        }
    }

    /// A place for one store read ([`Api::reads`]), or 503 when reads of
    /// requests already answered or abandoned hold them all.
    fn read_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.reads.clone().try_acquire_owned().map_err(|_| {
            ApiError::Unavailable(format!(
                "{MAX_IN_FLIGHT} store reads are still running, some for requests whose \
                 clients went away: retry in a second"
            ))
        })
    }

    /// The `/api/v1` routes, token-checked, to nest in the listener (with
    /// `nest_service`, so that `/api/v1/` reaches the API's own 404 too).
    /// Every refusal, a wrong method or path included, is the API's JSON
    /// error shape.
    ///
    /// The token is checked before routing, for every request under
    /// `/api/v1`: a `route_layer` skips the fallbacks, so a caller without
    /// the token could tell served paths (401) from others (404), and a
    /// layer on each route still lets the 405 of a served path add its
    /// `Allow` header to the 401.
    pub fn router(&self) -> Router {
        let routes = routes::router()
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found)
            .with_state(self.clone());
        Router::new()
            .fallback_service(routes)
            .layer(middleware::from_fn_with_state(self.in_flight.clone(), shed))
            .layer(middleware::from_fn_with_state(self.clone(), authorise))
    }
}

/// Runs a read holding its place until it ends.
fn slotted<R>(
    _slot: tokio::sync::OwnedSemaphorePermit,
    store: &mut dyn tocsin_store::Store,
    read: impl FnOnce(&mut dyn tocsin_store::Store) -> Result<R, tocsin_store::StoreError>,
) -> Result<R, tocsin_store::StoreError> {
    read(store)
}

/// A path the API does not serve, whatever the method.
async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(uri.path().into())
}

/// A method a served path does not take; axum adds the `Allow` header.
async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().into(),
    }
}

/// Answers a request while fewer than [`MAX_IN_FLIGHT`] are; otherwise 503
/// at once, `Retry-After: 1`, the connection closed.
async fn shed(
    State(in_flight): State<Arc<tokio::sync::Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match in_flight.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            let mut response = ApiError::Unavailable(format!(
                "the API is answering {MAX_IN_FLIGHT} requests already: retry in a second"
            ))
            .into_response();
            let h = response.headers_mut();
            h.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            h.insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// Lets a request through when no token is configured or it bears the
/// token.
async fn authorise(
    State(api): State<Api>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = api.token else {
        return Ok(next.run(request).await);
    };
    let mut sent = request.headers().get_all(header::AUTHORIZATION).iter();
    let first = sent.next().ok_or(ApiError::Unauthorized(
        "this API needs `Authorization: Bearer <token>`",
    ))?;
    // One only: with two, a proxy that checks or replaces the last and
    // this gateway, which read the first, disagreed on whose the request was.
    if sent.next().is_some() {
        return Err(ApiError::Unauthorized(
            "more than one Authorization header: send one",
        ));
    }
    let given = first
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .ok_or(ApiError::Unauthorized(
            "the Authorization header is not `Bearer <token>`",
        ))?;
    let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    // Compare digests in constant time: no early exit on the first
    // differing byte.
    let differs = digest
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differs != 0 {
        return Err(ApiError::Unauthorized("wrong bearer token"));
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One raw HTTP/1.1 GET on a new connection; the response head.
    async fn get_head(addr: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
    }

    /// Beyond [`MAX_IN_FLIGHT`] requests being answered, another is told
    /// 503 at once, to retry in a second, its connection closed, rather
    /// than queueing while it holds one of the listener's connections;
    /// once one finishes, requests are answered again.
    #[tokio::test]
    async fn requests_beyond_those_in_flight_are_shed_at_once() {
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        // Closed until the test opens it: no wake-up can be missed.
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = gate.clone();
        let app = Router::new()
            .route(
                "/slow",
                axum::routing::get(move || {
                    let (tx, g) = (entered_tx.clone(), g.clone());
                    async move {
                        let _ = tx.send(());
                        let _pass = g.acquire().await;
                        "done"
                    }
                }),
            )
            .route("/quick", axum::routing::get(|| async { "quick" }))
            .layer(middleware::from_fn_with_state(
                Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
                shed,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let slow: Vec<_> = (0..MAX_IN_FLIGHT)
            .map(|_| tokio::spawn(get_head(addr, "/slow")))
            .collect();
        for _ in 0..MAX_IN_FLIGHT {
            entered.recv().await.expect("a slow request entered");
        }
        let shed = get_head(addr, "/quick").await;
        assert!(shed.starts_with("http/1.1 503"), "{shed}");
        assert!(shed.contains("retry-after: 1"), "{shed}");
        assert!(shed.contains("connection: close"), "{shed}");
        assert!(
            shed.contains("\"unavailable\""),
            "a JSON error body: {shed}"
        );
        gate.add_permits(MAX_IN_FLIGHT);
        for s in slow {
            assert!(s.await.unwrap().starts_with("http/1.1 200"));
        }
        assert!(get_head(addr, "/quick").await.starts_with("http/1.1 200"));
    }

    /// A store read outlives a request whose client went away (a blocking
    /// call is not stopped): such reads keep their places until they end,
    /// so clients that ask and hang up cannot queue reads without end; a
    /// read beyond them is refused at once, and once they end reads are
    /// answered again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_reads_keep_their_places_until_they_end() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.sqlite").display());
        let store = StoreHandle::new(tocsin_store::open(&url).unwrap());
        let policy =
            Policy::from_toml(crate::config::DEFAULT_POLICY).expect("the built-in policy loads");
        let api = Api::with_env(&HttpSection::default(), &policy, |_| None);
        api.attach_store(store.clone());
        // The store's connection held by a call that waits for the test.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held_tx, held) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .call(move |_| {
                        let _ = held_tx.send(());
                        let _ = released.recv();
                        Ok(())
                    })
                    .await
            }
        });
        held.await.unwrap();
        // Polled once, a read has its place and its call queued behind the
        // holder; dropped, as a request is when its client goes away.
        let first_poll = |api: Api| async move {
            let mut read = std::pin::pin!(api.read(|s| s.ping()));
            tokio::select! {
                biased;
                done = &mut read => Some(done),
                () = std::future::ready(()) => None,
            }
        };
        for _ in 0..MAX_IN_FLIGHT {
            assert!(first_poll(api.clone()).await.is_none(), "the read waits");
        }
        match first_poll(api.clone()).await {
            Some(Err(ApiError::Unavailable(why))) => assert!(why.contains("store reads"), "{why}"),
            other => panic!("not refused at once: {:?}", other.map(|r| r.is_ok())),
        }
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        // The abandoned reads run and end, giving their places back.
        drop(api.reads.acquire_many(MAX_IN_FLIGHT as u32).await.unwrap());
        assert!(api.read(|s| s.ping()).await.is_ok());
    }

    #[test]
    fn token_comes_from_the_named_variable_and_blank_means_none() {
        let http = HttpSection::default();
        let policy =
            Policy::from_toml(crate::config::DEFAULT_POLICY).expect("the built-in policy loads");
        let api = Api::with_env(&http, &policy, |k| {
            (k == "TOCSIN_API_TOKEN").then(|| "s3cret".to_string())
        });
        assert!(api.has_token());
        let api = Api::with_env(&http, &policy, |_| Some("  ".to_string()));
        assert!(!api.has_token());
        let none = HttpSection {
            api_token_env: None,
            ..HttpSection::default()
        };
        let api = Api::with_env(&none, &policy, |_| Some("s3cret".to_string()));
        assert!(!api.has_token());
    }
}
