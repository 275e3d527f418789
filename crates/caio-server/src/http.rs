//! The HTTP/1.1 server loop: takes the connections [`Listener`] admits and
//! serves each with hyper, with the read buffer of every connection bounded
//! (`limits.read_buffer_bytes`). Hyper's own default lets a connection's
//! buffer grow to about 400 KB while a large body or head streams in, and
//! keeps it for as long as the connection lives: a hundred connections each
//! waiting on a slow model server held some 75 MB that way. The bound also
//! caps a request head: a head that does not fit is answered `431`.
//!
//! At shutdown it stops accepting, asks every connection to finish its
//! request in progress and close (hyper's graceful shutdown), and returns
//! when they all have; the caller bounds that wait.
//!
//! This module must never look at a request: what to answer is the
//! application's, and which connections may open is [`connections`]'.
//!
//! [`connections`]: crate::connections

use std::future::Future;
use std::pin::pin;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::connections::Listener;

/// Serves `app` on the connections of `listener`, each with a read buffer
/// of at most `read_buffer` bytes (at least 8 KiB), until `shutdown`
/// completes and every connection has closed. Handlers find the client as
/// `ConnectInfo<Peer>`.
pub async fn serve(
    mut listener: Listener,
    app: Router,
    read_buffer: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // A connection task holds a receiver of `closed`; the loop's end waits
    // until none is left. Dropping `stop` asks every task to close.
    let (stop, stopping) = watch::channel(());
    let (closed_sender, closed) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = app.clone().map_request(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer.clone()));
            request.map(Body::new)
        });
        let mut stopping = stopping.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.max_buf_size(read_buffer.max(MIN_READ_BUFFER));
            let mut connection = pin!(builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service)));
            let mut asked = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(e) = served {
                            tracing::debug!(target: "caio", error = %e, "a connection ended with an error");
                        }
                        break;
                    }
                    _ = stopping.changed(), if !asked => {
                        asked = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(closed);
        });
    }
    drop(listener);
    drop(stop);
    drop(closed);
    closed_sender.closed().await;
}

/// The smallest read buffer hyper takes (it panics below it).
pub const MIN_READ_BUFFER: usize = 8192;
