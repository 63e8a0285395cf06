//! The HTTP routes. Handlers only decode and encode; [`review`](crate::review) decides.
//!
//! | route            | answer                                                              |
//! |------------------|---------------------------------------------------------------------|
//! | `POST /mutate`   | AdmissionReview: decision, warnings, JSON patch                     |
//! | `POST /validate` | AdmissionReview: decision, warnings, never a patch                  |
//! | `GET /healthz`   | 200 while the process serves                                        |
//! | `GET /readyz`    | 200 once policies are loaded; 503 before and while shutting down    |
//! | `GET /metrics`   | Prometheus metrics (OpenMetrics text, prometheus-client's encoder)  |
//! | `GET /audit`     | JSON array of audit records; `since`, `image`, `namespace`, `result`, `dryRun`, `limit` |
//!
//! With an audit token (`--audit-token-file`), `GET /audit` answers 401 unless the request
//! carries `Authorization: Bearer TOKEN`.
//!
//! A body that is not a v1 AdmissionReview with a request gets HTTP 400 (413 when larger than
//! 3 MiB, 408 when it does not arrive within the budget) with a one-line message. An oversized
//! body is read on and thrown away (up to 16 MiB more, within the budget) before the 413 goes out,
//! so HTTP/2 and HTTP/1.1 clients alike read the answer rather than a reset or a broken pipe.

use std::collections::HashMap;
use std::time::Instant;

use sealgate_core::timestamp::Clock as _;
use sealgate_registry::driver::SystemClock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;

use crate::admission::{ReviewError, parse_review};
use crate::audit::{AuditError, filter_from_query, now_unix_ms, query_async};
use crate::config::MAX_BODY_BYTES;
use crate::review::{Webhook, review};
use crate::state::AppState;

/// The router over `state`, for [`serve`](crate::Server::serve) and for in-process tests
/// (`tower::ServiceExt::oneshot`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/audit", get(audit))
        .fallback(not_found)
        .with_state(state)
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    admit(state, Webhook::Mutate, request).await
}

async fn validate(State(state): State<AppState>, request: Request) -> Response {
    admit(state, Webhook::Validate, request).await
}

async fn admit(state: AppState, webhook: Webhook, request: Request) -> Response {
    let received = Instant::now();
    let budget = state.fetcher().budget();
    let body = match tokio::time::timeout(budget, read_body(request.into_body())).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return refuse(webhook, e),
        Err(_) => {
            return refuse(
                webhook,
                ReviewError::BodyTimeout {
                    budget: crate::config::format_duration(budget),
                },
            );
        }
    };
    let admission = match parse_review(&body) {
        Ok(r) => r,
        Err(e) => return refuse(webhook, e),
    };
    let response = review(&state, webhook, admission, received).await;
    (
        [(header::CONTENT_TYPE, "application/json")],
        response.to_review_json(),
    )
        .into_response()
}

/// How much of an oversized body is read and thrown away before the 413 is sent, so the client,
/// still sending, reads the answer instead of a reset stream (HTTP/2) or a broken pipe
/// (HTTP/1.1). A larger body is cut off once this much is discarded: its sender gets a reset.
const DISCARD_BYTES: usize = 16 * 1024 * 1024;

/// The request body, at most [`MAX_BODY_BYTES`]; a larger one is drained (at most
/// [`DISCARD_BYTES`] more) and refused as [`ReviewError::TooLarge`]. The caller bounds the time.
pub async fn read_body(mut body: Body) -> Result<Bytes, ReviewError> {
    let mut kept = Vec::new();
    let mut discarded = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReviewError::Body {
            detail: e.to_string(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if discarded == 0 && kept.len() + data.len() <= MAX_BODY_BYTES {
            kept.extend_from_slice(&data);
            continue;
        }
        if discarded == 0 {
            kept = Vec::new();
        }
        discarded = discarded.saturating_add(data.len()).max(1);
        if discarded > DISCARD_BYTES {
            break;
        }
    }
    if discarded > 0 {
        return Err(ReviewError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(Bytes::from(kept))
}

fn refuse(webhook: Webhook, error: ReviewError) -> Response {
    let status = match error {
        ReviewError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ReviewError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = error.to_string();
    tracing::warn!(
        webhook = webhook.as_str(),
        status = status.as_u16(),
        error = %message,
        "refused a request that is not an AdmissionReview"
    );
    text(status, message)
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok".into())
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        text(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
    } else if state.is_ready() {
        text(StatusCode::OK, "ready".into())
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "loading policies".into())
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let now = sealgate_core::timestamp::unix_seconds(SystemClock.now());
    let stats = state.fetcher().request_stats();
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics().render(now, &stats),
    )
        .into_response()
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(token) = state.audit_token()
        && !token.admits(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )
    {
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            "GET /audit needs the server's audit token: send `Authorization: Bearer TOKEN` with the token of --audit-token-file".into(),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let Some(path) = state.audit_db().cloned() else {
        return text(
            StatusCode::NOT_FOUND,
            "this server keeps no audit trail".into(),
        );
    };
    let filter = match filter_from_query(&params, now_unix_ms()) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match query_async(path, filter).await {
        Ok(records) => axum::Json(records).into_response(),
        Err(e @ AuditError::Missing { .. }) => text(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "audit query failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {}; sealgate serves POST /mutate, POST /validate, GET /healthz, GET /readyz, GET /metrics and GET /audit",
            uri.path()
        ),
    )
}

fn text(status: StatusCode, mut message: String) -> Response {
    message.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}
