//! What this test process holds, read from `/proc`: open files, sockets
//! and the kernel queues of loopback TCP connections.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Open file descriptors of this process that are sockets.
pub fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The kernel's queues of one TCP socket: bytes written but not yet
/// acknowledged by the peer, and bytes received but not yet read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpQueues {
    pub unacked: u64,
    pub unread: u64,
}

impl TcpQueues {
    pub fn total(self) -> u64 {
        self.unacked + self.unread
    }
}

/// The queues of the IPv4 TCP socket `local` -> `remote`, from the
/// `/proc/net/tcp` of this thread's network namespace.
pub fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<TcpQueues> {
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap();
    tcp_queues_in(&table, Some(local), remote)
}

/// The queues of the socket to `remote` (from `local`, or from anywhere)
/// in a `/proc/net/tcp` table.
pub fn tcp_queues_in(
    table: &str,
    local: Option<SocketAddr>,
    remote: SocketAddr,
) -> Option<TcpQueues> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if local.is_some_and(|local| parse_address(fields[1]) != Some(local))
            || parse_address(fields[2])? != remote
        {
            return None;
        }
        let (unacked, unread) = fields[4].split_once(':')?;
        Some(TcpQueues {
            unacked: u64::from_str_radix(unacked, 16).ok()?,
            unread: u64::from_str_radix(unread, 16).ok()?,
        })
    })
}

/// `0100007F:1F90` (address in host byte order, port in hex) as an address.
fn parse_address(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(ip.to_ne_bytes()),
        port,
    )))
}

/// The largest send and receive buffers the kernel grows a TCP socket to
/// (the third field of `tcp_wmem` and `tcp_rmem`).
pub fn tcp_buffer_limits() -> (u64, u64) {
    let max = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    (max("tcp_wmem"), max("tcp_rmem"))
}

impl super::RawClient {
    /// The client's end of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }
}
