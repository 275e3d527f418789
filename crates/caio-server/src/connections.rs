//! Connections, bounded by configuration and not by the clients' good
//! manners: how many are open (in all and per client address, below the
//! process's descriptor limit), how long a connection may stay without a
//! request in progress (a request head must arrive whole within
//! `header_read`, whether it is the first or the next on a kept-alive
//! connection: a client trickling a head a byte at a time does not reset
//! it), and closing at shutdown: connections with no request in progress
//! close at once, so that a half-sent head cannot hold the process.
//!
//! When every slot is taken, a new connection takes the place of the
//! oldest one with no request in progress; with none, it is closed at once
//! (so the accept queue drains and `/healthz` answers as soon as a slot
//! frees). The middleware tells each connection when a request starts and
//! ends ([`Activity`]).
//!
//! This module must never read or write what flows on a connection: it
//! counts, times and closes.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The limits on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a connection may stay with no request in progress: the time
    /// a request head has to arrive whole, and the idle keep-alive time.
    pub header_read: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_per_address: usize,
    /// Largest read buffer of one connection, in bytes (at least 8 KiB): the
    /// most a connection holds of what its client sent and not yet taken,
    /// and the largest request head.
    pub read_buffer: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(10),
            max_connections: 4096,
            max_per_address: 256,
            read_buffer: 64 << 10,
        }
    }
}

/// One open connection, as the registry and the middleware see it.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    peer: IpAddr,
    /// Requests in progress on it.
    active: AtomicUsize,
    /// When it last had no request in progress, as a count of ms since the
    /// registry's start (so that it fits an atomic).
    idle_since_ms: AtomicU64,
    /// Set to make it close at its next read.
    closing: AtomicBool,
    /// Who to wake when it must close or its idle time restarts.
    reader: Mutex<Option<Waker>>,
}

impl Connection {
    fn wake(&self) {
        if let Some(waker) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
            waker.wake();
        }
    }

    fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.wake();
    }
}

/// Every open connection.
#[derive(Debug)]
pub struct Registry {
    limits: ConnectionLimits,
    started: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    shutting_down: AtomicBool,
    refused: AtomicU64,
    evicted: AtomicU64,
}

impl Registry {
    /// A registry enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Arc<Registry> {
        Arc::new(Registry {
            limits,
            started: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    /// The limits it enforces.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Connections closed at once for want of a slot, and connections
    /// closed to make room, since the start.
    pub fn turned_away(&self) -> (u64, u64) {
        (self.refused.load(Ordering::Relaxed), self.evicted.load(Ordering::Relaxed))
    }

    /// Takes a slot for a connection from `peer`, making room by closing the
    /// oldest connection with no request in progress (of the same address
    /// when that address is at its limit); `None` when there is no room.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Arc<Connection>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let from_peer = open.values().filter(|c| c.peer == peer).count();
        let full = open.len() >= self.limits.max_connections;
        let peer_full = from_peer >= self.limits.max_per_address;
        if full || peer_full {
            let victim = open
                .values()
                .filter(|c| c.active.load(Ordering::SeqCst) == 0 && !c.closing.load(Ordering::SeqCst))
                .filter(|c| !peer_full || c.peer == peer)
                .min_by_key(|c| (c.idle_since_ms.load(Ordering::SeqCst), c.id))
                .cloned();
            match victim {
                Some(victim) => {
                    victim.close();
                    open.remove(&victim.id);
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            closing: AtomicBool::new(false),
            reader: Mutex::new(None),
        });
        open.insert(connection.id, connection.clone());
        Some(connection)
    }

    fn remove(&self, connection: &Connection) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&connection.id);
    }

    /// Stops: every connection with no request in progress closes now, and
    /// the others as soon as their request ends.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for connection in open.values().filter(|c| c.active.load(Ordering::SeqCst) == 0) {
            connection.close();
        }
    }
}

/// A request in progress on a connection: counted from the moment its head
/// has been read until the value is dropped (the middleware keeps it until
/// the response's last byte).
#[derive(Debug)]
pub struct Activity {
    connection: Arc<Connection>,
    registry: Arc<Registry>,
}

impl Activity {
    /// Marks a request as started on `peer`'s connection.
    pub fn start(peer: &Peer) -> Activity {
        peer.connection.active.fetch_add(1, Ordering::SeqCst);
        Activity { connection: peer.connection.clone(), registry: peer.registry.clone() }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        if self.connection.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.connection.idle_since_ms.store(self.registry.now_ms(), Ordering::SeqCst);
            if self.registry.shutting_down.load(Ordering::SeqCst) {
                self.connection.close();
            } else {
                // Its reader arms the idle deadline anew.
                self.connection.wake();
            }
        }
    }
}

/// The connection a request came on (the middleware's handle), and the
/// client's address.
#[derive(Debug, Clone)]
pub struct Peer {
    connection: Arc<Connection>,
    registry: Arc<Registry>,
    /// The client's address.
    pub address: SocketAddr,
}

/// A TCP listener that admits connections within the limits.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    registry: Arc<Registry>,
}

impl Listener {
    /// Accepts on `inner` within `registry`'s limits.
    pub fn new(inner: TcpListener, registry: Arc<Registry>) -> Listener {
        Listener { inner, registry }
    }

    /// The next connection within the limits, and its peer; errors of
    /// `accept` (out of descriptors) are logged and waited out.
    pub async fn accept(&mut self) -> (Guarded, Peer) {
        loop {
            let (stream, address) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or another passing error: make room
                    // if a connection is idle, and try again shortly.
                    tracing::warn!(target: "caio", error = %e, "accept failed");
                    let oldest_idle = {
                        let open = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
                        open.values()
                            .filter(|c| c.active.load(Ordering::SeqCst) == 0)
                            .min_by_key(|c| (c.idle_since_ms.load(Ordering::SeqCst), c.id))
                            .cloned()
                    };
                    if let Some(connection) = oldest_idle {
                        connection.close();
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let Some(connection) = self.registry.admit(address.ip()) else {
                // No room: closed at once, so the queue drains.
                drop(stream);
                continue;
            };
            let deadline = Box::pin(tokio::time::sleep(self.registry.limits.header_read));
            let peer = Peer { connection: connection.clone(), registry: self.registry.clone(), address };
            return (Guarded { stream, connection, registry: self.registry.clone(), deadline }, peer);
        }
    }
}

/// A connection that closes when it has no request in progress for longer
/// than the header-read time, or when told to.
#[derive(Debug)]
pub struct Guarded {
    stream: TcpStream,
    connection: Arc<Connection>,
    registry: Arc<Registry>,
    deadline: Pin<Box<Sleep>>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.registry.remove(&self.connection);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        *this.connection.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        if this.connection.closing.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::ConnectionAborted)));
        }
        if this.connection.active.load(Ordering::SeqCst) == 0 {
            let idle_since = this.connection.idle_since_ms.load(Ordering::SeqCst);
            let deadline = this.registry.started + Duration::from_millis(idle_since) + this.registry.limits.header_read;
            if this.deadline.deadline() != deadline {
                this.deadline.as_mut().reset(deadline);
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no whole request head within the header-read time",
                )));
            }
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

use std::future::Future as _;

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The soft limit on open descriptors of this process, where the system
/// says it (Linux's `/proc/self/limits`).
pub fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Raises the soft limit on open descriptors to the hard limit, where the
/// system allows: a server started from a shell with the usual soft limit
/// of 1,024 may then hold as many connections as its operator allowed.
/// Answers the soft limit before and after, or why it could not.
pub fn raise_descriptor_limit() -> Result<(u64, u64), String> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (limit.current, limit.maximum) else {
        return Err("the descriptor limit is unlimited already".into());
    };
    // Unlimited hard limits are not taken literally: the kernel refuses a
    // soft limit above `fs.nr_open` (1,048,576 by default).
    let target = hard.unwrap_or(1 << 20).min(1 << 20);
    if target <= soft {
        return Ok((soft, soft));
    }
    setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: hard })
        .map_err(|e| format!("cannot raise the descriptor limit from {soft} to {target}: {e}"))?;
    Ok((soft, target))
}

/// `limits` with `max_connections` kept below the descriptor limit (with
/// room for the store, the model servers and the log), and why it changed.
pub fn within_descriptors(
    mut limits: ConnectionLimits,
    descriptors: Option<usize>,
) -> (ConnectionLimits, Option<String>) {
    const RESERVED: usize = 128;
    let Some(descriptors) = descriptors else { return (limits, None) };
    let room = descriptors.saturating_sub(RESERVED).max(16);
    if limits.max_connections <= room {
        return (limits, None);
    }
    let note = format!(
        "limits.max_connections {} lowered to {room}: the process may open {descriptors} descriptors (raise it with `ulimit -n` or LimitNOFILE)",
        limits.max_connections
    );
    limits.max_connections = room;
    limits.max_per_address = limits.max_per_address.min(room);
    (limits, Some(note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_below_the_descriptor_limit() {
        let limits = ConnectionLimits::default();
        assert_eq!(within_descriptors(limits, None), (limits, None));
        assert_eq!(within_descriptors(limits, Some(1 << 20)).0, limits);
        let (lowered, note) = within_descriptors(limits, Some(256));
        assert_eq!((lowered.max_connections, lowered.max_per_address), (128, 128));
        assert!(note.unwrap().contains("ulimit -n"));
    }

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let registry = Registry::new(ConnectionLimits { max_connections: 2, max_per_address: 2, ..Default::default() });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = registry.admit(ip).unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let second = registry.admit(ip).unwrap();
        second.active.fetch_add(1, Ordering::SeqCst);
        let third = registry.admit(ip).expect("room made");
        assert!(first.closing.load(Ordering::SeqCst), "the idle one closed");
        assert!(!second.closing.load(Ordering::SeqCst), "the busy one kept");
        third.active.fetch_add(1, Ordering::SeqCst);
        assert!(registry.admit(ip).is_none(), "every slot busy: refused");
        assert_eq!(registry.turned_away(), (1, 1));
        registry.shut_down();
        assert!(!second.closing.load(Ordering::SeqCst), "a request in progress finishes");
    }
}
