//! The webhooks the API server calls: validation and conversion, served over
//! TLS with a certificate from the operator's own CA, which a Secret keeps
//! across restarts.

pub mod config;
pub mod convert;
pub mod secret;
pub mod tls;
pub mod unique;
pub mod validate;

use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// The webhook routes; `client` reaches the API server for the checks that
/// look at more than one object.
pub fn router(client: kube::Client) -> Router {
    Router::new()
        .route(
            "/validate",
            post(|Json(review): Json<Value>| async move {
                Json(validate::review_in_cluster(&client, &review).await)
            }),
        )
        .route(
            "/convert",
            post(|Json(review): Json<Value>| async move { Json(convert::review(&review)) }),
        )
}
