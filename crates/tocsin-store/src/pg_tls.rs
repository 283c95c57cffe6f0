//! TLS to PostgreSQL, configured in the store URL with libpq's own options,
//! so that a URL a trust's DBA hands over works unchanged:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and naming the host |
//!
//! `sslrootcert=PATH` names a PEM file of the CA certificates to trust (a
//! trust's own CA); without it the operating system's trust store is used.
//! As with libpq, `prefer` and `require` encrypt but do not authenticate
//! the server: use `verify-full` whenever the database is not on the same
//! host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How far the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Not at all (`disable`, `prefer`, `require`): encryption only.
    Nothing,
    /// Its chain up to a trusted CA (`verify-ca`).
    Chain,
    /// Its chain and that it names the host connected to (`verify-full`).
    Full,
}

/// The TLS options of a store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// What the PostgreSQL client is told: whether TLS is tried or required.
    pub mode: SslMode,
    /// How far the certificate is checked.
    pub verify: Verify,
    /// `sslrootcert`: the CA certificates to trust instead of the system's.
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL: returns the
/// URL the PostgreSQL client parses (its `sslmode` one of the three it
/// knows) and the TLS options. The error says which option is wrong.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsOptions), String> {
    let mut opts = TlsOptions {
        mode: SslMode::Prefer,
        verify: Verify::Nothing,
        root_cert: None,
    };
    // The query begins after the credentials: an unencoded password may
    // hold a `?`.
    let host_from = url.rfind('@').map_or(0, |at| at + 1);
    let Some(q) = url[host_from..].find('?').map(|q| host_from + q) else {
        return Ok((url.to_string(), opts));
    };
    let (base, query) = (&url[..q], &url[q + 1..]);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                (opts.mode, opts.verify) = match value {
                    "disable" => (SslMode::Disable, Verify::Nothing),
                    "prefer" => (SslMode::Prefer, Verify::Nothing),
                    "require" => (SslMode::Require, Verify::Nothing),
                    "verify-ca" => (SslMode::Require, Verify::Chain),
                    "verify-full" => (SslMode::Require, Verify::Full),
                    other => {
                        return Err(format!(
                            "sslmode `{other}`: expected disable, prefer, require, verify-ca or verify-full"
                        ));
                    }
                };
            }
            "sslrootcert" if value.is_empty() => {
                return Err("sslrootcert is empty: give the path of a PEM file".into());
            }
            "sslrootcert" => opts.root_cert = Some(PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    if opts.root_cert.is_some() && opts.verify == Verify::Nothing {
        return Err(
            "sslrootcert is given but sslmode does not check certificates: use verify-ca or verify-full"
                .into(),
        );
    }
    let mut client_url = base.to_string();
    client_url.push('?');
    client_url.push_str(&format!("sslmode={}", mode_name(opts.mode)));
    for pair in kept {
        client_url.push('&');
        client_url.push_str(pair);
    }
    Ok((client_url, opts))
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Require => "require",
        _ => "prefer",
    }
}

/// The TLS connector for these options. Fails when the CA file cannot be
/// read or holds no certificate, or when no trusted CA is found at all.
pub(crate) fn connector(opts: &TlsOptions) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match opts.verify {
        Verify::Nothing => Arc::new(Lenient {
            chain: None,
            algorithms,
        }),
        Verify::Chain | Verify::Full => {
            let roots = Arc::new(roots(opts.root_cert.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS set-up: {e}"))?;
            if opts.verify == Verify::Full {
                webpki
            } else {
                Arc::new(Lenient {
                    chain: Some(webpki),
                    algorithms,
                })
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The CA certificates to trust: the PEM file named, else the system's.
fn roots(file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) => {
            let shown = path.display();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {shown}: {e}"))?
            {
                let cert = cert.map_err(|e| format!("sslrootcert {shown}: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            }
            if store.is_empty() {
                return Err(format!("sslrootcert {shown}: no certificate in the file"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no trusted CA certificate in the system's store: name one with sslrootcert"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// The lesser checks: `prefer` and `require` (`chain: None`) check no
/// certificate, `verify-ca` checks the chain but not the host name, as
/// libpq does. Either way the handshake's signature is checked, so the
/// server holds the key of the certificate it sent.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_map_to_the_client_and_a_check() {
        let (url, o) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(
            (url.as_str(), o.mode, o.verify),
            ("postgres://u@h/db", SslMode::Prefer, Verify::Nothing)
        );
        let (url, o) = split_url(
            "postgres://u@h/db?application_name=x&sslmode=verify-full&sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=require&application_name=x");
        assert_eq!((o.mode, o.verify), (SslMode::Require, Verify::Full));
        assert_eq!(o.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        for (mode, client, verify) in [
            ("disable", SslMode::Disable, Verify::Nothing),
            ("prefer", SslMode::Prefer, Verify::Nothing),
            ("require", SslMode::Require, Verify::Nothing),
            ("verify-ca", SslMode::Require, Verify::Chain),
        ] {
            let (url, o) = split_url(&format!("postgres://h/db?sslmode={mode}")).unwrap();
            assert_eq!((o.mode, o.verify), (client, verify), "{mode}");
            assert!(
                url.ends_with(&format!("?sslmode={}", mode_name(client))),
                "{url}"
            );
        }
    }

    /// An unencoded `?` in the password is not the query's start.
    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let (url, o) = split_url("postgres://u:a?b/c@h/db?sslmode=require").unwrap();
        assert_eq!(url, "postgres://u:a?b/c@h/db?sslmode=require");
        assert_eq!(o.mode, SslMode::Require);
        let (url, o) = split_url("postgres://u:a?b@h/db").unwrap();
        assert_eq!(url, "postgres://u:a?b@h/db");
        assert_eq!(o.mode, SslMode::Prefer);
    }

    #[test]
    fn wrong_tls_options_are_named() {
        let e = split_url("postgres://h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode `allow`"), "{e}");
        let e = split_url("postgres://h/db?sslrootcert=/ca.pem").unwrap_err();
        assert!(e.contains("verify-ca or verify-full"), "{e}");
        let e = split_url("postgres://h/db?sslmode=verify-full&sslrootcert=").unwrap_err();
        assert!(e.contains("sslrootcert is empty"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for (file, says) in [
            (empty.clone(), "no certificate in the file"),
            (dir.path().join("absent.pem"), "absent.pem"),
        ] {
            let opts = TlsOptions {
                mode: SslMode::Require,
                verify: Verify::Full,
                root_cert: Some(file),
            };
            let e = connector(&opts).err().expect("refused");
            assert!(e.contains(says), "{e}");
        }
    }
}
