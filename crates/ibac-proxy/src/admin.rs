//! The admin port: `/healthz` (the process runs), `/readyz` (a policy is
//! loaded and the SVID is current) and `/metrics` (Prometheus text).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::identity::ProxyIdentity;
use crate::policy_source::PolicyWatch;

#[derive(Clone)]
struct Admin {
    identity: ProxyIdentity,
    policy: PolicyWatch,
}

/// The admin routes.
pub(crate) fn router(identity: ProxyIdentity, policy: PolicyWatch) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Admin { identity, policy })
}

async fn ready(State(admin): State<Admin>) -> impl IntoResponse {
    if admin.policy.borrow().is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no policy loaded yet\n");
    }
    if !admin.identity.is_current() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the SVID has expired\n");
    }
    (StatusCode::OK, "ready\n")
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::global().encode(),
    )
}
