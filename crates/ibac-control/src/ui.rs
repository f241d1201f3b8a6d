//! The access graph in the browser, served by `ibac up`.
//!
//! Everything the page needs is in the binary: one HTML page, a script and a
//! stylesheet written for ibac (no third-party code), and the picture itself,
//! drawn on the server by the same module as `ibac network-mapper
//! visualize`. The page asks for the picture again whenever the control
//! plane says something changed (server-sent events), keeping its zoom, pan
//! and selection.
//!
//! Access takes a token, as the API does. `ibac up` prints a link that
//! carries the read-only UI token once; the page trades it for an HttpOnly,
//! SameSite=Strict cookie and drops it from the address bar.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use futures_util::{Stream, StreamExt};
use ibac_mapper::draw::Picture;
use serde::Deserialize;

use crate::api::{Change, changes};
use crate::control::Control;
use crate::graph::{Enforcer, GraphInput, View, graph_view};

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");
const COOKIE: &str = "ibac_ui";

/// The page's routes.
pub fn router(control: Arc<Control>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/ui/app.js",
            get(|| async { static_asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { static_asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/ui/graph.json", get(graph_json))
        .route("/ui/graph.svg", get(graph_svg))
        .route("/ui/graph.png", get(graph_png))
        .route("/ui/events", get(events))
        .with_state(control)
}

fn static_asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Security headers for everything the page gets: nothing from other hosts,
/// no framing, no sniffing.
fn hardened(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// A viewer: someone whose cookie (or bearer token) holds a valid token.
struct Viewer;

impl FromRequestParts<Arc<Control>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        control: &Arc<Control>,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        match bearer.or_else(|| cookie_token(parts)) {
            Some(secret)
                if control
                    .token_caller(secret.trim())
                    .is_some_and(|c| c.is_user()) =>
            {
                Ok(Viewer)
            }
            _ => Err((
                StatusCode::UNAUTHORIZED,
                "open the access graph with the link `ibac up` printed\n",
            )
                .into_response()),
        }
    }
}

#[derive(Deserialize)]
struct Login {
    token: Option<String>,
}

const SIGN_IN: &str = "<!doctype html><meta charset=utf-8><title>ibac</title>\
<h1>ibac access graph</h1><p>Open the link <code>ibac up</code> printed \
(it carries a token), or find it again in the data directory: \
<code>ibac-data/ui.url</code>.</p>";

async fn index(
    State(c): State<Arc<Control>>,
    Query(login): Query<Login>,
    parts: Parts,
) -> Response {
    if let Some(token) = login.token {
        let valid = c.token_caller(token.trim()).is_some_and(|c| c.is_user());
        if !valid {
            return hardened((StatusCode::UNAUTHORIZED, Html(SIGN_IN)).into_response());
        }
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            token.trim()
        );
        let mut response = Redirect::to("/").into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        return hardened(response);
    }
    let signed_in =
        cookie_token(&parts).is_some_and(|t| c.token_caller(&t).is_some_and(|c| c.is_user()));
    if signed_in {
        hardened(Html(INDEX).into_response())
    } else {
        hardened((StatusCode::UNAUTHORIZED, Html(SIGN_IN)).into_response())
    }
}

#[derive(Deserialize, Default)]
struct ViewQuery {
    namespaces: Option<String>,
    enforcer: Option<String>,
    download: Option<String>,
    /// The page's view, width over height: the page's picture is laid out
    /// to fill it (downloads are drawn as `visualize` draws them).
    aspect: Option<f64>,
}

impl ViewQuery {
    fn view(&self) -> View {
        View {
            namespaces: ibac_api::namespace_list(self.namespaces.as_deref()),
            enforcer: match self.enforcer.as_deref() {
                Some("network-policy") => Enforcer::NetworkPolicy,
                _ => Enforcer::Proxy,
            },
        }
    }
}

async fn graph_json(
    State(c): State<Arc<Control>>,
    _: Viewer,
    Query(q): Query<ViewQuery>,
) -> Response {
    hardened(axum::Json(graph_view(&GraphInput::of(&c), &q.view())).into_response())
}

/// The picture of the graph `q` asks for. A download is laid out as
/// `ibac network-mapper visualize` lays it out, whatever the page's view, so
/// that the two are the same file.
fn picture(c: &Control, q: &ViewQuery) -> Picture {
    let view = graph_view(&GraphInput::of(c), &q.view());
    match q.aspect {
        Some(aspect) if q.download.is_none() => Picture::layout_for_view(&view, aspect),
        _ => Picture::layout(&view),
    }
}

fn failed(reason: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, reason).into_response()
}

/// A picture as the page shows it, or as a file named `attachment` when
/// `q` asks for a download.
fn picture_response(
    q: &ViewQuery,
    kind: &'static str,
    body: impl IntoResponse,
    attachment: &'static str,
) -> Response {
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    if q.download.is_some() {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static(attachment),
        );
    }
    hardened(response)
}

async fn graph_svg(
    State(c): State<Arc<Control>>,
    _: Viewer,
    Query(q): Query<ViewQuery>,
) -> Response {
    let svg = picture(&c, &q).svg();
    picture_response(
        &q,
        "image/svg+xml",
        svg,
        "attachment; filename=\"ibac-access-graph.svg\"",
    )
}

async fn graph_png(
    State(c): State<Arc<Control>>,
    _: Viewer,
    Query(q): Query<ViewQuery>,
) -> Response {
    let p = picture(&c, &q);
    match tokio::task::spawn_blocking(move || p.png()).await {
        Ok(Ok(png)) => picture_response(
            &q,
            "image/png",
            png,
            "attachment; filename=\"ibac-access-graph.png\"",
        ),
        Ok(Err(e)) => failed(e.to_string()),
        Err(e) => failed(e.to_string()),
    }
}

/// `changed` whenever the policy, workloads, discovered calls or a proxy's
/// enforced state change (gathered for 200 ms); the page then asks for the
/// picture again.
async fn events(
    State(c): State<Arc<Control>>,
    _: Viewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = changes(c).map(|(_, change)| {
        let Change {
            revision,
            observed,
            enforcement,
        } = change;
        Ok(Event::default().event("changed").data(format!(
            "{{\"revision\":{revision},\"observed\":{observed},\"enforcement\":{enforcement}}}"
        )))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
