//! TLS for the listener: rustls with the ring provider, PEM files.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use std::path::Path;

use crate::config::{ConfigError, TlsConfig};

fn invalid(field: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        field: format!("server.tls.{field}"),
        message,
    }
}

/// The listener's TLS acceptor.
#[derive(Clone)]
pub(crate) struct Acceptor(pub(crate) TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

/// Loads the certificate and key and builds the acceptor (HTTP/1.1 only, as
/// WebSocket upgrades need).
pub(crate) fn acceptor(tls: &TlsConfig) -> Result<Acceptor, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid("cert_file", format!("{}: {e}", tls.cert_file.display())))?;
    if certs.is_empty() {
        return Err(invalid(
            "cert_file",
            format!("{}: no certificate found", tls.cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| invalid("key_file", format!("{}: {e}", tls.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("cert_file", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("key_file", format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Acceptor(TlsAcceptor::from(Arc::new(config))))
}

/// The TLS settings webhook deliveries use: the client's shared setup
/// (Mozilla's roots) plus the certificates in `extra_ca`, for receivers behind
/// a private CA.
pub(crate) fn webhook_client_config(
    extra_ca: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let field = |message: String| ConfigError::Invalid {
        field: "server.webhooks.ca_file".into(),
        message,
    };
    let extra = match extra_ca {
        Some(path) => vask_client::load_pem_certs(path).map_err(|e| field(e.to_string()))?,
        None => Vec::new(),
    };
    vask_client::tls_client_config(&extra).map_err(field)
}
