//! The connection plumbing every Redis-backed store shares: a lazy,
//! reconnecting connection bounded by a timeout, and Redis errors as
//! [`StoreError`]s.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult};

use crate::store::{StoreError, StoreErrorKind};

/// A client for `url` and a connection on it, made lazily (and remade after
/// failures) on the current Tokio runtime; connecting and every answer wait
/// at most `timeout`. `store` names the store in the error made outside a
/// runtime (`"budget store"`).
pub(crate) fn connect(
    url: &str,
    timeout: Duration,
    store: &str,
) -> Result<(Client, ConnectionManager), StoreError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        StoreError::new(
            StoreErrorKind::Connection,
            format!("a Redis {store} needs a Tokio runtime"),
        )
    })?;
    let client = Client::open(url).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Connection,
            format!("invalid Redis URL: {e}"),
        )
    })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(timeout);
    let connection = {
        let _runtime = runtime.enter();
        client
            .get_connection_manager_lazy(config)
            .map_err(store_error)?
    };
    Ok((client, connection))
}

/// Runs one Redis call, failing with a timeout after `timeout`; `what`
/// starts the message of that failure (`"admit: no answer within 500ms"`).
pub(crate) async fn within<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(store_error),
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Timeout,
            format!("{what}: no answer within {timeout:?}"),
        )),
    }
}

/// A Redis error as a store error of the matching kind.
pub(crate) fn store_error(error: RedisError) -> StoreError {
    let kind = if error.is_timeout() {
        StoreErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
    {
        StoreErrorKind::Connection
    } else {
        StoreErrorKind::Response
    };
    StoreError::new(kind, error.to_string())
}
