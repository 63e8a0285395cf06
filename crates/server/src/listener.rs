//! The HTTPS listener: TLS handshakes under a timeout, HTTP/1.1 and HTTP/2 on one port (ALPN),
//! each connection served by a router and tracked for a graceful drain. `sealgate serve` and the
//! benchmark floor (`examples/floor.rs`) run the same loop, so the floor measures this stack.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this (HTTP/1; slow-loris protection).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and serves each with `router` over TLS until `shutdown`
/// resolves; returns the open connections, for the caller to drain
/// ([`GracefulShutdown::shutdown`]).
pub async fn accept(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait a moment rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Responses go out at once: without this, Nagle's algorithm holds the last
                // segment of a response until the client's delayed ACK (40 ms).
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                let service = TowerToHyperService::new(router.clone());
                let builder = Arc::clone(&builder);
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                        return;
                    };
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    let _ = watcher.watch(connection).await;
                });
            }
        }
    }
    drop(listener);
    graceful
}
