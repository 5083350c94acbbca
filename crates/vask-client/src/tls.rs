//! TLS for `https://` and `wss://`: rustls with the ring provider, trusting
//! Mozilla's root certificates ([`webpki_roots`]) plus any extra CA
//! certificates the configuration names.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Reads every certificate of a PEM file (`-----BEGIN CERTIFICATE-----`
/// blocks; anything else in the file is skipped), for
/// [`crate::PublisherConfig::extra_ca_certs`],
/// [`crate::SubscriberConfig::extra_ca_certs`] and
/// [`crate::HttpAuthorizer::with_extra_ca_certs`]: a private CA, or a
/// self-signed server certificate.
///
/// # Errors
/// When the file cannot be read, is not valid PEM, or holds no certificate.
pub fn load_pem_certs(path: impl AsRef<Path>) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let invalid = |e: rustls_pki_types::pem::Error| match e {
        rustls_pki_types::pem::Error::Io(e) => e,
        e => std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        ),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(invalid)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    if certs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: no certificate in the file", path.display()),
        ));
    }
    Ok(certs)
}

/// The TLS client setup every outgoing connection of the workspace uses (this
/// client's `https://` and `wss://`, and the server's webhook sender): rustls
/// with the ring provider and safe default protocol versions, trusting
/// Mozilla's roots plus `extra_ca_certs`, no ALPN, no client certificate.
/// Without extra certificates the configuration is built once and shared.
///
/// # Errors
/// When one of `extra_ca_certs` is not a valid CA certificate.
pub fn client_config(
    extra_ca_certs: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    if extra_ca_certs.is_empty() {
        static DEFAULT: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
        return DEFAULT.get_or_init(|| build(&[])).clone();
    }
    build(extra_ca_certs)
}

fn build(extra_ca_certs: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra_ca_certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("invalid extra CA certificate: {e}"))?;
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether `error` (or one of its sources) is a TLS failure: a rustls error
/// (untrusted or invalid certificate, handshake refused, ...), possibly
/// wrapped in I/O errors. Returns its description.
pub(crate) fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        // An I/O error's `source()` skips the error it wraps: look inside
        // (hyper-rustls wraps tokio-rustls' I/O error in another one).
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}
