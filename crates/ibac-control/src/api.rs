//! The HTTP JSON API (described by `openapi.yaml`, served at
//! `/v1/openapi.yaml`), the proxies' endpoints and the change stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
pub use ibac_api::{
    ApplyRequest, ErrorBody, ModeRequest, PlacedError, ProtectRequest, Report, RolloutQuery,
    TokenRequest, TokenResponse,
};
use ibac_identity::https::ConnectionInfo;
use ibac_model::{DocumentKind, Namespace, WorkloadId};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::control::{Control, ControlError, DocumentEdit, Registration};
use crate::graph::{GraphInput, graph};

/// The API description.
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// An API failure.
pub struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError(
            status,
            ErrorBody {
                error: message.into(),
                errors: Vec::new(),
            },
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::Documents(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::NotAllowed(_) => StatusCode::FORBIDDEN,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            ControlError::Conflict(_) => StatusCode::CONFLICT,
            ControlError::Undistributable(_) => {
                tracing::error!(error = %e, "a change was refused: proxies could not read its state");
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ControlError::Store(_) | ControlError::Issuance(_) | ControlError::Internal(_) => {
                tracing::error!(error = %e, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let errors = match &e {
            ControlError::Documents(list) => list
                .iter()
                .map(|d| {
                    let at = d.location();
                    PlacedError {
                        message: d.to_string(),
                        file: d.origin().text().map(ToString::to_string),
                        line: at.map(|l| l.line).filter(|l| *l > 0),
                        column: at.map(|l| l.column).filter(|c| *c > 0),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        ApiError(
            status,
            ErrorBody {
                error: e.to_string(),
                errors,
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

/// The authenticated caller of a request.
pub struct Authed(pub Caller);

impl FromRequestParts<Arc<Control>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        control: &Arc<Control>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let secret = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "use `Authorization: Bearer <token>`",
                    )
                })?;
            return control
                .token_caller(secret)
                .map(Authed)
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"));
        }
        let peer = parts
            .extensions
            .get::<ConnectionInfo>()
            .and_then(|i| i.peer.as_ref())
            .and_then(|p| p.workload());
        match peer {
            Some(id) if control.is_registered(&id) => Ok(Authed(Caller::Workload(id))),
            Some(id) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{id} is not registered"),
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authenticate with a token (Authorization: Bearer) or a workload SVID",
            )),
        }
    }
}

/// A caller with a token: every route but the proxies' own wants one.
pub struct User(pub Caller);

impl FromRequestParts<Arc<Control>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        control: &Arc<Control>,
    ) -> Result<Self, Self::Rejection> {
        let Authed(caller) = Authed::from_request_parts(parts, control).await?;
        if caller.is_user() {
            Ok(User(caller))
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "proxies may only fetch their state and report",
            ))
        }
    }
}

/// The workload whose proxy is calling, for the routes under `/v1/proxy`,
/// which are for proxies alone (`what` says what such a route does); the
/// call counts as the proxy's contact.
fn proxy(c: &Control, caller: Caller, what: &str) -> Result<WorkloadId, ApiError> {
    let Caller::Workload(id) = caller else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("only a workload's proxy {what}"),
        ));
    };
    c.contact(&id);
    Ok(id)
}

/// The routes (the identity routes are merged by the server).
pub fn router(control: Arc<Control>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.yaml", get(openapi))
        .route("/v1/info", get(info))
        .route("/v1/apply", edit_documents(DocumentEdit::Apply))
        .route("/v1/delete", edit_documents(DocumentEdit::Delete))
        .route("/v1/documents", get(documents))
        .route("/v1/workloads", get(workloads).post(add_workload))
        .route("/v1/workloads/{id}", delete(remove_workload))
        .route("/v1/protect", post(protect))
        .route("/v1/unprotect", post(unprotect))
        .route("/v1/rollout", get(rollout))
        .route("/v1/mode", put(mode))
        .route("/v1/graph", get(graph_now))
        .route("/v1/graph/events", get(graph_events))
        .route("/v1/mapper/calls", get(calls).delete(reset_calls))
        .route("/v1/audit", get(audit))
        .route("/v1/tokens", post(create_token))
        .route("/v1/proxy/state", get(proxy_state))
        .route("/v1/proxy/reports", post(proxy_reports))
        .route("/v1/proxy/status", post(proxy_status))
        .layer(DefaultBodyLimit::max(16 << 20))
        .with_state(control)
}

/// Prometheus metrics, read from the state at each scrape.
async fn metrics(State(c): State<Arc<Control>>) -> impl IntoResponse {
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    let gauge = |v: usize| {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    let snapshot = c.snapshot();
    let counts = c.enforcement_counts();
    let gauges = [
        (
            "revision",
            "The store's revision",
            usize::try_from(snapshot.revision).unwrap_or(usize::MAX),
        ),
        (
            "workloads",
            "Registered workloads",
            snapshot.workloads.len(),
        ),
        (
            "documents",
            "Stored documents",
            snapshot.policy.documents().len(),
        ),
        (
            "proxies_connected",
            "Proxies that called in the last minute",
            c.proxies_connected(60),
        ),
        (
            "proxies_in_sync",
            "Registered proxies that enforce the published revision",
            counts.in_sync,
        ),
        (
            "proxies_behind",
            "Registered proxies that still enforce an older revision",
            counts.behind,
        ),
        (
            "proxies_failing",
            "Registered proxies that cannot load the published revision",
            counts.failing,
        ),
        (
            "proxies_silent",
            "Registered proxies that have not reported within the silence window",
            counts.silent,
        ),
        (
            "discovered_calls",
            "Kinds of call the network mapper knows",
            c.discovered_len(),
        ),
    ];
    let mut registry = Registry::with_prefix("ibac_control");
    for (name, help, value) in gauges {
        registry.register(name, help, gauge(value));
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode metrics\n".to_string(),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    version: &'static str,
    revision: u64,
    trust_domain: String,
    caller: String,
}

async fn info(State(c): State<Arc<Control>>, Authed(caller): Authed) -> Json<Info> {
    Json(Info {
        version: env!("CARGO_PKG_VERSION"),
        revision: c.snapshot().revision,
        trust_domain: c.issuance().bundle().load().trust_domain().to_string(),
        caller: caller.audit_name(),
    })
}

fn namespace(ns: Option<&str>) -> Result<Namespace, ApiError> {
    match ns {
        None => Ok(Namespace::default_namespace()),
        Some(n) => Namespace::parse(n)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("`{n}`: {e}"))),
    }
}

/// `POST /v1/apply` and `POST /v1/delete`: the same request body, told
/// apart by the route alone.
fn edit_documents(edit: DocumentEdit) -> MethodRouter<Arc<Control>> {
    post(
        move |State(c): State<Arc<Control>>, User(caller): User, Json(req): Json<ApplyRequest>| async move {
            let ns = namespace(req.namespace.as_deref())?;
            let outcome = c.edit(edit, &caller, &req.sources, &ns, req.dry_run);
            Ok::<_, ApiError>(Json(outcome.await?))
        },
    )
}

#[derive(Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

async fn documents(
    State(c): State<Arc<Control>>,
    _: User,
    Query(q): Query<KindQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(DocumentKind::parse(k).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`{k}` is not a document kind"),
            )
        })?),
    };
    Ok(Json(c.documents(kind)?))
}

async fn workloads(State(c): State<Arc<Control>>, _: User) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(c.workloads()))
}

async fn add_workload(
    State(c): State<Arc<Control>>,
    User(caller): User,
    Json(req): Json<Registration>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(c.add_workload(&caller, &req).await?),
    ))
}

async fn remove_workload(
    State(c): State<Arc<Control>>,
    User(caller): User,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    c.remove_workload(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn protect(
    State(c): State<Arc<Control>>,
    User(caller): User,
    Json(req): Json<ProtectRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if req.dry_run {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "protect has no dry run: protecting changes nothing a client declared",
        ));
    }
    Ok(Json(c.protect(&caller, &req.workload).await?))
}

async fn unprotect(
    State(c): State<Arc<Control>>,
    User(caller): User,
    Json(req): Json<ProtectRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        c.unprotect(&caller, &req.workload, req.dry_run).await?,
    ))
}

async fn rollout(
    State(c): State<Arc<Control>>,
    _: User,
    Query(q): Query<RolloutQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let wait = Duration::from_millis(q.wait_ms.min(600_000));
    Ok(Json(if wait.is_zero() {
        c.rollout(q.revision)
    } else {
        c.wait_rollout(q.revision, wait).await
    }))
}

async fn mode(
    State(c): State<Arc<Control>>,
    User(caller): User,
    Json(req): Json<ModeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(c.set_mode(&caller, req.mode).await?))
}

async fn graph_now(State(c): State<Arc<Control>>, _: User) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(graph(&GraphInput::of(&c))))
}

/// How long changes are gathered before the graph is sent again: a burst of
/// reports makes one update, not dozens.
const DEBOUNCE: Duration = Duration::from_millis(200);

async fn graph_events(
    State(c): State<Arc<Control>>,
    _: User,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    Ok(Sse::new(graph_stream(c)).keep_alive(KeepAlive::default()))
}

/// Where the control plane stood when a change was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The store revision in force.
    pub revision: u64,
    /// The mapper's change counter.
    pub observed: u64,
    /// The counter of shifts in the proxies' enforced state.
    pub enforcement: u64,
}

/// Once now, then once after every change of policy, workloads, discovered
/// calls or a proxy's enforced state, gathered for [`DEBOUNCE`]; it ends
/// when the control plane closes. The API's graph stream and the page's
/// change stream both follow it, so that they agree on what a change is.
pub fn changes(c: Arc<Control>) -> impl Stream<Item = (Arc<Control>, Change)> {
    let snapshots = c.subscribe();
    let mapper = c.mapper_changes();
    let shifts = c.enforcement_shifts();
    futures_util::stream::unfold(
        (c, snapshots, mapper, shifts, true),
        |(c, mut snapshots, mut mapper, mut shifts, first)| async move {
            if !first {
                tokio::select! {
                    r = snapshots.changed() => r.ok()?,
                    r = mapper.changed() => r.ok()?,
                    r = shifts.changed() => r.ok()?,
                    () = c.closed() => return None,
                }
                tokio::time::sleep(DEBOUNCE).await;
            }
            let change = Change {
                revision: snapshots.borrow_and_update().revision,
                observed: *mapper.borrow_and_update(),
                enforcement: *shifts.borrow_and_update(),
            };
            Some(((c.clone(), change), (c, snapshots, mapper, shifts, false)))
        },
    )
}

/// The graph now, then again after every change of policy, workloads or
/// discovered calls.
pub fn graph_stream(c: Arc<Control>) -> impl Stream<Item = Result<Event, Infallible>> {
    changes(c).map(|(c, _)| {
        let view = graph(&GraphInput::of(&c));
        let event = Event::default()
            .event("graph")
            .json_data(&view)
            .unwrap_or_else(|_| {
                Event::default()
                    .event("error")
                    .data("cannot draw the graph")
            });
        Ok(event)
    })
}

#[derive(Deserialize)]
struct CallsQuery {
    since: Option<String>,
    namespaces: Option<String>,
}

/// A discovered call as `/v1/mapper/calls` lists it.
#[derive(Serialize, Deserialize)]
pub struct CallOut {
    /// What kind of call.
    #[serde(flatten)]
    pub key: ibac_mapper::CallKey,
    /// What is known of it.
    #[serde(flatten)]
    pub record: ibac_mapper::CallRecord,
}

/// Parses `since`: a duration back from now (`1h`, `30m`) or RFC 3339.
fn since(text: &str) -> Result<i64, ApiError> {
    let now = time::OffsetDateTime::now_utc();
    if let Ok(d) = humantime::parse_duration(text) {
        let back = time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
        return Ok(now
            .checked_sub(back)
            .map_or(i64::MIN, |t| t.unix_timestamp()));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`{text}` is neither a duration (1h, 30m) nor an RFC 3339 time"),
            )
        })
}

async fn calls(
    State(c): State<Arc<Control>>,
    _: User,
    Query(q): Query<CallsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let since = q.since.as_deref().map(since).transpose()?;
    let namespaces = ibac_api::namespace_list(q.namespaces.as_deref());
    let out: Vec<CallOut> = c
        .calls(since)
        .into_iter()
        .filter(|(k, _)| {
            namespaces.is_empty() || namespaces.iter().any(|n| n == k.client.namespace())
        })
        .map(|(key, record)| CallOut { key, record })
        .collect();
    Ok(Json(out))
}

async fn reset_calls(
    State(c): State<Arc<Control>>,
    User(caller): User,
) -> Result<impl IntoResponse, ApiError> {
    c.reset_calls(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(c): State<Arc<Control>>,
    _: User,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(c.audit(q.limit.unwrap_or(100).min(10_000)).await?))
}

async fn create_token(
    State(c): State<Arc<Control>>,
    Authed(caller): Authed,
    Json(req): Json<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let token = c.create_token(&caller, &req.name, req.namespaces).await?;
    Ok((StatusCode::CREATED, Json(TokenResponse { token })))
}

#[derive(Deserialize)]
struct StateQuery {
    after: Option<u64>,
}

async fn proxy_state(
    State(c): State<Arc<Control>>,
    Authed(caller): Authed,
    Query(q): Query<StateQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = proxy(&c, caller, "fetches its state")?;
    if let Some(after) = q.after {
        let mut rx = c.subscribe();
        let deadline = tokio::time::sleep(ibac_api::proxy::LONG_POLL);
        tokio::pin!(deadline);
        while rx.borrow_and_update().revision == after {
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                () = &mut deadline => break,
                () = c.closed() => break,
            }
        }
    }
    c.contact(&id);
    let state = c.snapshot().proxy_state.clone();
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state,
    ))
}

async fn proxy_reports(
    State(c): State<Arc<Control>>,
    Authed(caller): Authed,
    Json(reports): Json<Vec<Report>>,
) -> Result<impl IntoResponse, ApiError> {
    let id = proxy(&c, caller, "sends reports")?;
    if reports.len() > 100_000 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "send at most 100,000 reports at once",
        ));
    }
    let taken = c.ingest(&id, reports).await?;
    Ok(Json(serde_json::json!({ "taken": taken })))
}

async fn proxy_status(
    State(c): State<Arc<Control>>,
    Authed(caller): Authed,
    Json(status): Json<ibac_api::EnforcedStatus>,
) -> Result<impl IntoResponse, ApiError> {
    let id = proxy(&c, caller, "reports what it enforces")?;
    if let Some(f) = &status.failed
        && f.error.len() > 64 << 10
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "an error message of at most 64 KiB",
        ));
    }
    c.enforced_status(&id, status);
    Ok(StatusCode::NO_CONTENT)
}
