//! Budget spend per identity in Prometheus' text format (feature `metrics`),
//! and the refusals of spent identities.
#![cfg(feature = "metrics")]

mod common;

use common::*;
use futures_util::StreamExt;
use tower_realtime::RealtimeLayer;
use tower_realtime::budget::{Budget, Limit, Limits, Window};
use tower_realtime::store::MemoryBudgetStore;
use tower_realtime::testing::MockUpstream;

#[tokio::test]
async fn spend_and_refusals_show_up_per_identity() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test process");
    // The echo upstream sends back the `response.done` the client sends.
    let upstream = MockUpstream::echo().await.unwrap();
    let limits = Limits::new().with(Limit::tokens(Window::Day, 500));
    let budget = Budget::new(MemoryBudgetStore::new(), limits);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).budget(budget)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    let done =
        r#"{"type":"response.done","response":{"id":"resp_1","usage":{"total_tokens":500}}}"#;
    send_text(&mut client, done).await;
    next_data(&mut client).await;
    // 500 of 500: spent, the session ends and the next one is refused.
    let close = close_frame(&mut client).await.expect("a close code");
    assert_eq!(u16::from(close.code), 1008);
    while let Some(Ok(_)) = client.next().await {}
    let (status, _, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "insufficient_quota");

    let text = handle.render();
    for expected in [
        r#"realtime_budget_spend_total{identity="anonymous",meter="tokens"} 500"#,
        r#"realtime_refusals_total{code="insufficient_quota"} 1"#,
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
}
