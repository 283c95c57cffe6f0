//! Happenings of the HTTP listener and API.

use std::net::SocketAddr;

use super::Metrics;

/// The HTTP listener is bound.
pub struct HttpListening {
    /// The address actually bound (the port is known even when `:0` was
    /// configured).
    pub addr: SocketAddr,
    /// Whether `/api/v1` asks for a bearer token; `None`: the listener
    /// serves no API (`[http] ops_addr`).
    pub api_token: Option<bool>,
}

impl HttpListening {
    /// Logs it (info).
    pub fn emit(self) {
        match self.api_token {
            Some(token) => tracing::info!(
                addr = %self.addr,
                api_auth = if token { "bearer" } else { "none" },
                "serving /healthz, /readyz, /metrics and /api/v1"
            ),
            None => tracing::info!(
                addr = %self.addr,
                "serving /healthz, /readyz and /metrics ([http] ops_addr)"
            ),
        }
    }
}

/// No API token is configured: `/api/v1` answers anyone who can reach the
/// listener. Said once, at start.
pub struct ApiOpen<'a> {
    /// The environment variable that would hold the token, if one is named.
    pub token_env: Option<&'a str>,
}

impl ApiOpen<'_> {
    /// Logs it (warn). The variable is named only when its name looks like
    /// one (upper case, digits, `_`): a token pasted into
    /// `[http] api_token_env` in place of a variable's name is not logged.
    pub fn emit(self) {
        match self.token_env {
            Some(var) if !conventional_name(var) => tracing::warn!(
                "no API token: the variable [http] api_token_env names is unset or empty (its name is not shown: it is not in upper case, and may be the token itself), so /api/v1 (which returns patient identifiers) is open to anyone who can reach the listener"
            ),
            Some(var) => tracing::warn!(
                env = var,
                "no API token: {var} is unset or empty, so /api/v1 (which returns patient identifiers) is open to anyone who can reach the listener"
            ),
            None => tracing::warn!(
                "no API token configured ([http] api_token_env), so /api/v1 (which returns patient identifiers) is open to anyone who can reach the listener"
            ),
        }
    }
}

/// An environment variable's name as they are conventionally written.
fn conventional_name(var: &str) -> bool {
    !var.is_empty()
        && var
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The HTTP listener holds as many connections as it serves at once: for
/// each new one the one idle longest is closed, and when none can close
/// without loss new ones wait. Said at most once a minute, not per
/// connection.
pub struct HttpConnectionsFull {
    /// The limit.
    pub limit: usize,
}

impl HttpConnectionsFull {
    /// Logs it (warn).
    pub fn emit(self) {
        tracing::warn!(
            limit = self.limit,
            "HTTP connections at their limit: the one idle longest is closed for each new one, \
             and new ones wait while none can close without loss (a client holding connections \
             open? tocsin_http_connections_shed_total counts those closed; said once a minute \
             at most)"
        );
    }
}

/// Why the listener closed a connection to protect the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// Every place was taken and this one was idle longest.
    IdleAtLimit,
    /// A write to the client made no progress for the write timeout, or
    /// for 5 s when its place was wanted (a client that asks and never
    /// reads).
    WriteStalled,
}

impl ShedReason {
    /// Every reason, each counted from zero.
    pub const ALL: [ShedReason; 2] = [ShedReason::IdleAtLimit, ShedReason::WriteStalled];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::IdleAtLimit => "idle_at_limit",
            ShedReason::WriteStalled => "write_stalled",
        }
    }
}

/// The listener closed a connection so that others could be served.
/// Counted, logged at debug: under a flood there is one per connection.
pub struct HttpConnectionShed {
    /// Why.
    pub reason: ShedReason,
}

impl HttpConnectionShed {
    /// Logs it (debug) and counts it in
    /// `tocsin_http_connections_shed_total{reason}`.
    pub fn emit(self, m: &Metrics) {
        let reason = self.reason.as_str();
        tracing::debug!(reason, "HTTP connection closed by the listener");
        m.http_connections_shed.with_label_values(&[reason]).inc();
    }
}

/// Accepting an HTTP connection failed (most often the process is out of
/// file descriptors): the listener waits a second and tries again.
pub struct HttpAcceptFailed<'a> {
    /// Why.
    pub error: &'a std::io::Error,
}

impl HttpAcceptFailed<'_> {
    /// Logs it (warn).
    pub fn emit(self) {
        tracing::warn!(error = %self.error, "HTTP accept failed: retrying in 1 s");
    }
}

#[cfg(test)]
mod tests {
    use super::conventional_name;

    #[test]
    fn only_upper_case_names_are_logged() {
        assert!(conventional_name("TOCSIN_API_TOKEN"));
        assert!(!conventional_name("s3cretTokenValue123456"));
        assert!(!conventional_name(""));
    }
}
