//! What the API answers when it cannot answer: one JSON shape for every
//! refusal, `{"error": code, "message": reason, "parameter": name?}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thiserror::Error;
use tocsin_store::StoreError;

/// Why a request got no data.
#[derive(Debug, Error)]
pub enum ApiError {
    /// A query parameter is unknown, repeated or has a bad value (400).
    #[error("query parameter `{parameter}`: {reason}")]
    BadParameter {
        /// The parameter's name.
        parameter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No or a wrong bearer token (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// No such route under `/api/v1` (404).
    #[error("no such API route: {0}")]
    NotFound(String),
    /// The route exists but does not take the request's method (405): the
    /// API only reads. The response keeps the `Allow` header axum adds.
    #[error("method {method} is not allowed on {path} (this API only reads: GET)")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The route exists but the item it names does not (404).
    #[error("{0}")]
    NoSuchItem(String),
    /// The store is not open yet or is unavailable for now (503).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed (500). The message is the store's, which redacts
    /// credentials.
    #[error("store failed: {0}")]
    Store(StoreError),
}

impl ApiError {
    /// A bad parameter.
    pub fn bad(parameter: &str, reason: impl Into<String>) -> Self {
        Self::BadParameter {
            parameter: parameter.to_string(),
            reason: reason.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) | Self::NoSuchItem(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadParameter { .. } => "bad_parameter",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) | Self::NoSuchItem(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unavailable(_) => "unavailable",
            Self::Store(_) => "store_failed",
        }
    }
}

impl From<StoreError> for ApiError {
    /// A cursor or limit the store refuses is the client's mistake; a
    /// transient failure is a 503 to retry; anything else is ours.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor { reason } => Self::bad("cursor", reason),
            StoreError::InvalidQuery { reason } => Self::bad("limit", reason),
            e if e.is_transient() => Self::Unavailable(format!("store unavailable: {e}")),
            e => Self::Store(e),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Store(e) = &self {
            tracing::error!(error = %e, "API request failed in the store");
        }
        let parameter = match &self {
            Self::BadParameter { parameter, .. } => Some(parameter.as_str()),
            _ => None,
        };
        let body = Body {
            error: self.code(),
            message: self.to_string(),
            parameter,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tocsin\""),
            );
        }
        response
    }
}
