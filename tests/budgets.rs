//! Budgets through the layer, end to end: real servers with the layer, real
//! WebSocket clients, a scripted upstream that bills every response, and
//! (feature `redis`) a real `redis-server` shared by two gateways.

mod common;

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use http::request::Parts;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower_realtime::admission::{Refusal, client_token};
use tower_realtime::budget::{Budget, Limit, Limits, Micros, PriceTable, Spend, Window};
use tower_realtime::provider::{OpenAi, Provider, TargetFuture, TargetRequest};
use tower_realtime::store::{
    Admission, Balance, BudgetStore, ExhaustedIdentities, Grant, MemoryBudgetStore, Reservation,
    SessionRequest, Settled, Settlement, StoreFuture,
};
use tower_realtime::testing::{Handshake, MockUpstream, UpstreamSession};
use tower_realtime::{Identity, Providers, RealtimeLayer, Secret};

const MODEL: &str = "openai/gpt-realtime";

/// An upstream that bills what it is asked to: each `response.create`
/// gets `response.created` and a `response.done` whose usage is
/// `response.metadata.usage` (or `input`/`output` tokens, the output capped
/// by `max_output_tokens`). `test.server_response` starts a response the
/// client did not ask for (server VAD), `test.done_again` repeats the last
/// `response.done`, `test.transcription` sends a transcription's usage,
/// `test.session_updated` confirms `session` with `session.updated`. A
/// response sends `response.metadata.audio` output audio deltas of one
/// second of 24 kHz PCM each (48,000 bytes) before it is done.
async fn billing_upstream() -> MockUpstream {
    MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        let mut responses = 0;
        let mut last_done = None;
        while let Some(message) = session.recv().await {
            let Ok(event) = serde_json::from_slice::<Value>(&message.into_data()) else {
                continue;
            };
            let (id, usage) = match event["type"].as_str() {
                Some("response.create") => {
                    responses += 1;
                    (format!("resp_{responses}"), usage_of(&event["response"]))
                }
                Some("test.server_response") => {
                    responses += 1;
                    (format!("resp_{responses}"), event["usage"].clone())
                }
                Some("test.done_again") => {
                    if let Some(done) = &last_done {
                        session.send_json(done).await;
                    }
                    continue;
                }
                Some("test.session_updated") => {
                    let updated = json!({"type": "session.updated", "session": event["session"]});
                    session.send_json(&updated).await;
                    continue;
                }
                Some("test.transcription") => {
                    let completed = json!({
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": event["item_id"],
                        "content_index": 0,
                        "transcript": "hello",
                        "usage": event["usage"],
                    });
                    session.send_json(&completed).await;
                    continue;
                }
                _ => continue,
            };
            let created = json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}});
            session.send_json(&created).await;
            let deltas = event["response"]["metadata"]["audio"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            for _ in 0..deltas {
                let delta = json!({"type": "response.output_audio.delta", "response_id": id,
                    "delta": "A".repeat(64_000)});
                session.send_json(&delta).await;
            }
            let done = json!({"type": "response.done", "response": {"id": id, "status": "completed", "usage": usage}});
            session.send_json(&done).await;
            last_done = Some(done);
        }
    })
    .await
    .unwrap()
}

fn usage_of(response: &Value) -> Value {
    let metadata = &response["metadata"];
    if metadata["usage"].is_object() {
        return metadata["usage"].clone();
    }
    let number = |key: &str| metadata[key].as_str().and_then(|n| n.parse::<u64>().ok());
    let input = number("input").unwrap_or(0);
    let mut output = number("output").unwrap_or(0);
    if let Some(max) = response["max_output_tokens"].as_u64() {
        output = output.min(max);
    }
    json!({"total_tokens": input + output, "input_tokens": input, "output_tokens": output})
}

/// A client's `response.create` that will cost `input` + `output` tokens.
fn response_create(input: u64, output: u64, max_output_tokens: Option<u64>) -> String {
    let mut response =
        json!({"metadata": {"input": input.to_string(), "output": output.to_string()}});
    if let Some(max) = max_output_tokens {
        response["max_output_tokens"] = json!(max);
    }
    json!({"type": "response.create", "event_id": "evt_create", "response": response}).to_string()
}

/// A layer whose bearer token names the identity, held to `budget`.
fn layer(upstream: &MockUpstream, budget: Budget) -> RealtimeLayer {
    layer_on(openai(upstream), budget)
}

/// [`layer`] on these providers.
fn layer_on(providers: Providers, budget: Budget) -> RealtimeLayer {
    RealtimeLayer::new(providers)
        .admission(|request: &Parts| match client_token(&request.headers) {
            Some(token) => Ok(Identity::new(token)),
            None => Err(Refusal::unauthorized("no key")),
        })
        .budget(budget)
}

async fn open_as(gateway: &Gateway, identity: &str) -> Client {
    let bearer = format!("Bearer {identity}");
    let (mut client, response) = connect(
        &gateway.url(&format!("?model={MODEL}")),
        &[("authorization", &bearer)],
    )
    .await
    .expect("the session opens");
    assert_eq!(response.status(), 101);
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    client
}

async fn refused_as(gateway: &Gateway, identity: &str) -> (u16, http::HeaderMap, Value) {
    let bearer = format!("Bearer {identity}");
    refused(
        &gateway.url(&format!("?model={MODEL}")),
        &[("authorization", &bearer)],
    )
    .await
}

/// Sends a response and reads its `response.created` and `response.done`.
async fn respond(client: &mut Client, create: &str) -> Value {
    send_text(client, create).await;
    let created = next_event(client).await;
    assert_eq!(created["type"], "response.created", "{created}");
    let done = next_event(client).await;
    assert_eq!(done["type"], "response.done", "{done}");
    done
}

/// Expects the end of a session whose budget is spent: an `error` event
/// `insufficient_quota`, then close 1008.
async fn expect_spent(client: &mut Client) {
    // Bounded as a whole: keepalive pings would restart a per-message wait.
    tokio::time::timeout(PROMPTLY, expect_spent_event(client))
        .await
        .expect("the session ends in time");
    let close = close_frame(client).await.expect("a close code");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason, "insufficient_quota");
}

async fn expect_spent_event(client: &mut Client) {
    loop {
        let event = next_event(client).await;
        if event["type"] == "error" {
            assert_eq!(event["error"]["code"], "insufficient_quota", "{event}");
            return;
        }
    }
}

/// Spent tokens of `identity`'s first budget.
async fn spent(budget: &Budget, identity: &str) -> (u64, u64) {
    let balance = budget
        .store()
        .balance(identity, &budget.limits(identity), budget.now())
        .await
        .unwrap();
    (balance[0].spent, balance[0].held)
}

/// Waits until `condition` holds; fails the test after [`PROMPTLY`].
async fn eventually<F: std::future::Future<Output = bool>>(mut condition: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the condition did not hold in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn closed_with(upstream: &MockUpstream, code: u16) -> usize {
    upstream
        .closes()
        .iter()
        .filter(|close| close.as_ref().is_some_and(|c| u16::from(c.code) == code))
        .count()
}

#[tokio::test]
async fn a_spent_identity_is_refused_before_anything_is_dialled() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().with(Limit::tokens(Window::Day, 100));
    let budget = Budget::new(MemoryBudgetStore::new(), limits.clone());
    let gateway = serve_axum(layer(&upstream, budget.clone())).await;
    let settle = Settlement::new("alice", "earlier", &limits, Spend::new().with_tokens(100))
        .at(budget.now());
    budget.store().settle(&settle).await.unwrap();

    let (status, headers, body) = refused_as(&gateway, "alice").await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens budget (day)"),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(upstream.connections(), 0, "a refused session dials nothing");

    // Another identity is not held to alice's spending.
    let _bob = open_as(&gateway, "bob").await;
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn live_sessions_are_limited_per_identity_and_released_when_they_end() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().max_live_sessions(1);
    let budget = Budget::new(MemoryBudgetStore::new(), limits);
    let gateway = serve_axum(layer(&upstream, budget)).await;
    let mut first = open_as(&gateway, "alice").await;

    let (status, headers, body) = refused_as(&gateway, "alice").await;
    assert_eq!(status, 429);
    assert_eq!(
        body["error"]["code"], "concurrency_limit_exceeded",
        "{body}"
    );
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert!(headers.get("retry-after").is_none());
    assert_eq!(upstream.connections(), 1);
    let _bob = open_as(&gateway, "bob").await;

    first.close(None).await.unwrap();
    drop(first);
    // The slot is released in the background once the session has ended.
    eventually(|| async {
        let bearer = "Bearer alice";
        connect(
            &gateway.url(&format!("?model={MODEL}")),
            &[("authorization", bearer)],
        )
        .await
        .is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_session_whose_dial_fails_releases_its_place() {
    let upstream = MockUpstream::builder()
        .handshake(Handshake::reject(500, r#"{"error":{"message":"down"}}"#))
        .start()
        .await
        .unwrap();
    let budget = Budget::new(MemoryBudgetStore::new(), Limits::new().max_live_sessions(1));
    let gateway = serve_axum(layer(&upstream, budget)).await;
    let (status, _, body) = refused_as(&gateway, "alice").await;
    assert_eq!(status, 502, "{body}");
    // The place is released in the background: the next session is dialled
    // (and fails the same way) instead of being refused for the limit.
    eventually(|| async { refused_as(&gateway, "alice").await.0 == 502 }).await;
    assert_eq!(upstream.connections(), 2);
}

/// A [`MemoryBudgetStore`] that takes its time to release a session, as a
/// remote store may.
struct SlowRelease(MemoryBudgetStore);

impl BudgetStore for SlowRelease {
    fn admit<'a>(&'a self, request: &'a SessionRequest<'a>) -> StoreFuture<'a, Admission> {
        self.0.admit(request)
    }

    fn release_session<'a>(&'a self, identity: &'a str, session: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.0.release_session(identity, session).await
        })
    }

    fn reserve<'a>(&'a self, reservation: &'a Reservation<'a>) -> StoreFuture<'a, Grant> {
        self.0.reserve(reservation)
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement<'a>) -> StoreFuture<'a, Settled> {
        self.0.settle(settlement)
    }

    fn balance<'a>(
        &'a self,
        identity: &'a str,
        limits: &'a Limits,
        now: SystemTime,
    ) -> StoreFuture<'a, Vec<Balance>> {
        self.0.balance(identity, limits, now)
    }

    fn announce_exhausted<'a>(&'a self, identity: &'a str) -> StoreFuture<'a, ()> {
        self.0.announce_exhausted(identity)
    }

    fn exhausted(&self) -> ExhaustedIdentities {
        self.0.exhausted()
    }
}

#[tokio::test]
async fn shutdown_returns_once_ended_sessions_gave_their_places_back() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().max_live_sessions(1);
    let store = Arc::new(SlowRelease(MemoryBudgetStore::new()));
    let layer = layer(&upstream, Budget::new(Arc::clone(&store), limits.clone()));
    let shutdown = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let mut client = open_as(&gateway, "alice").await;
    let closed = tokio::spawn(async move { close_frame(&mut client).await });

    assert!(shutdown.shutdown(PROMPTLY).await, "drained in time");
    // The process may exit now: alice's place is free for her reconnect on
    // another replica, not held until the session's lease runs out.
    let reconnect = SessionRequest::new("alice", "on_another_replica", &limits);
    assert_eq!(store.admit(&reconnect).await.unwrap(), Admission::Admitted);
    let close = closed.await.unwrap().expect("a close code");
    assert_eq!(u16::from(close.code), 1001);
}

#[tokio::test]
async fn a_model_without_a_price_is_refused_when_money_is_budgeted() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().with(Limit::money(Window::Day, Micros::new(1_000_000)));
    let prices = PriceTable::from_json(r#"{"models": {"other-model": {"output_audio": "64"}}}"#);
    let budget = Budget::new(MemoryBudgetStore::new(), limits.clone()).prices(prices.unwrap());
    let gateway = serve_axum(layer(&upstream, budget)).await;
    let (status, _, body) = refused_as(&gateway, "alice").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "model_not_priced", "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    assert_eq!(upstream.connections(), 0);

    // With a default price, or without a money budget, it opens.
    let prices = PriceTable::from_json(r#"{"default": {"output_audio": "64"}}"#).unwrap();
    let budget = Budget::new(MemoryBudgetStore::new(), limits).prices(prices.clone());
    let gateway = serve_axum(layer(&upstream, budget)).await;
    let _priced = open_as(&gateway, "alice").await;
    let tokens = Limits::new().with(Limit::tokens(Window::Day, 1_000));
    let prices = PriceTable::from_json(r#"{"models": {"other-model": {"output_audio": "64"}}}"#);
    let budget = Budget::new(MemoryBudgetStore::new(), tokens).prices(prices.unwrap());
    let gateway = serve_axum(layer(&upstream, budget)).await;
    let _tokens_only = open_as(&gateway, "alice").await;
}

#[tokio::test]
async fn a_session_that_spends_the_budget_ends_every_session_of_its_identity() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().with(Limit::tokens(Window::Day, 1_000));
    let budget = Budget::new(MemoryBudgetStore::new(), limits).estimate(100, 400, 64);
    let (layer, summaries) = summaries(layer(&upstream, budget.clone()));
    let gateway = serve_axum(layer).await;
    let mut spender = open_as(&gateway, "alice").await;
    let mut bystander = open_as(&gateway, "alice").await;
    let mut other = open_as(&gateway, "bob").await;

    // Reserved 500, cost 1,200: the budget is spent.
    respond(&mut spender, &response_create(200, 1_000, None)).await;
    expect_spent(&mut spender).await;
    expect_spent(&mut bystander).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| closed_with(u, 1008) == 2)
            .await
    );
    assert_eq!(spent(&budget, "alice").await, (1_200, 0));

    // Bob's session goes on.
    respond(&mut other, &response_create(10, 10, None)).await;
    // Alice cannot come back today.
    let (status, _, body) = refused_as(&gateway, "alice").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("insufficient_quota"))
    );

    eventually(|| async { summaries.lock().unwrap().len() >= 2 }).await;
    let summaries = summaries.lock().unwrap().clone();
    let spenders: Vec<_> = summaries
        .iter()
        .filter_map(|summary| summary.spend.map(|spend| spend.tokens))
        .collect();
    assert!(spenders.contains(&1_200), "{spenders:?}");
    assert!(spenders.contains(&0), "{spenders:?}");
}

#[tokio::test]
async fn responses_are_clamped_to_the_budget_left_and_refused_when_none_is() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().with(Limit::tokens(Window::Day, 1_000));
    let budget = Budget::new(MemoryBudgetStore::new(), limits).estimate(100, 4_096, 64);
    let gateway = serve_axum(layer(&upstream, budget.clone())).await;
    let mut client = open_as(&gateway, "alice").await;

    // 1,000 left, 100 for the input: 900 output tokens at most.
    let done = respond(&mut client, &response_create(100, 2_000, Some(2_000))).await;
    assert_eq!(done["response"]["usage"]["output_tokens"], 900);
    let creates: Vec<Value> = upstream
        .received()
        .iter()
        .filter_map(|m| serde_json::from_slice::<Value>(&m.clone().into_data()).ok())
        .filter(|event| event["type"] == "response.create")
        .collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0]["response"]["max_output_tokens"], 900);
    assert_eq!(creates[0]["response"]["metadata"]["input"], "100");
    eventually(|| async { spent(&budget, "alice").await == (1_000, 0) }).await;

    // Spent exactly: the session ends.
    expect_spent(&mut client).await;

    // A response that fits is not rewritten; one that cannot cover its
    // input and a short answer is refused, and the session goes on.
    let mut bob = open_as(&gateway, "bob").await;
    respond(&mut bob, &response_create(100, 800, Some(800))).await;
    let forwarded = upstream.received().len();
    send_text(&mut bob, &response_create(100, 800, Some(800))).await;
    let error = next_event(&mut bob).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["code"], "insufficient_quota", "{error}");
    assert_eq!(error["error"]["event_id"], "evt_create", "{error}");
    send_text(&mut bob, r#"{"type":"test.ping"}"#).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.received().len() > forwarded)
            .await
    );
    let last = upstream.received().last().unwrap().clone().into_data();
    assert_eq!(
        serde_json::from_slice::<Value>(&last).unwrap()["type"],
        "test.ping"
    );
    assert_eq!(spent(&budget, "bob").await, (900, 0));
}

/// An upstream whose responses run until cancelled (`answer_cancel`: then
/// it sends a cancelled `response.done` with 100 input and 40 output
/// tokens; otherwise nothing).
async fn unending_upstream(answer_cancel: bool) -> MockUpstream {
    MockUpstream::with_script(move |mut session: UpstreamSession| async move {
        session.session_created().await;
        while let Some(message) = session.recv().await {
            let Ok(event) = serde_json::from_slice::<Value>(&message.into_data()) else {
                continue;
            };
            match event["type"].as_str() {
                Some("response.create") => {
                    session
                        .send_json(&json!({"type": "response.created",
                        "response": {"id": "resp_1", "status": "in_progress"}}))
                        .await;
                    session
                        .send_json(&json!({"type": "response.output_audio.delta",
                        "response_id": "resp_1", "delta": "AAAA"}))
                        .await;
                }
                Some("response.cancel") if answer_cancel => {
                    session
                        .send_json(&json!({"type": "response.done", "response": {
                        "id": "resp_1", "status": "cancelled",
                        "usage": {"total_tokens": 140, "input_tokens": 100, "output_tokens": 40}}}))
                        .await;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap()
}

/// Whether `upstream` received a `response.cancel`.
fn cancelled(upstream: &MockUpstream) -> bool {
    upstream.received().iter().any(|message| {
        serde_json::from_slice::<Value>(&message.clone().into_data())
            .is_ok_and(|event| event["type"] == "response.cancel")
    })
}

/// A client that leaves in the middle of a response does not get it for
/// free: the gateway cancels it upstream and charges its `response.done`.
#[tokio::test]
async fn a_response_cut_short_by_the_client_is_cancelled_and_charged() {
    for abrupt in [false, true] {
        let upstream = unending_upstream(true).await;
        let limits = Limits::new().with(Limit::tokens(Window::Day, 100_000));
        let budget = Budget::new(MemoryBudgetStore::new(), limits);
        let (layer, summaries) = summaries(layer(&upstream, budget.clone()));
        let gateway = serve_axum(layer).await;
        let mut client = open_as(&gateway, "alice").await;
        send_text(&mut client, &response_create(0, 0, None)).await;
        assert_eq!(next_event(&mut client).await["type"], "response.created");
        assert_eq!(
            next_event(&mut client).await["type"],
            "response.output_audio.delta"
        );
        if abrupt {
            drop(client);
        } else {
            client.close(None).await.unwrap();
        }
        eventually(|| async { spent(&budget, "alice").await == (140, 0) }).await;
        assert!(cancelled(&upstream), "abrupt: {abrupt}");
        eventually(|| async { !summaries.lock().unwrap().is_empty() }).await;
        let summary = summaries.lock().unwrap()[0].clone();
        assert_eq!(summary.spend.unwrap().tokens, 140, "abrupt: {abrupt}");
    }
}

/// A `response.create` the upstream refused never ran: a session that ends
/// after it has nothing to cancel.
#[tokio::test]
async fn a_refused_response_is_not_cancelled_at_the_end() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        while let Some(message) = session.recv().await {
            if message
                .to_text()
                .unwrap_or_default()
                .contains("response.create")
            {
                session
                    .send_json(&json!({"type": "error", "error": {
                        "type": "invalid_request_error",
                        "code": "conversation_already_has_active_response"}}))
                    .await;
            }
        }
    })
    .await
    .unwrap();
    let limits = Limits::new().with(Limit::tokens(Window::Day, 100_000));
    let budget = Budget::new(MemoryBudgetStore::new(), limits);
    let (layer, summaries) = summaries(layer(&upstream, budget.clone()));
    let gateway = serve_axum(layer).await;
    let mut client = open_as(&gateway, "alice").await;
    send_text(&mut client, &response_create(0, 0, None)).await;
    assert_eq!(next_event(&mut client).await["type"], "error");
    client.close(None).await.unwrap();
    eventually(|| async { !summaries.lock().unwrap().is_empty() }).await;
    assert!(!cancelled(&upstream), "nothing ran, nothing to cancel");
    eventually(|| async { spent(&budget, "alice").await == (0, 0) }).await;
}

/// An upstream that does not answer the cancel holds the session's end for
/// the close timeout at most; the reservation is then released.
#[tokio::test]
async fn a_cancel_the_upstream_does_not_answer_ends_within_the_close_timeout() {
    let upstream = unending_upstream(false).await;
    let limits = Limits::new().with(Limit::tokens(Window::Day, 100_000));
    let budget = Budget::new(MemoryBudgetStore::new(), limits);
    let layer = layer(&upstream, budget.clone()).close_timeout(Duration::from_millis(300));
    let (layer, summaries) = summaries(layer);
    let gateway = serve_axum(layer).await;
    let mut client = open_as(&gateway, "alice").await;
    send_text(&mut client, &response_create(0, 0, None)).await;
    assert_eq!(next_event(&mut client).await["type"], "response.created");
    let (_, held) = spent(&budget, "alice").await;
    assert!(held > 0, "reserved while it runs");
    client.close(None).await.unwrap();
    eventually(|| async { !summaries.lock().unwrap().is_empty() }).await;
    assert!(cancelled(&upstream));
    eventually(|| async { spent(&budget, "alice").await == (0, 0) }).await;
}

#[tokio::test]
async fn settling_is_idempotent_per_response_and_covers_server_started_responses() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().with(Limit::tokens(Window::Day, 100_000));
    let budget = Budget::new(MemoryBudgetStore::new(), limits);
    let (layer, summaries) = summaries(layer(&upstream, budget.clone()));
    let gateway = serve_axum(layer).await;
    let mut client = open_as(&gateway, "alice").await;

    respond(&mut client, &response_create(100, 200, None)).await;
    send_text(&mut client, r#"{"type":"test.done_again"}"#).await;
    assert_eq!(next_event(&mut client).await["type"], "response.done");
    // A response the provider started (server VAD) is reserved and settled too.
    let server = json!({"type": "test.server_response", "usage": {"total_tokens": 50, "input_tokens": 20, "output_tokens": 30}});
    send_text(&mut client, &server.to_string()).await;
    assert_eq!(next_event(&mut client).await["type"], "response.created");
    assert_eq!(next_event(&mut client).await["type"], "response.done");
    // Transcription usage is charged as it arrives.
    let transcription = json!({"type": "test.transcription", "item_id": "item_1", "usage": {"type": "tokens", "total_tokens": 7, "input_tokens": 5, "output_tokens": 2}});
    send_text(&mut client, &transcription.to_string()).await;
    next_event(&mut client).await;
    eventually(|| async { spent(&budget, "alice").await == (357, 0) }).await;

    client.close(None).await.unwrap();
    eventually(|| async { !summaries.lock().unwrap().is_empty() }).await;
    let summary = summaries.lock().unwrap()[0].clone();
    assert_eq!(summary.identity.name(), "alice");
    assert_eq!(summary.spend.unwrap().tokens, 357);
}

#[tokio::test]
async fn every_token_class_and_input_audio_is_priced_through_a_session() {
    let upstream = billing_upstream().await;
    // Micro-dollars per token: the price per million tokens in dollars.
    let prices = PriceTable::from_json(
        r#"{"models": {"openai/gpt-realtime": {
            "input_text": "1", "cached_input_text": "0.5",
            "input_audio": "2", "cached_input_audio": "0.25",
            "input_image": "3", "cached_input_image": "0.75",
            "output_text": "4", "output_audio": "8",
            "input_audio_per_minute": "0.6"
        }}}"#,
    )
    .unwrap();
    let limits = Limits::new().with(Limit::money(Window::Month, Micros::new(1_000_000)));
    let budget = Budget::new(MemoryBudgetStore::new(), limits).prices(prices);
    let (layer, summaries) = summaries(layer(&upstream, budget.clone()));
    let gateway = serve_axum(layer).await;
    let mut client = open_as(&gateway, "alice").await;

    // One second of pcm16 at 24 kHz: 48,000 bytes.
    let second = json!({"type": "input_audio_buffer.append", "audio": "A".repeat(64_000)});
    send_text(&mut client, &second.to_string()).await;
    let usage = json!({
        "total_tokens": 6_900, "input_tokens": 6_000, "output_tokens": 900,
        "input_token_details": {
            "text_tokens": 1_000, "audio_tokens": 2_000, "image_tokens": 3_000, "cached_tokens": 600,
            "cached_tokens_details": {"text_tokens": 100, "audio_tokens": 200, "image_tokens": 300}
        },
        "output_token_details": {"text_tokens": 400, "audio_tokens": 500}
    });
    let create = json!({"type": "response.create", "response": {"metadata": {"usage": usage}}});
    respond(&mut client, &create.to_string()).await;
    // Text 900 × 1 + 100 × 0.5, audio 1,800 × 2 + 200 × 0.25, images
    // 2,700 × 3 + 300 × 0.75, output 400 × 4 + 500 × 8, one second at $0.6/min.
    let expected = 900 + 50 + 3_600 + 50 + 8_100 + 225 + 1_600 + 4_000 + 10_000;
    eventually(|| async { spent(&budget, "alice").await == (expected, 0) }).await;

    client.close(None).await.unwrap();
    eventually(|| async { !summaries.lock().unwrap().is_empty() }).await;
    let spend = summaries.lock().unwrap()[0].spend.unwrap();
    assert_eq!(spend.money, Micros::new(expected));
    assert_eq!((spend.tokens, spend.input_audio_ms), (6_900, 1_000));
}

/// Audio appended after the last response is charged when the session
/// ends, not forgotten.
#[tokio::test]
async fn input_audio_after_the_last_response_is_charged_when_the_session_ends() {
    let upstream = billing_upstream().await;
    let limits = Limits::new().with(Limit::input_audio(Window::Day, Duration::from_secs(60)));
    let budget = Budget::new(MemoryBudgetStore::new(), limits);
    let (layer, summaries) = summaries(layer(&upstream, budget.clone()));
    let gateway = serve_axum(layer).await;
    let mut client = open_as(&gateway, "alice").await;
    // Two seconds of pcm16 at 24 kHz, and no response.
    let second = json!({"type": "input_audio_buffer.append", "audio": "A".repeat(64_000)});
    send_text(&mut client, &second.to_string()).await;
    send_text(&mut client, &second.to_string()).await;
    client.close(None).await.unwrap();
    eventually(|| async { !summaries.lock().unwrap().is_empty() }).await;
    let spend = summaries.lock().unwrap()[0].spend.unwrap();
    assert_eq!(spend.input_audio_ms, 2_000);
    eventually(|| async { spent(&budget, "alice").await == (2_000, 0) }).await;
}

/// After failover, a session is priced at the model of the deployment that
/// served it, not the one it asked for first.
#[tokio::test]
async fn a_failed_over_session_is_priced_at_the_serving_deployments_model() {
    use tower_realtime::deployment::Deployment;

    let down = MockUpstream::builder()
        .handshake(Handshake::reject(503, "busy"))
        .start()
        .await
        .unwrap();
    let backup = billing_upstream().await;
    let openai = |upstream: &MockUpstream| {
        OpenAi::new(Secret::new(PROVIDER_KEY))
            .base_url(&upstream.base_url())
            .unwrap()
    };
    let providers = Providers::new()
        .with("primary", openai(&down))
        .with("backup", openai(&backup))
        .deployments(
            "voice",
            [
                Deployment::new("primary/dear"),
                Deployment::new("backup/cheap").tier(1),
            ],
        );
    // Micro-dollars per output token: 100 at the primary, 1 at the backup.
    let prices = PriceTable::from_json(
        r#"{"models": {"primary/dear": {"output_text": "100"}, "backup/cheap": {"output_text": "1"}}}"#,
    )
    .unwrap();
    let limits = Limits::new().with(Limit::money(Window::Month, Micros::new(1_000_000)));
    let budget = Budget::new(MemoryBudgetStore::new(), limits).prices(prices);
    let gateway = serve_axum(layer_on(providers, budget.clone())).await;
    let (mut client, _) = connect(
        &gateway.url("?model=voice"),
        &[("authorization", "Bearer alice")],
    )
    .await
    .expect("failed over");
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    respond(&mut client, &response_create(0, 1_000, None)).await;
    eventually(|| async { spent(&budget, "alice").await == (1_000, 0) }).await;
    assert_eq!(down.connections(), 1, "the primary was tried first");
}

/// An `openai` provider whose sessions wait, once admitted, until the test
/// lets them dial.
struct Gated {
    inner: OpenAi,
    /// Told when a session waits.
    reached: Arc<Notify>,
    /// Lets one session go on.
    gate: Arc<Notify>,
}

impl Provider for Gated {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        Box::pin(async move {
            self.reached.notify_one();
            self.gate.notified().await;
            self.inner.target(request).await
        })
    }
}

#[tokio::test]
async fn a_session_announced_out_of_budget_while_it_dials_ends_as_it_opens() {
    let upstream = billing_upstream().await;
    let (reached, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let gated = Gated {
        inner: OpenAi::new(Secret::new(PROVIDER_KEY))
            .base_url(&upstream.base_url())
            .unwrap(),
        reached: Arc::clone(&reached),
        gate: Arc::clone(&gate),
    };
    let limits = Limits::new().with(Limit::tokens(Window::Day, 100_000));
    let budget = Budget::new(MemoryBudgetStore::new(), limits);
    let providers = Providers::new().with("openai", gated);
    let gateway = serve_axum(layer_on(providers, budget.clone())).await;
    gate.notify_one();
    let mut live = open_as(&gateway, "alice").await;
    reached.notified().await;

    // Admitted, and dialling when alice's budget is announced spent.
    let url = gateway.url(&format!("?model={MODEL}"));
    let dialling =
        tokio::spawn(async move { connect(&url, &[("authorization", "Bearer alice")]).await });
    tokio::time::timeout(PROMPTLY, reached.notified())
        .await
        .expect("the second session dials");
    budget.store().announce_exhausted("alice").await.unwrap();
    // The live session is ended: the announcement has been heard.
    expect_spent(&mut live).await;

    gate.notify_one();
    let (mut late, _) = dialling.await.unwrap().expect("the session opens");
    expect_spent(&mut late).await;
}

/// Sends `session` for the upstream to confirm, and reads its `session.updated`.
async fn confirm_session(client: &mut Client, session: Value) {
    let update = json!({"type": "test.session_updated", "session": session});
    send_text(client, &update.to_string()).await;
    assert_eq!(next_event(client).await["type"], "session.updated");
}

/// A budget of `micros` a month, in memory, for a model whose output audio
/// costs $0.6 a minute (10,000 micro-dollars a second).
fn speech_by_the_minute(micros: u64) -> Budget {
    let prices = PriceTable::from_json(
        r#"{"models": {"openai/gpt-realtime": {"output_audio_per_minute": "0.6"}}}"#,
    )
    .unwrap();
    let limits = Limits::new().with(Limit::money(Window::Month, Micros::new(micros)));
    Budget::new(MemoryBudgetStore::new(), limits).prices(prices)
}

#[tokio::test]
async fn output_audio_priced_by_the_minute_is_charged_from_its_deltas() {
    let upstream = billing_upstream().await;
    let budget = speech_by_the_minute(1_000_000);
    let (layer, summaries) = summaries(layer(&upstream, budget.clone()));
    let gateway = serve_axum(layer).await;
    let mut client = open_as(&gateway, "alice").await;

    // Two deltas of one second each at the 24 kHz PCM of `session.created`.
    let create = json!({"type": "response.create", "response": {"metadata": {"audio": "2"}}});
    send_text(&mut client, &create.to_string()).await;
    let (events, close) =
        read_events_until(&mut client, |event| event["type"] == "response.done").await;
    assert_eq!(close, None);
    let deltas = events
        .iter()
        .filter(|event| event["type"] == "response.output_audio.delta")
        .count();
    assert_eq!(deltas, 2, "the deltas reach the client");
    eventually(|| async { spent(&budget, "alice").await == (20_000, 0) }).await;

    // In G.711 (8,000 bytes a second) the same 48,000 bytes are six seconds.
    confirm_session(
        &mut client,
        json!({"audio": {"output": {"format": {"type": "audio/pcmu"}}}}),
    )
    .await;
    let create = json!({"type": "response.create", "response": {"metadata": {"audio": "1"}}});
    send_text(&mut client, &create.to_string()).await;
    read_events_until(&mut client, |event| event["type"] == "response.done").await;
    eventually(|| async { spent(&budget, "alice").await == (80_000, 0) }).await;

    client.close(None).await.unwrap();
    eventually(|| async { !summaries.lock().unwrap().is_empty() }).await;
    let spend = summaries.lock().unwrap()[0].spend.unwrap();
    assert_eq!(spend.money, Micros::new(80_000));
}

/// Where output audio is priced by the minute, a response must afford a
/// second of it: a money budget that cannot refuses the response.
#[tokio::test]
async fn a_response_that_cannot_afford_a_second_of_speech_is_refused() {
    let upstream = billing_upstream().await;
    let budget = speech_by_the_minute(25_000);
    let gateway = serve_axum(layer(&upstream, budget.clone())).await;
    let mut client = open_as(&gateway, "alice").await;

    let create = json!({"type": "response.create", "response": {"metadata": {"audio": "2"}}});
    send_text(&mut client, &create.to_string()).await;
    read_events_until(&mut client, |event| event["type"] == "response.done").await;
    eventually(|| async { spent(&budget, "alice").await == (20_000, 0) }).await;

    // 5,000 left: less than a second.
    send_text(&mut client, &create.to_string()).await;
    let error = next_event(&mut client).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["code"], "insufficient_quota", "{error}");
    let creates = upstream
        .received()
        .iter()
        .filter_map(|m| serde_json::from_slice::<Value>(&m.clone().into_data()).ok())
        .filter(|event| event["type"] == "response.create")
        .count();
    assert_eq!(creates, 1, "the second response was not forwarded");
}

#[tokio::test]
async fn transcriptions_are_priced_at_the_sessions_transcription_model() {
    let upstream = billing_upstream().await;
    let prices = PriceTable::from_json(
        r#"{"models": {
            "openai/gpt-realtime": {"input_audio": "32", "input_audio_per_minute": "0.6"},
            "gpt-4o-transcribe": {"input_audio": "6", "output_text": "10"},
            "whisper-1": {"input_audio_per_minute": "0.006"}
        }}"#,
    )
    .unwrap();
    let limits = Limits::new().with(Limit::money(Window::Month, Micros::new(1_000_000)));
    let budget = Budget::new(MemoryBudgetStore::new(), limits).prices(prices);
    let gateway = serve_axum(layer(&upstream, budget.clone())).await;
    let mut client = open_as(&gateway, "alice").await;
    confirm_session(
        &mut client,
        json!({"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}),
    )
    .await;

    // One second of audio, then its transcription: the second at the
    // session's $0.6 a minute, the tokens at gpt-4o-transcribe's prices
    // (1,000 audio tokens in at $6, 500 text tokens out at $10 a million),
    // not at the session model's $32.
    let second = json!({"type": "input_audio_buffer.append", "audio": "A".repeat(64_000)});
    send_text(&mut client, &second.to_string()).await;
    let usage = json!({"type": "tokens", "total_tokens": 1_500, "input_tokens": 1_000,
        "input_token_details": {"audio_tokens": 1_000}, "output_tokens": 500});
    let transcription = json!({"type": "test.transcription", "item_id": "item_1", "usage": usage});
    send_text(&mut client, &transcription.to_string()).await;
    assert_eq!(
        next_event(&mut client).await["type"],
        "conversation.item.input_audio_transcription.completed"
    );
    eventually(|| async { spent(&budget, "alice").await == (10_000 + 6_000 + 5_000, 0) }).await;

    // A model billed by the second (30 s at $0.006 a minute).
    confirm_session(
        &mut client,
        json!({"input_audio_transcription": {"model": "whisper-1"}}),
    )
    .await;
    let usage = json!({"type": "duration", "seconds": 30});
    let transcription = json!({"type": "test.transcription", "item_id": "item_2", "usage": usage});
    send_text(&mut client, &transcription.to_string()).await;
    next_event(&mut client).await;
    eventually(|| async { spent(&budget, "alice").await == (21_000 + 3_000, 0) }).await;
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::UNIX_EPOCH;

    use tower_realtime::store::{OnUnavailable, RedisBudgetStore};

    use super::redis_server::RedisServer;
    use super::*;

    fn store(redis: &RedisServer, policy: OnUnavailable) -> RedisBudgetStore {
        RedisBudgetStore::builder(redis.url())
            .timeout(Duration::from_millis(300))
            .on_unavailable(policy)
            .session_lease(Duration::from_secs(2))
            .build()
            .unwrap()
    }

    /// Two gateways (replicas), each with its own client of one Redis.
    struct Replicas {
        a: Gateway,
        b: Gateway,
        budget_a: Budget,
        store_a: RedisBudgetStore,
        store_b: RedisBudgetStore,
    }

    async fn replicas(
        redis: &RedisServer,
        upstream: &MockUpstream,
        limits: Limits,
        configure: impl Fn(Budget) -> Budget,
    ) -> Replicas {
        let store_a = store(redis, OnUnavailable::FailClosed);
        let store_b = store(redis, OnUnavailable::FailClosed);
        let budget_a = configure(Budget::new(store_a.clone(), limits.clone()));
        let budget_b = configure(Budget::new(store_b.clone(), limits));
        for store in [&store_a, &store_b] {
            tokio::time::timeout(PROMPTLY, store.subscribed())
                .await
                .unwrap();
        }
        Replicas {
            a: serve_axum(layer(upstream, budget_a.clone())).await,
            b: serve_axum(layer(upstream, budget_b)).await,
            budget_a,
            store_a,
            store_b,
        }
    }

    #[tokio::test]
    async fn usage_on_one_replica_ends_the_identitys_sessions_on_the_other() {
        let redis = RedisServer::start().await;
        let upstream = billing_upstream().await;
        let limits = Limits::new().with(Limit::tokens(Window::Day, 1_000));
        let replicas = replicas(&redis, &upstream, limits, |b| b.estimate(100, 400, 64)).await;
        let mut on_a = open_as(&replicas.a, "alice").await;
        let mut on_b = open_as(&replicas.b, "alice").await;
        let mut bob_on_b = open_as(&replicas.b, "bob").await;

        respond(&mut on_a, &response_create(300, 900, None)).await;
        expect_spent(&mut on_a).await;
        expect_spent(&mut on_b).await;
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| closed_with(u, 1008) == 2)
                .await
        );
        respond(&mut bob_on_b, &response_create(1, 1, None)).await;
        assert_eq!(spent(&replicas.budget_a, "alice").await, (1_200, 0));
        let (status, _, body) = refused_as(&replicas.b, "alice").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (429, Some("insufficient_quota"))
        );
        drop((replicas.store_a, replicas.store_b));
    }

    #[tokio::test]
    async fn live_sessions_are_limited_across_replicas() {
        let redis = RedisServer::start().await;
        let upstream = billing_upstream().await;
        let limits = Limits::new().max_live_sessions(2);
        let replicas = replicas(&redis, &upstream, limits, |b| b).await;
        let first = open_as(&replicas.a, "alice").await;
        let _second = open_as(&replicas.b, "alice").await;
        for gateway in [&replicas.a, &replicas.b] {
            let (status, _, body) = refused_as(gateway, "alice").await;
            assert_eq!(status, 429);
            assert_eq!(
                body["error"]["code"], "concurrency_limit_exceeded",
                "{body}"
            );
        }
        assert_eq!(upstream.connections(), 2);
        let mut first = first;
        first.close(None).await.unwrap();
        drop(first);
        eventually(|| async {
            connect(
                &replicas.b.url(&format!("?model={MODEL}")),
                &[("authorization", "Bearer alice")],
            )
            .await
            .is_ok()
        })
        .await;
    }

    #[tokio::test]
    async fn a_spent_budget_admits_again_when_its_window_resets() {
        let redis = RedisServer::start().await;
        let upstream = billing_upstream().await;
        // 2026-12-02T10:00:00Z, moved by whole days.
        let days = Arc::new(AtomicU64::new(0));
        let clock = {
            let days = Arc::clone(&days);
            move || {
                UNIX_EPOCH
                    + Duration::from_secs(1_796_205_600 + 86_400 * days.load(Ordering::SeqCst))
            }
        };
        let limits = Limits::new().with(Limit::tokens(Window::Day, 500));
        let replicas = replicas(&redis, &upstream, limits, move |b| {
            b.estimate(100, 400, 64).clock(clock.clone())
        })
        .await;
        let mut client = open_as(&replicas.a, "alice").await;
        respond(&mut client, &response_create(100, 400, None)).await;
        expect_spent(&mut client).await;
        let (status, headers, _) = refused_as(&replicas.b, "alice").await;
        assert_eq!(status, 429);
        // Fourteen hours to midnight UTC.
        assert_eq!(headers["retry-after"], "50400");

        days.store(1, Ordering::SeqCst);
        let _next_day = open_as(&replicas.b, "alice").await;
        assert_eq!(spent(&replicas.budget_a, "alice").await, (0, 0));
    }

    #[tokio::test]
    async fn redis_down_fails_closed_for_new_sessions_and_live_ones_settle_later() {
        let mut redis = RedisServer::start().await;
        let upstream = billing_upstream().await;
        let limits = Limits::new().with(Limit::tokens(Window::Day, 100_000));
        let replicas = replicas(&redis, &upstream, limits, |b| b).await;
        let mut live = open_as(&replicas.a, "alice").await;

        redis.kill();
        let (status, headers, body) = refused_as(&replicas.a, "alice").await;
        assert_eq!(status, 503);
        assert_eq!(body["error"]["code"], "budget_store_unavailable", "{body}");
        assert!(headers.get("retry-after").is_some());
        assert_eq!(
            upstream.connections(),
            1,
            "nothing dialled while the store is down"
        );
        // The live session goes on; its response is settled once Redis is back.
        respond(&mut live, &response_create(100, 200, None)).await;
        eventually(|| async { replicas.store_a.deferred_settlements() > 0 }).await;

        redis.restart().await;
        eventually(|| async { replicas.store_a.deferred_settlements() == 0 }).await;
        assert_eq!(spent(&replicas.budget_a, "alice").await.0, 300);
        let _again = open_as(&replicas.b, "alice").await;
        drop(replicas.store_b);
    }

    #[tokio::test]
    async fn redis_down_fails_open_when_configured() {
        let mut redis = RedisServer::start().await;
        let upstream = billing_upstream().await;
        let limits = Limits::new().with(Limit::tokens(Window::Day, 1_000));
        let store = store(&redis, OnUnavailable::FailOpen);
        let budget = Budget::new(store.clone(), limits).estimate(10, 100, 10);
        let gateway = serve_axum(layer(&upstream, budget.clone())).await;
        let _before = open_as(&gateway, "alice").await;
        redis.kill();
        // Admitted and metered in this process meanwhile.
        let mut during = open_as(&gateway, "alice").await;
        respond(&mut during, &response_create(100, 700, None)).await;
        // The local meter holds the budget too: 800 of 1,000 spent.
        send_text(&mut during, &response_create(100, 400, Some(400))).await;
        assert_eq!(next_event(&mut during).await["type"], "response.created");
        let done = next_event(&mut during).await;
        assert_eq!(
            done["response"]["usage"]["output_tokens"], 100,
            "clamped to what the local meter has left: {done}"
        );
        redis.restart().await;
        // What the outage spent reaches Redis once it is back.
        eventually(|| async { store.deferred_settlements() == 0 }).await;
        assert_eq!(spent(&budget, "alice").await.0, 1_000);
        drop(_before);
    }

    #[tokio::test]
    async fn sessions_racing_for_the_last_units_overspend_by_at_most_one_reservation() {
        const SESSIONS: usize = 6;
        let redis = RedisServer::start().await;
        let upstream = billing_upstream().await;
        let limits = Limits::new().with(Limit::tokens(Window::Day, 1_000));
        let replicas = replicas(&redis, &upstream, limits, |b| b.estimate(100, 400, 64)).await;
        let mut clients = Vec::new();
        for n in 0..SESSIONS {
            let gateway = if n % 2 == 0 { &replicas.a } else { &replicas.b };
            clients.push(open_as(gateway, "alice").await);
        }
        // Every session asks for 100 + 400 at once; each response costs
        // what it was allowed.
        let create = response_create(100, 400, Some(400));
        for client in &mut clients {
            send_text(client, &create).await;
        }
        let mut outcomes = Vec::new();
        for client in &mut clients {
            outcomes.push(
                next_event(client).await["type"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let started = outcomes.iter().filter(|t| *t == "response.created").count();
        assert!(started >= 2, "{outcomes:?}");
        assert!(
            outcomes.iter().any(|t| t == "error"),
            "some session was refused: {outcomes:?}"
        );
        eventually(|| async { spent(&replicas.budget_a, "alice").await.1 == 0 }).await;
        let (spent, _) = spent(&replicas.budget_a, "alice").await;
        // Reservations kept the total within the budget; the rule is one
        // reservation at most.
        assert!(spent <= 1_000 + 500, "{spent}");
    }
}
