//! Pre-warmed upstream connections: per upstream host, a few connected
//! TCP (+TLS) sockets wait, so that a session pays only the WebSocket
//! upgrade's round trip.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::stream::UpstreamStream;

/// Where a pooled socket leads: scheme, host and port (the TLS
/// configuration is the layer's, one per pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) secure: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Opens one socket for a key (what the dialer does before the upgrade).
pub(crate) type Opener = Arc<
    dyn Fn(PoolKey) -> Pin<Box<dyn Future<Output = Option<UpstreamStream>> + Send>> + Send + Sync,
>;

/// How many sockets to keep per host, and how long one may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolConfig {
    pub(crate) per_host: usize,
    pub(crate) idle: Duration,
}

/// Ready sockets by host. Each is taken once: nothing is ever put back.
pub(crate) struct Pool {
    config: PoolConfig,
    hosts: Mutex<HashMap<PoolKey, Host>>,
}

struct Host {
    ready: VecDeque<(Instant, UpstreamStream)>,
    /// Sockets being opened for it now.
    opening: usize,
    /// Whether a task keeps this host's sockets fresh.
    tended: bool,
    /// When a session last asked for one of its sockets.
    wanted: Instant,
}

impl Default for Host {
    fn default() -> Self {
        Self {
            ready: VecDeque::new(),
            opening: 0,
            tended: false,
            wanted: Instant::now(),
        }
    }
}

/// A host no session asked for during this many idle periods (10 minutes
/// with the default 20 s) is no longer kept warm, until a session asks again.
const RETIRE_AFTER_IDLE_PERIODS: u32 = 30;

impl Pool {
    pub(crate) fn new(config: PoolConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// A ready socket to `key`, if one is waiting, not expired, and not
    /// closed by the upstream while it waited; then the host is refilled
    /// in the background (the first take of a host starts its warming).
    pub(crate) fn take(self: &Arc<Self>, key: &PoolKey, opener: &Opener) -> Option<UpstreamStream> {
        let now = Instant::now();
        let taken = {
            let mut hosts = self.hosts.lock().expect("not poisoned");
            let host = hosts.entry(key.clone()).or_default();
            host.wanted = now;
            let mut taken = None;
            while let Some((since, stream)) = host.ready.pop_front() {
                if now.duration_since(since) < self.config.idle && is_open(&stream) {
                    taken = Some(stream);
                    break;
                }
            }
            if !host.tended {
                host.tended = true;
                tokio::spawn(tend(Arc::downgrade(self), key.clone(), Arc::clone(opener)));
            }
            taken
        };
        self.refill(key, opener);
        taken
    }

    /// Opens sockets in the background until `key` has `per_host` ready
    /// or being opened.
    fn refill(self: &Arc<Self>, key: &PoolKey, opener: &Opener) {
        let missing = {
            let mut hosts = self.hosts.lock().expect("not poisoned");
            let host = hosts.entry(key.clone()).or_default();
            let missing = self
                .config
                .per_host
                .saturating_sub(host.ready.len() + host.opening);
            host.opening += missing;
            missing
        };
        for _ in 0..missing {
            let pool = Arc::downgrade(self);
            let (key, open) = (key.clone(), opener(key.clone()));
            tokio::spawn(async move {
                let stream = open.await;
                let Some(pool) = pool.upgrade() else { return };
                let mut hosts = pool.hosts.lock().expect("not poisoned");
                // A host retired meanwhile gets nothing (the socket closes);
                // one asked for again since counts its own openings (an
                // older one ending is at worst one socket early).
                let Some(host) = hosts.get_mut(&key) else {
                    return;
                };
                host.opening = host.opening.saturating_sub(1);
                if let Some(stream) = stream {
                    host.ready.push_back((Instant::now(), stream));
                }
            });
        }
    }

    /// Drops the sockets of `key` that waited too long or were closed, and
    /// says when the next one expires; `Err` when no session wanted the
    /// host for long: then it is forgotten, sockets and all.
    fn expire(&self, key: &PoolKey) -> Result<Option<Instant>, Retired> {
        let now = Instant::now();
        let mut hosts = self.hosts.lock().expect("not poisoned");
        let Some(host) = hosts.get_mut(key) else {
            return Err(Retired);
        };
        if now.duration_since(host.wanted) > self.config.idle * RETIRE_AFTER_IDLE_PERIODS {
            hosts.remove(key);
            return Err(Retired);
        }
        host.ready.retain(|(since, stream)| {
            now.duration_since(*since) < self.config.idle && is_open(stream)
        });
        Ok(host
            .ready
            .front()
            .map(|(since, _)| *since + self.config.idle))
    }

    #[cfg(test)]
    fn ready(&self, key: &PoolKey) -> usize {
        let hosts = self.hosts.lock().expect("not poisoned");
        hosts.get(key).map_or(0, |host| host.ready.len())
    }
}

/// A host no longer kept warm.
struct Retired;

/// Keeps a host's sockets fresh while the pool lives and sessions want
/// them: replaces each one when it expires, before the upstream's own idle
/// timeout would close it.
async fn tend(pool: Weak<Pool>, key: PoolKey, opener: Opener) {
    loop {
        let (next, idle) = {
            let Some(pool) = pool.upgrade() else { return };
            let Ok(next) = pool.expire(&key) else { return };
            pool.refill(&key, &opener);
            (next, pool.config.idle)
        };
        // Nothing ready yet: look again in a while.
        let wake = next.unwrap_or_else(|| Instant::now() + idle.min(Duration::from_secs(1)));
        tokio::time::sleep_until(wake.max(Instant::now() + Duration::from_millis(10))).await;
    }
}

/// Whether the upstream still has the socket open: a look at its receive
/// queue without taking anything. End of stream or an error means closed;
/// bytes waiting (a TLS session ticket, or an alert) leave the socket to
/// the upgrade, which dials afresh if it fails.
fn is_open(stream: &UpstreamStream) -> bool {
    let tcp: &TcpStream = match stream {
        UpstreamStream::Plain(tcp) => tcp,
        UpstreamStream::Tls(tls) => tls.get_ref().0,
    };
    let mut byte = [MaybeUninit::<u8>::uninit()];
    match socket2::SockRef::from(tcp).peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::net::TcpListener;

    use super::*;

    /// An opener that connects to `listener`, counting the sockets opened.
    fn opener(address: std::net::SocketAddr, opened: Arc<AtomicUsize>) -> Opener {
        Arc::new(move |_key| {
            let opened = Arc::clone(&opened);
            Box::pin(async move {
                opened.fetch_add(1, Ordering::SeqCst);
                TcpStream::connect(address)
                    .await
                    .ok()
                    .map(UpstreamStream::Plain)
            })
        })
    }

    /// A listener that accepts and keeps every connection: its address, an
    /// opener to it, and how many sockets that opened.
    async fn accepting() -> (std::net::SocketAddr, Opener, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                accepted.push(socket);
            }
        });
        let opened = Arc::new(AtomicUsize::new(0));
        (address, opener(address, Arc::clone(&opened)), opened)
    }

    fn key(port: u16) -> PoolKey {
        PoolKey {
            secure: false,
            host: "127.0.0.1".into(),
            port,
        }
    }

    async fn eventually(mut condition: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the condition never held");
    }

    #[tokio::test]
    async fn a_host_no_session_wants_is_no_longer_kept_warm() {
        let (address, open, opened) = accepting().await;
        // Retired after 30 idle periods: 1.5 s.
        let pool = Pool::new(PoolConfig {
            per_host: 1,
            idle: Duration::from_millis(50),
        });
        let key = key(address.port());
        assert!(pool.take(&key, &open).is_none());
        eventually(|| pool.hosts.lock().unwrap().get(&key).is_none()).await;
        let retired = opened.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(opened.load(Ordering::SeqCst), retired, "no more dials");
        // Asked for again: warm again.
        pool.take(&key, &open);
        eventually(|| pool.ready(&key) == 1).await;
    }

    #[tokio::test]
    async fn takes_refill_and_sockets_expire_and_are_replaced() {
        let (address, open, opened) = accepting().await;
        let pool = Pool::new(PoolConfig {
            per_host: 2,
            // Long enough that nothing expires between the steps below
            // on a loaded machine; the last step waits for it.
            idle: Duration::from_secs(2),
        });
        let key = key(address.port());
        assert!(pool.take(&key, &open).is_none(), "cold at first");
        eventually(|| pool.ready(&key) == 2).await;
        assert_eq!(opened.load(Ordering::SeqCst), 2);

        let first = pool.take(&key, &open).expect("a warm socket");
        let second = pool.take(&key, &open).expect("a warm socket");
        let (UpstreamStream::Plain(first), UpstreamStream::Plain(second)) = (first, second) else {
            unreachable!()
        };
        assert_ne!(
            first.local_addr().unwrap(),
            second.local_addr().unwrap(),
            "never twice"
        );
        eventually(|| pool.ready(&key) == 2).await;
        assert_eq!(opened.load(Ordering::SeqCst), 4, "refilled after each take");

        // Expired sockets are closed and replaced.
        eventually(|| opened.load(Ordering::SeqCst) >= 6).await;
        eventually(|| pool.ready(&key) == 2).await;
    }

    #[tokio::test]
    async fn a_socket_closed_by_the_upstream_is_not_open() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = UpstreamStream::Plain(TcpStream::connect(address).await.unwrap());
        let (mut server, _) = listener.accept().await.unwrap();
        assert!(is_open(&client), "idle and open");
        tokio::io::AsyncWriteExt::write_all(&mut server, b"x")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(is_open(&client), "bytes waiting are left to the upgrade");

        let idle = UpstreamStream::Plain(TcpStream::connect(address).await.unwrap());
        let (server, _) = listener.accept().await.unwrap();
        drop(server);
        eventually(|| !is_open(&idle)).await;
    }
}
