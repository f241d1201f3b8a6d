//! The issuance server: an HTTPS router the control plane mounts, or that runs
//! on its own.
//!
//! - `POST /v1/identity/join`: a one-time join token and a CSR → the first SVID
//!   for the workload the token is bound to.
//! - `POST /v1/identity/renew`: over mTLS with the current SVID, a CSR → a new
//!   SVID for the same identity. An expired SVID cannot authenticate, so a
//!   workload that let it expire must be attested again with a new token.
//! - `GET /v1/identity/bundle`: the trust bundle (PEM).
//! - `POST /v1/identity/jwt`: over mTLS, audiences → a JWT-SVID for the
//!   caller's own SPIFFE ID (the one its certificate proves; a request cannot
//!   name another).
//! - `GET /v1/identity/jwt-bundle`: the JWT bundle (JWKS JSON).
//!
//! Every issuance and refusal is audited; callers are rate limited.

use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ibac_model::WorkloadId;
use rustls::ServerConfig;
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::audit::{AuditEvent, AuditLog};
use super::tokens::{TokenError, TokenStore};
use crate::ca::{Ca, new_key_and_csr};
use crate::https::ConnectionInfo;
use crate::jwt::{JwtBundle, JwtKey, check_audience};
use crate::spiffe_id::SpiffeId;
use crate::svid::Svid;
use crate::tls::{SharedBundle, SpiffeClientVerifier, SvidResolver, server_config};

/// The SPIFFE ID path of the issuance server itself (`spiffe://<td>/ibac/issuer`).
pub const ISSUER_COMPONENT: &str = "issuer";

/// A join request.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The join token.
    pub token: String,
    /// A PEM certificate signing request.
    pub csr: String,
}

/// A renewal request.
#[derive(Debug, Serialize, Deserialize)]
pub struct RenewRequest {
    /// A PEM certificate signing request.
    pub csr: String,
}

/// An issued SVID.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SvidResponse {
    /// The identity.
    pub spiffe_id: String,
    /// The chain, PEM, leaf first.
    pub svid: String,
    /// The trust bundle, PEM.
    pub bundle: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// A JWT-SVID request. It names audiences only: the subject is always the
/// caller's own identity.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtRequest {
    /// The audiences the token is for.
    pub audience: Vec<String>,
}

/// An issued JWT-SVID.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtResponse {
    /// The subject.
    pub spiffe_id: String,
    /// The token.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What the issuer signs JWT-SVIDs with.
#[derive(Debug)]
pub struct JwtSigning {
    /// The trust domain's current key.
    pub key: JwtKey,
    /// The JWT bundle: the current key and retired ones still needed.
    pub bundle: JwtBundle,
    /// Token lifetime; never longer than the SVIDs'.
    pub ttl: Duration,
}

/// An error reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for people.
    pub error: String,
}

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// Issues SVIDs to attested workloads.
pub struct IssuanceService {
    ca: ArcSwap<Ca>,
    bundle: SharedBundle,
    tokens: Arc<dyn TokenStore>,
    audit: Arc<dyn AuditLog>,
    svid_ttl: Duration,
    limiter: Option<Limiter>,
    jwt: ArcSwapOption<JwtSigning>,
}

/// A refusal: the HTTP status and the reason.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorResponse { error: self.1 })).into_response()
    }
}

impl IssuanceService {
    /// A service signing with `ca`. `per_minute` limits requests per caller
    /// (per address for joins, per identity for renewals); `None` disables it.
    pub fn new(
        ca: Arc<Ca>,
        bundle: SharedBundle,
        tokens: Arc<dyn TokenStore>,
        audit: Arc<dyn AuditLog>,
        svid_ttl: Duration,
        per_minute: Option<NonZeroU32>,
    ) -> Arc<Self> {
        Arc::new(IssuanceService {
            ca: ArcSwap::new(ca),
            bundle,
            tokens,
            audit,
            svid_ttl,
            limiter: per_minute.map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            jwt: ArcSwapOption::empty(),
        })
    }

    /// Signs JWT-SVIDs with this key from now on (at start, and after a
    /// rotation). Until it is called, the JWT routes answer 503.
    pub fn replace_jwt(&self, signing: JwtSigning) {
        self.jwt.store(Some(Arc::new(signing)));
    }

    /// Switches to a new CA (after a rotation) and bundle.
    pub fn replace_ca(&self, ca: Arc<Ca>, bundle: crate::bundle::TrustBundle) {
        self.ca.store(ca);
        self.bundle.store(Arc::new(bundle));
    }

    /// The bundle in use.
    pub fn bundle(&self) -> SharedBundle {
        self.bundle.clone()
    }

    /// The routes, to mount or to serve with [`crate::https::serve`].
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/identity/join", post(join))
            .route("/v1/identity/renew", post(renew))
            .route("/v1/identity/bundle", get(bundle_pem))
            .route("/v1/identity/jwt", post(jwt_svid))
            .route("/v1/identity/jwt-bundle", get(jwt_bundle))
            .with_state(self.clone())
    }

    /// A join token for `workload`, valid for `ttl`.
    pub fn create_token(
        &self,
        workload: &WorkloadId,
        ttl: Duration,
        caller: &str,
    ) -> Result<String, TokenError> {
        let now = OffsetDateTime::now_utc();
        let token = self.tokens.create(
            workload,
            &self.ca.load().fingerprint(),
            (now + ttl).unix_timestamp(),
        )?;
        self.audit_event(
            now,
            "token",
            caller,
            Some(workload.to_string()),
            "done",
            None,
            None,
        )
        .map_err(|e| TokenError::Storage(e.to_string()))?;
        Ok(token)
    }

    /// Revokes a workload: outstanding tokens die and it cannot renew.
    pub fn revoke(&self, workload: &WorkloadId, caller: &str) -> Result<(), TokenError> {
        self.tokens.revoke(workload)?;
        self.audit_event(
            OffsetDateTime::now_utc(),
            "revoke",
            caller,
            Some(workload.to_string()),
            "done",
            None,
            None,
        )
        .map_err(|e| TokenError::Storage(e.to_string()))
    }

    /// An SVID for one of ibac's own components, with a key made here. The
    /// chain also carries the CA certificate, which newcomers pin.
    pub fn component_svid(&self, component: &str) -> Result<Svid, String> {
        let ca = self.ca.load();
        let id =
            SpiffeId::for_component(ca.trust_domain(), component).map_err(|e| e.to_string())?;
        let (key, csr) = new_key_and_csr().map_err(|e| e.to_string())?;
        let mut issued = ca
            .issue(&csr, &id, self.svid_ttl, OffsetDateTime::now_utc())
            .map_err(|e| e.to_string())?;
        if !ca.is_intermediate() {
            issued.chain.push(ca.certificate().clone());
        }
        Ok(Svid::new(issued, key.serialize_der().into()))
    }

    /// The issuer's own SVID, renewed at half-life for as long as the
    /// returned task runs: the server's certificate is short-lived like any
    /// other, and a long-running server must not outlive it.
    pub fn own_svid(
        self: &Arc<Self>,
    ) -> Result<(Arc<SvidResolver>, tokio::task::JoinHandle<()>), String> {
        let own = self.component_svid(ISSUER_COMPONENT)?;
        let resolver = SvidResolver::new(&own).map_err(|e| e.to_string())?;
        let service = self.clone();
        let renewing = resolver.clone();
        let mut renew_at = own.issued().renew_at();
        let task = tokio::spawn(async move {
            loop {
                let wait = u64::try_from(renew_at - OffsetDateTime::now_utc().unix_timestamp())
                    .unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_secs(wait.max(1))).await;
                match service.component_svid(ISSUER_COMPONENT) {
                    Ok(svid) => match renewing.replace(&svid) {
                        Ok(()) => renew_at = svid.issued().renew_at(),
                        Err(e) => tracing::warn!(error = %e, "cannot use the renewed server SVID"),
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot renew the server SVID"),
                }
            }
        });
        Ok((resolver, task))
    }

    /// A TLS config for serving this router: presents `ours`, accepts clients
    /// with or without an SVID (joins have none).
    pub fn tls_config(&self, ours: Arc<SvidResolver>) -> Result<ServerConfig, rustls::Error> {
        let clients = Arc::new(SpiffeClientVerifier::new(self.bundle.clone(), false));
        server_config(ours, clients, &[b"h2", b"http/1.1"])
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_event(
        &self,
        now: OffsetDateTime,
        action: &str,
        caller: &str,
        identity: Option<String>,
        outcome: &str,
        reason: Option<String>,
        serial: Option<String>,
    ) -> std::io::Result<()> {
        self.audit.record(&AuditEvent {
            time: now.unix_timestamp(),
            action: action.into(),
            caller: caller.into(),
            identity,
            outcome: outcome.into(),
            reason,
            serial,
        })
    }

    fn limit(&self, key: &str) -> Result<(), String> {
        match &self.limiter {
            Some(limiter) if limiter.check_key(&key.to_string()).is_err() => {
                Err("too many requests from this caller; retry later".into())
            }
            _ => Ok(()),
        }
    }

    /// Issues for `id`, auditing the outcome; a failed audit fails the issuance.
    fn issue(
        &self,
        action: &str,
        caller: &str,
        id: &SpiffeId,
        csr_pem: &str,
    ) -> Result<SvidResponse, Refusal> {
        let now = OffsetDateTime::now_utc();
        let csr = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("the CSR is not PEM: {e}")));
        let ca = self.ca.load();
        let issued = csr.and_then(|csr| {
            ca.issue(csr.as_ref(), id, self.svid_ttl, now)
                .map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.to_string()))
        });
        match issued {
            Ok(issued) => {
                self.audit_event(
                    now,
                    action,
                    caller,
                    Some(id.to_string()),
                    "issued",
                    None,
                    Some(issued.serial.clone()),
                )
                .map_err(|e| {
                    Refusal(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot write the audit log: {e}"),
                    )
                })?;
                Ok(SvidResponse {
                    spiffe_id: id.to_string(),
                    svid: issued.chain_pem(),
                    bundle: self.bundle.load().to_pem(),
                    not_after: issued.not_after,
                })
            }
            Err(refusal) => Err(self.refused(now, action, caller, Some(id.to_string()), refusal)),
        }
    }

    fn refused(
        &self,
        now: OffsetDateTime,
        action: &str,
        caller: &str,
        identity: Option<String>,
        refusal: Refusal,
    ) -> Refusal {
        match self.audit_event(
            now,
            action,
            caller,
            identity,
            "refused",
            Some(refusal.1.clone()),
            None,
        ) {
            Ok(()) => refusal,
            Err(e) => Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write the audit log: {e}"),
            ),
        }
    }
}

async fn join(
    State(service): State<Arc<IssuanceService>>,
    Extension(conn): Extension<ConnectionInfo>,
    Json(request): Json<JoinRequest>,
) -> Result<Json<SvidResponse>, Refusal> {
    let caller = conn.remote.ip().to_string();
    let now = OffsetDateTime::now_utc();
    if let Err(why) = service.limit(&caller) {
        return Err(service.refused(
            now,
            "join",
            &caller,
            None,
            Refusal(StatusCode::TOO_MANY_REQUESTS, why),
        ));
    }
    let workload = match service.tokens.redeem(&request.token, now.unix_timestamp()) {
        Ok(w) => w,
        Err(e) => {
            let status = match e {
                TokenError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
                TokenError::Revoked(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            return Err(service.refused(
                now,
                "join",
                &caller,
                None,
                Refusal(status, e.to_string()),
            ));
        }
    };
    let id = SpiffeId::for_workload(service.ca.load().trust_domain(), &workload);
    service.issue("join", &caller, &id, &request.csr).map(Json)
}

/// The workload identity an mTLS caller proves, if it may be served: it has
/// a valid SVID, is within its rate limit, is a workload and is not revoked.
fn authenticated(
    service: &IssuanceService,
    conn: ConnectionInfo,
    action: &str,
    now: OffsetDateTime,
) -> Result<SpiffeId, Refusal> {
    let Some(id) = conn.peer else {
        let caller = conn.remote.ip().to_string();
        let what = if action == "renew" {
            "renewal"
        } else {
            "a JWT-SVID"
        };
        let refusal = Refusal(
            StatusCode::UNAUTHORIZED,
            format!(
                "{what} needs a valid SVID as client certificate; an expired one must be attested again with a join token"
            ),
        );
        return Err(service.refused(now, action, &caller, None, refusal));
    };
    let caller = id.to_string();
    if let Err(why) = service.limit(&caller) {
        return Err(service.refused(
            now,
            action,
            &caller,
            Some(caller.clone()),
            Refusal(StatusCode::TOO_MANY_REQUESTS, why),
        ));
    }
    match id.workload() {
        Some(w) if service.tokens.is_revoked(&w) => {
            let refusal = Refusal(StatusCode::FORBIDDEN, format!("workload `{w}` is revoked"));
            Err(service.refused(now, action, &caller, Some(caller.clone()), refusal))
        }
        Some(_) => Ok(id),
        None => {
            let refusal = Refusal(
                StatusCode::FORBIDDEN,
                format!("`{id}` is not a workload identity"),
            );
            Err(service.refused(now, action, &caller, Some(caller.clone()), refusal))
        }
    }
}

async fn renew(
    State(service): State<Arc<IssuanceService>>,
    Extension(conn): Extension<ConnectionInfo>,
    Json(request): Json<RenewRequest>,
) -> Result<Json<SvidResponse>, Refusal> {
    let id = authenticated(&service, conn, "renew", OffsetDateTime::now_utc())?;
    service
        .issue("renew", id.as_str(), &id, &request.csr)
        .map(Json)
}

fn no_jwt_key() -> Refusal {
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "this issuer has no JWT signing key".into(),
    )
}

async fn jwt_svid(
    State(service): State<Arc<IssuanceService>>,
    Extension(conn): Extension<ConnectionInfo>,
    Json(request): Json<JwtRequest>,
) -> Result<Json<JwtResponse>, Refusal> {
    let now = OffsetDateTime::now_utc();
    let id = authenticated(&service, conn, "jwt", now)?;
    let caller = id.to_string();
    let Some(signing) = service.jwt.load_full() else {
        return Err(service.refused(now, "jwt", &caller, Some(caller.clone()), no_jwt_key()));
    };
    let ttl = signing.ttl.min(service.svid_ttl);
    let signed = check_audience(&request.audience).and_then(|()| {
        signing
            .key
            .sign(&id, &request.audience, now.unix_timestamp(), ttl)
    });
    match signed {
        Ok(token) => {
            service
                .audit_event(
                    now,
                    "jwt",
                    &caller,
                    Some(caller.clone()),
                    "issued",
                    None,
                    None,
                )
                .map_err(|e| {
                    Refusal(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot write the audit log: {e}"),
                    )
                })?;
            Ok(Json(JwtResponse {
                spiffe_id: caller,
                token,
                expires_at: (now + ttl).unix_timestamp(),
            }))
        }
        Err(e) => Err(service.refused(
            now,
            "jwt",
            &caller,
            Some(caller.clone()),
            Refusal(StatusCode::BAD_REQUEST, e.to_string()),
        )),
    }
}

async fn jwt_bundle(State(service): State<Arc<IssuanceService>>) -> Result<Response, Refusal> {
    let Some(signing) = service.jwt.load_full() else {
        return Err(no_jwt_key());
    };
    Ok((
        [(http::header::CONTENT_TYPE, "application/json")],
        signing.bundle.to_jwks(),
    )
        .into_response())
}

async fn bundle_pem(State(service): State<Arc<IssuanceService>>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/x-pem-file")],
        service.bundle.load().to_pem(),
    )
}
