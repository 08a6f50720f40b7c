//! The default TLS client configuration for `wss` upstreams.

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};

/// rustls with the `ring` provider, the bundled webpki (Mozilla) roots and
/// ALPN `http/1.1` (the upstream hop is always HTTP/1.1). Built once.
pub(crate) fn default_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Arc::new(client_config(roots))
    }))
}

/// A client configuration that trusts `roots`, for upstreams behind a private CA.
pub(crate) fn client_config(roots: RootCertStore) -> ClientConfig {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
