//! The scripted upstream: a minimal realtime server, the same for the direct
//! path and the gateway.
//!
//! Every session starts with a `session.created` event, then echoes each text
//! and binary message, except `bench.flood COUNT SIZE`, which it answers with
//! COUNT events of SIZE bytes written as fast as the socket takes them, and
//! `bench.paced COUNT SIZE INTERVAL_MS`, which it answers with COUNT events
//! of SIZE bytes, one every INTERVAL_MS, each stamped with its send time.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::accept_async_with_config;
use tokio_tungstenite::tungstenite::Message;

use crate::{peer, process};

/// Runs the upstream until the parent closes stdin.
pub(crate) fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        process::announce(listener.local_addr().expect("local address"));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(session(stream));
                }
                Err(error) => {
                    eprintln!("upstream: accept failed: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}

async fn session(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut socket) = accept_async_with_config(stream, Some(peer::config())).await else {
        return;
    };
    if socket.send(Message::Text(peer::greeting())).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = &message
            && let Some((count, size, interval)) =
                text.strip_prefix(peer::PACED).and_then(parse_paced)
        {
            for n in 0..count {
                if n > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(interval)).await;
                }
                if socket
                    .send(Message::Text(peer::stamped_delta(size)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            continue;
        }
        let flood = match &message {
            Message::Text(text) => text.strip_prefix(peer::FLOOD).and_then(parse_flood),
            _ => None,
        };
        let sent = match (flood, message) {
            (Some((count, size)), _) => {
                let event = Message::Text(peer::event("response.output_audio.delta", size));
                let mut fed = true;
                for _ in 0..count {
                    fed = socket.feed(event.clone()).await.is_ok();
                    if !fed {
                        break;
                    }
                }
                fed && socket.flush().await.is_ok()
            }
            (None, message @ (Message::Text(_) | Message::Binary(_))) => {
                socket.send(message).await.is_ok()
            }
            // Pings are answered and closes echoed by tungstenite itself.
            (None, _) => true,
        };
        if !sent {
            return;
        }
    }
}

fn parse_flood(arguments: &str) -> Option<(usize, usize)> {
    let mut numbers = arguments.split_whitespace().map(str::parse);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(count)), Some(Ok(size))) => Some((count, size)),
        _ => None,
    }
}

fn parse_paced(arguments: &str) -> Option<(usize, usize, u64)> {
    let mut numbers = arguments.split_whitespace();
    let count = numbers.next()?.parse().ok()?;
    let size = numbers.next()?.parse().ok()?;
    let interval = numbers.next()?.parse().ok()?;
    Some((count, size, interval))
}
