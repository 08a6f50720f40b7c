//! Connecting to one of an upstream's resolved addresses: the families
//! interleaved and the attempts raced (RFC 8305, "Happy Eyeballs"), so that
//! a black-holed address (often IPv6 on cloud machines) costs a quarter of
//! a second instead of the whole connect timeout.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::TcpStream;

/// How long an attempt runs alone before the next one starts (RFC 8305
/// recommends 250 ms).
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Orders `addresses` for connecting: the family of the first (the
/// resolver's preference) first, then alternating with the other family.
pub(crate) fn interleave(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addresses.first() else {
        return addresses;
    };
    let preferred = first.is_ipv6();
    let (mut ours, mut others): (Vec<_>, Vec<_>) = addresses
        .into_iter()
        .partition(|address| address.is_ipv6() == preferred);
    let mut ordered = Vec::with_capacity(ours.len() + others.len());
    let (mut ours, mut others) = (ours.drain(..), others.drain(..));
    loop {
        match (ours.next(), others.next()) {
            (None, None) => return ordered,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
}

/// Connects to the first of `addresses` that answers. One attempt starts
/// at once, and the next one `delay` later or as soon as an attempt fails;
/// the first connection wins and the other attempts are dropped. Returns
/// the last error when every attempt failed.
pub(crate) async fn connect_first(
    addresses: &[SocketAddr],
    delay: Duration,
) -> io::Result<TcpStream> {
    let connect = |address: SocketAddr| TcpStream::connect(address);
    let mut waiting = addresses.iter().copied();
    let mut attempts = FuturesUnordered::new();
    let mut last_error = None;
    let next_start = tokio::time::sleep(delay);
    tokio::pin!(next_start);
    loop {
        if attempts.is_empty() {
            match waiting.next() {
                Some(address) => {
                    attempts.push(connect(address));
                    next_start
                        .as_mut()
                        .reset(tokio::time::Instant::now() + delay);
                }
                None => {
                    return Err(last_error.unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "the host has no addresses")
                    }));
                }
            }
        }
        let more = waiting.len() > 0;
        tokio::select! {
            Some(result) = attempts.next() => match result {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    last_error = Some(error);
                    // A failed attempt gives its turn to the next at once.
                    if let Some(address) = waiting.next() {
                        attempts.push(connect(address));
                        next_start.as_mut().reset(tokio::time::Instant::now() + delay);
                    }
                }
            },
            () = &mut next_start, if more => {
                if let Some(address) = waiting.next() {
                    attempts.push(connect(address));
                }
                next_start.as_mut().reset(tokio::time::Instant::now() + delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use tokio::net::{TcpListener, TcpSocket};

    use super::*;

    fn v4(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), 443)
    }

    fn v6(last: u16) -> SocketAddr {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)),
            443,
        )
    }

    #[test]
    fn families_alternate_starting_with_the_first() {
        assert_eq!(
            interleave(vec![v6(1), v6(2), v6(3), v4(1), v4(2)]),
            vec![v6(1), v4(1), v6(2), v4(2), v6(3)]
        );
        assert_eq!(
            interleave(vec![v4(1), v4(2), v6(1)]),
            vec![v4(1), v6(1), v4(2)]
        );
        assert_eq!(interleave(vec![v4(1), v4(2)]), vec![v4(1), v4(2)]);
        assert_eq!(interleave(Vec::new()), Vec::new());
    }

    /// A loopback listener that never answers a new connection: its accept
    /// queue (backlog 0) is full, so the kernel drops further SYNs, as a
    /// black-holed route does. Returns its address and what keeps it full.
    async fn black_hole() -> (SocketAddr, Vec<TcpStream>, TcpListener) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let address = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        loop {
            let attempt = TcpStream::connect(address);
            match tokio::time::timeout(Duration::from_millis(500), attempt).await {
                Ok(Ok(stream)) => queued.push(stream),
                Ok(Err(error)) => panic!("{error}"),
                Err(_) => return (address, queued, listener),
            }
            assert!(queued.len() < 64, "the accept queue never filled");
        }
    }

    #[tokio::test]
    async fn a_black_holed_first_address_costs_one_attempt_delay() {
        let (dead, _queued, _listener) = black_hole().await;
        let alive = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let alive_address = alive.local_addr().unwrap();
        // Sequential attempts would wait for the kernel to give up on the
        // first address (minutes); the race does not.
        let stream = tokio::time::timeout(
            Duration::from_secs(30),
            connect_first(&[dead, alive_address], ATTEMPT_DELAY),
        )
        .await
        .expect("the second address wins the race")
        .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), alive_address);
    }

    #[tokio::test]
    async fn a_refused_address_gives_its_turn_at_once_and_the_last_error_is_kept() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let alive = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let alive_address = alive.local_addr().unwrap();
        // With an hour of delay, only a failure can start the next attempt.
        let hour = Duration::from_secs(3600);
        let stream = tokio::time::timeout(
            Duration::from_secs(30),
            connect_first(&[closed, alive_address], hour),
        )
        .await
        .expect("a refusal starts the next attempt")
        .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), alive_address);

        let error = connect_first(&[closed, closed], hour).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        let error = connect_first(&[], hour).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
