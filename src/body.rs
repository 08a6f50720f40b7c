//! [`RealtimeBody`]: the response body of [`RealtimeService`](crate::RealtimeService).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of [`RealtimeService`](crate::RealtimeService):
    /// either the wrapped service's body `B`, passed on untouched, or the
    /// layer's own (the empty body of a `101`, or the JSON of a refusal).
    ///
    /// It asks nothing of `B` beyond being a body whose data can be made
    /// from [`Bytes`], so the layer fits around any stack: axum's `Body`,
    /// `http_body_util::Full`, `BoxBody`, `UnsyncBoxBody`, and tower-http's
    /// wrappers (`TraceLayer`, `CompressionLayer`, ...). Errors are `B`'s;
    /// the layer's own body never fails.
    ///
    /// axum's `Router::layer` takes it as it is (it converts every response
    /// into its own). Where a server wants one body type, such as
    /// `axum::serve` for a service built outside the router, map it:
    ///
    /// ```
    /// use axum::Router;
    /// use axum::routing::get;
    /// use tower::ServiceBuilder;
    /// use tower_http::ServiceBuilderExt;
    /// use tower_http::trace::TraceLayer;
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let router = Router::new().route("/healthz", get(|| async { "ok" }));
    /// let app = ServiceBuilder::new()
    ///     .map_response_body(axum::body::Body::new)
    ///     .layer(RealtimeLayer::new(Providers::new()))
    ///     .layer(TraceLayer::new_for_http())
    ///     .service(router);
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let serve =
    /// axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app));
    /// # drop(serve);
    /// # Ok(())
    /// # }
    /// ```
    pub struct RealtimeBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Own { data: Option<Bytes> },
    }
}

impl<B> RealtimeBody<B> {
    /// The wrapped service's body, passed on untouched.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of the layer's own holding `data` (empty when `data` is).
    pub(crate) fn own(data: Bytes) -> Self {
        Self {
            kind: Kind::Own {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> Default for RealtimeBody<B> {
    /// An empty body.
    fn default() -> Self {
        Self {
            kind: Kind::Own { data: None },
        }
    }
}

impl<B> Body for RealtimeBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Own { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Own { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Own { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for RealtimeBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f
                .debug_struct("RealtimeBody::Inner")
                .finish_non_exhaustive(),
            Kind::Own { data } => f
                .debug_struct("RealtimeBody::Own")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    #[tokio::test]
    async fn own_body_yields_its_bytes_once() {
        let body: RealtimeBody<Empty<Bytes>> = RealtimeBody::own(Bytes::from_static(b"{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "{}");
    }

    #[tokio::test]
    async fn empty_own_body_is_at_its_end() {
        let body: RealtimeBody<Empty<Bytes>> = RealtimeBody::own(Bytes::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(RealtimeBody::<Empty<Bytes>>::default().is_end_stream());
    }

    #[tokio::test]
    async fn inner_body_passes_through() {
        let body = RealtimeBody::inner(Full::new(Bytes::from_static(b"inner")));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "inner");
    }
}
