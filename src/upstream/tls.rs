//! The TLS client configuration for `wss` upstreams: the crypto provider
//! and the trust roots the cargo features chose.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::Rejection;
use crate::provider::TargetError;

/// The configuration a layer starts with: [`client_config`] over the
/// default roots. Built once; `None` without a crypto provider.
pub(crate) fn default_config() -> Option<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| client_config(default_roots()).map(Arc::new))
        .clone()
}

/// A client configuration that trusts `roots`, with ALPN `http/1.1` (the
/// upstream hop is always HTTP/1.1); `None` without a crypto provider.
pub(crate) fn client_config(roots: RootCertStore) -> Option<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider()?)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(config)
}

/// The connector for a `wss` dial, or the refusal when there is no
/// configuration to build it from.
pub(crate) fn connector(config: Option<&Arc<ClientConfig>>) -> Result<TlsConnector, Rejection> {
    match config {
        Some(config) => Ok(TlsConnector::from(Arc::clone(config))),
        None => Err(TargetError::misconfigured(
            "no TLS crypto provider for wss upstreams: enable the `ring` or `aws-lc-rs` \
             feature of tower-realtime, install a rustls default provider, or set \
             `RealtimeLayer::tls_config`",
        )
        .into()),
    }
}

/// rustls' process-wide default provider when the application installed
/// one, else `aws-lc-rs` or `ring`, as the features allow.
pub(crate) fn provider() -> Option<Arc<CryptoProvider>> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Some(Arc::clone(installed));
    }
    #[cfg(feature = "aws-lc-rs")]
    return Some(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Some(Arc::new(rustls::crypto::ring::default_provider()));
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    None
}

/// The bundled Mozilla roots (`webpki-roots`) and the platform's
/// (`native-roots`: the system store, or `SSL_CERT_FILE` / `SSL_CERT_DIR`
/// when set), as the features allow.
fn default_roots() -> RootCertStore {
    #[cfg_attr(
        not(any(feature = "webpki-roots", feature = "native-roots")),
        expect(unused_mut, reason = "no roots to add")
    )]
    let mut roots = RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "a platform root certificate could not be loaded");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "platform root certificates");
    }
    roots
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn without_a_configuration_a_wss_dial_is_a_clear_500() {
        let Err(rejection) = connector(None) else {
            panic!("a connector without a configuration");
        };
        assert_eq!(rejection.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            rejection.message.contains("crypto provider"),
            "{rejection:?}"
        );
    }

    #[test]
    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    fn the_default_configuration_speaks_http1() {
        let config = default_config().expect("a crypto provider feature is on");
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert_eq!(
            client_config(RootCertStore::empty()).map(|c| c.alpn_protocols),
            Some(vec![b"http/1.1".to_vec()])
        );
    }
}
