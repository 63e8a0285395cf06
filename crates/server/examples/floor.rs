//! The benchmark floor: what `sealgate serve`'s HTTP/TLS stack can carry when the webhook does
//! nothing. Not part of the product; `scripts/bench-serve` runs it beside `serve`.
//!
//! Same listener (`sealgate_server::listener::accept`: rustls with the ring provider and the
//! same ALPN, hyper's auto HTTP/1.1 + HTTP/2 builder with the same timers, TCP_NODELAY), same
//! self-signed certificate code, same multi-threaded Tokio runtime, same bounded body reader and
//! the same AdmissionReview types (`parse_review`); the answer is a canned allow for the
//! request's uid, encoded as `serve` encodes its answers.
//!
//!   cargo run --release -p sealgate-server --example floor -- --listen 127.0.0.1:0 --data-dir DIR
//!
//! Prints, as `serve` does: `sealgate listening on https://ADDR`, `CA certificate: PATH`, `ready`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sealgate_server::admission::{AdmissionResponse, parse_review};
use sealgate_server::metrics::Metrics;
use sealgate_server::routes::read_body;
use sealgate_server::tls::{self, CertResolver, SelfSigned};

/// The body must arrive within this, as `serve`'s default budget bounds it.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    if let Err(e) = run() {
        eprintln!("floor: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut data_dir = PathBuf::from("floor-data");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--data-dir" => data_dir = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other} (--listen, --data-dir)")),
        }
    }
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let host = listen.rsplit_once(':').map_or(listen.as_str(), |(h, _)| h);
    let self_signed = SelfSigned::new(&data_dir, host, &[]);
    self_signed.ensure().map_err(|e| e.to_string())?;
    let resolver =
        CertResolver::new(self_signed.files(), Metrics::new()).map_err(|e| e.to_string())?;
    let config = tls::server_config(Arc::new(resolver)).map_err(|e| e.to_string())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("binding {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let router = Router::new()
            .route("/mutate", post(allow))
            .route("/validate", post(allow))
            .route("/readyz", get(|| async { "ready" }));
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "sealgate listening on https://{addr}");
            let _ = writeln!(out, "CA certificate: {}", self_signed.ca_path().display());
            let _ = writeln!(out, "ready");
            let _ = out.flush();
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let graceful =
            sealgate_server::listener::accept(listener, Arc::new(config), router, shutdown).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
        Ok(())
    })
}

/// Reads and parses the AdmissionReview as `serve` does, then allows it.
async fn allow(request: Request) -> Response {
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(request.into_body())).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(_) => return (StatusCode::REQUEST_TIMEOUT, "body timeout").into_response(),
    };
    match parse_review(&body) {
        Ok(review) => (
            [(header::CONTENT_TYPE, "application/json")],
            AdmissionResponse::allow(&review.uid).to_review_json(),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
