//! The webhooks the API server calls: validation today (conversion next),
//! served over TLS with a certificate from the operator's own CA, which a
//! Secret keeps across restarts.

pub mod config;
pub mod secret;
pub mod tls;
pub mod validate;

use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// The webhook routes.
pub fn router() -> Router {
    Router::new().route(
        "/validate",
        post(|Json(review): Json<Value>| async move { Json(validate::review(&review)) }),
    )
}
