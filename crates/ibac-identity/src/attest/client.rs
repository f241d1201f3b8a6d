//! The workload side of attested issuance: join with a token, keep the key and
//! SVID on disk (0600), renew over mTLS at half-life, and hand the current SVID
//! to whoever serves or dials TLS — without dropping their connections.
//! It also asks for JWT-SVIDs (kept until half their life) and keeps the JWT
//! bundle current: on every renewal, and when a token names a key it lacks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use rustls::ClientConfig;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::server::{
    ErrorResponse, ISSUER_COMPONENT, JoinRequest, JwtRequest, JwtResponse, RenewRequest,
    SvidResponse,
};
use super::tokens::TokenParts;
use crate::bundle::TrustBundle;
use crate::ca::new_key_and_csr;
use crate::files::write_private;
use crate::https::{CallError, Endpoint};
use crate::jwt::JwtBundle;
use crate::pem;
use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::{IssuedSvid, Svid, SvidFileError};
use crate::tls::{ExpectedServer, SharedBundle, SpiffeServerVerifier, SvidResolver, client_config};

/// Why the workload could not get or renew its SVID.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The issuer address is not `https://host:port`.
    #[error("`{0}` is not an issuer address; write it as https://host:port")]
    BadAddress(String),
    /// Network or TLS failure.
    #[error("cannot reach the issuer at {addr}: {reason}")]
    Unreachable {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The issuer refused.
    #[error("the issuer refused: {0}")]
    Refused(String),
    /// A malformed reply.
    #[error("unexpected reply from the issuer: {0}")]
    BadReply(String),
    /// Malformed token.
    #[error("{0}")]
    Token(#[from] super::tokens::TokenError),
    /// Key generation.
    #[error("cannot create a key: {0}")]
    Key(String),
    /// Disk.
    #[error(transparent)]
    Files(#[from] SvidFileError),
    /// No usable SVID on disk and no token to get one.
    #[error("{0}")]
    NeedsToken(String),
}

/// Talks to an issuance server.
#[derive(Clone, Debug)]
pub struct IssuerClient {
    endpoint: Endpoint,
}

impl IssuerClient {
    /// A client for `https://host:port`.
    pub fn new(address: &str) -> Result<Self, AttestError> {
        // Each call brings its own TLS config, and joins and renewals are
        // far apart: nothing a kept connection could serve.
        let endpoint = Endpoint::parse(address)
            .map_err(|_| AttestError::BadAddress(address.into()))?
            .one_shot();
        Ok(IssuerClient { endpoint })
    }

    async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        config: ClientConfig,
        path: &str,
        body: &T,
    ) -> Result<R, AttestError> {
        let json = serde_json::to_vec(body).map_err(|e| AttestError::BadReply(e.to_string()))?;
        let request = Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| AttestError::BadReply(e.to_string()))?;
        let body = self.send(config, request).await?;
        serde_json::from_slice(&body).map_err(|e| AttestError::BadReply(e.to_string()))
    }

    async fn send(
        &self,
        config: ClientConfig,
        request: Request<Full<Bytes>>,
    ) -> Result<Bytes, AttestError> {
        let (status, body) = self
            .endpoint
            .send(Arc::new(config), request, Duration::from_secs(30), 1 << 20)
            .await
            .map_err(|e| AttestError::Unreachable {
                addr: self.endpoint.authority().to_string(),
                reason: match e {
                    CallError::Unreachable { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(AttestError::Refused(reason));
        }
        Ok(body)
    }

    /// A client TLS config that presents `current` and expects the issuer.
    fn mtls_config(current: &Svid, bundle: &TrustBundle) -> Result<ClientConfig, AttestError> {
        let issuer_id = SpiffeId::for_component(bundle.trust_domain(), ISSUER_COMPONENT)
            .map_err(|e| AttestError::BadReply(e.to_string()))?;
        let shared: SharedBundle = Arc::new(ArcSwap::from_pointee(bundle.clone()));
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(SpiffeServerVerifier::new(
            shared,
            ExpectedServer::Id(issuer_id),
        ));
        let ours = SvidResolver::new(current).map_err(|e| AttestError::Key(e.to_string()))?;
        client_config(Some(ours), verifier, &[b"http/1.1"])
            .map_err(|e| AttestError::Key(e.to_string()))
    }

    /// A JWT-SVID for `audience`, over mTLS with the current SVID: the issuer
    /// signs it for the identity that SVID proves, and no other.
    pub async fn jwt_svid(
        &self,
        current: &Svid,
        bundle: &TrustBundle,
        audience: &[String],
    ) -> Result<JwtResponse, AttestError> {
        let config = Self::mtls_config(current, bundle)?;
        let request = JwtRequest {
            audience: audience.to_vec(),
        };
        let reply: JwtResponse = self.post(config, "/v1/identity/jwt", &request).await?;
        if reply.spiffe_id != current.id().as_str() {
            return Err(AttestError::BadReply(format!(
                "a JWT-SVID for `{}` instead of `{}`",
                reply.spiffe_id,
                current.id()
            )));
        }
        Ok(reply)
    }

    /// The trust domain's JWT bundle, from the issuer.
    pub async fn jwt_bundle(
        &self,
        current: &Svid,
        bundle: &TrustBundle,
    ) -> Result<JwtBundle, AttestError> {
        let config = Self::mtls_config(current, bundle)?;
        let request = Request::get("/v1/identity/jwt-bundle")
            .body(Full::new(Bytes::new()))
            .map_err(|e| AttestError::BadReply(e.to_string()))?;
        let body = self.send(config, request).await?;
        JwtBundle::from_jwks(bundle.trust_domain().clone(), &body)
            .map_err(|e| AttestError::BadReply(e.to_string()))
    }

    fn svid_from(
        reply: SvidResponse,
        key: PrivatePkcs8KeyDer<'static>,
        expected: Option<&SpiffeId>,
    ) -> Result<(Svid, TrustBundle), AttestError> {
        let chain = pem::certificates(reply.svid.as_bytes())
            .map_err(|e| AttestError::BadReply(e.to_string()))?;
        let issued = IssuedSvid::from_chain(chain)?;
        if let Some(want) = expected
            && issued.id != *want
        {
            return Err(AttestError::BadReply(format!(
                "issued `{}` instead of `{want}`",
                issued.id
            )));
        }
        let td = TrustDomain::parse(issued.id.trust_domain())
            .map_err(|e| AttestError::BadReply(e.to_string()))?;
        let bundle = TrustBundle::from_pem(td, reply.bundle.as_bytes())
            .map_err(|e| AttestError::BadReply(e.to_string()))?;
        Ok((Svid::new(issued, key), bundle))
    }

    /// Trades a join token and a fresh key's CSR for the first SVID. The
    /// server must present the CA the token names before the token is sent.
    pub async fn join(&self, token: &str) -> Result<(Svid, TrustBundle), AttestError> {
        let parts = TokenParts::parse(token)?;
        let verifier: Arc<dyn ServerCertVerifier> =
            Arc::new(SpiffeServerVerifier::pinned_ca(&parts.ca_fingerprint));
        let config = client_config(None, verifier, &[b"http/1.1"])
            .map_err(|e| AttestError::Key(e.to_string()))?;
        let (key, csr) = new_key_and_csr().map_err(|e| AttestError::Key(e.to_string()))?;
        let request = JoinRequest {
            token: token.to_string(),
            csr: pem::encode("CERTIFICATE REQUEST", &csr),
        };
        let reply: SvidResponse = self.post(config, "/v1/identity/join", &request).await?;
        Self::svid_from(reply, key.serialize_der().into(), None)
    }

    /// Sends a join with a CSR made elsewhere and returns the raw reply
    /// (benchmarks and tools; workloads use [`IssuerClient::join`]).
    pub async fn join_csr(&self, token: &str, csr_pem: &str) -> Result<SvidResponse, AttestError> {
        let parts = TokenParts::parse(token)?;
        let verifier: Arc<dyn ServerCertVerifier> =
            Arc::new(SpiffeServerVerifier::pinned_ca(&parts.ca_fingerprint));
        let config = client_config(None, verifier, &[b"http/1.1"])
            .map_err(|e| AttestError::Key(e.to_string()))?;
        let request = JoinRequest {
            token: token.to_string(),
            csr: csr_pem.to_string(),
        };
        self.post(config, "/v1/identity/join", &request).await
    }

    /// Renews over mTLS with the current SVID; the new SVID has the same identity.
    pub async fn renew(
        &self,
        current: &Svid,
        bundle: &TrustBundle,
    ) -> Result<(Svid, TrustBundle), AttestError> {
        let config = Self::mtls_config(current, bundle)?;
        let (key, csr) = new_key_and_csr().map_err(|e| AttestError::Key(e.to_string()))?;
        let request = RenewRequest {
            csr: pem::encode("CERTIFICATE REQUEST", &csr),
        };
        let reply: SvidResponse = self.post(config, "/v1/identity/renew", &request).await?;
        Self::svid_from(reply, key.serialize_der().into(), Some(current.id()))
    }
}

const BUNDLE_FILE: &str = "bundle.pem";

/// A workload's identity, kept current.
pub struct WorkloadIdentity {
    dir: PathBuf,
    client: IssuerClient,
    bundle: SharedBundle,
    resolver: Arc<SvidResolver>,
    svid: watch::Sender<Arc<Svid>>,
    /// When to renew: halfway between when the SVID arrived (or was loaded)
    /// and its expiry, so that back-dated certificates do not renew early.
    renew_at: AtomicI64,
    jwt_bundle: watch::Sender<Arc<JwtBundle>>,
    /// When the JWT bundle was last asked for, unix seconds.
    jwt_bundle_asked: AtomicI64,
    /// Tokens by their audiences, with their issue and expiry times.
    jwt_cache: Mutex<HashMap<Vec<String>, CachedJwt>>,
}

#[derive(Clone)]
struct CachedJwt {
    token: String,
    issued: i64,
    expires: i64,
}

/// How often, at most, a missing key makes the agent ask for the JWT bundle.
const JWT_BUNDLE_MIN_INTERVAL: i64 = 5;

fn halfway(svid: &Svid) -> i64 {
    let now = now_secs();
    now + (svid.issued().not_after - now).max(0) / 2
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn save(dir: &Path, svid: &Svid, bundle: &TrustBundle) -> Result<(), AttestError> {
    svid.save(dir)?;
    let path = dir.join(BUNDLE_FILE);
    write_private(&path, bundle.to_pem().as_bytes()).map_err(|source| SvidFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(())
}

fn load(dir: &Path) -> Result<Option<(Svid, TrustBundle)>, AttestError> {
    let Some(svid) = Svid::load(dir)? else {
        return Ok(None);
    };
    let path = dir.join(BUNDLE_FILE);
    let text = std::fs::read(&path).map_err(|source| SvidFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let td = TrustDomain::parse(svid.id().trust_domain())
        .map_err(|e| SvidFileError::Invalid(e.to_string()))?;
    let bundle =
        TrustBundle::from_pem(td, &text).map_err(|e| SvidFileError::Invalid(e.to_string()))?;
    Ok(Some((svid, bundle)))
}

impl WorkloadIdentity {
    /// Uses the SVID saved in `dir` if it is still valid; otherwise joins
    /// with `token`. With neither, fails and says what to do.
    pub async fn obtain(
        dir: &Path,
        client: IssuerClient,
        token: Option<&str>,
    ) -> Result<Arc<Self>, AttestError> {
        let (svid, bundle) = match load(dir)? {
            Some((svid, bundle)) if !svid.is_expired(now_secs()) => {
                tracing::info!(id = %svid.id(), "using the SVID kept on disk");
                (svid, bundle)
            }
            stale => {
                let Some(token) = token else {
                    return Err(AttestError::NeedsToken(match stale {
                        Some(_) => format!(
                            "the SVID in {} has expired: attest again with a new join token (`ibac workload add`)",
                            dir.display()
                        ),
                        None => format!(
                            "no SVID in {}: give a join token (`ibac workload add` prints one)",
                            dir.display()
                        ),
                    }));
                };
                let (svid, bundle) = client.join(token).await?;
                save(dir, &svid, &bundle)?;
                tracing::info!(id = %svid.id(), "joined");
                (svid, bundle)
            }
        };
        let identity = Self::assemble(dir.to_path_buf(), client, svid, bundle)?;
        if let Err(e) = identity.refresh_jwt_bundle().await {
            tracing::warn!(error = %e, "cannot fetch the JWT bundle yet; JWT-SVIDs will not validate until it arrives");
        }
        Ok(identity)
    }

    fn assemble(
        dir: PathBuf,
        client: IssuerClient,
        svid: Svid,
        bundle: TrustBundle,
    ) -> Result<Arc<Self>, AttestError> {
        let resolver = SvidResolver::new(&svid).map_err(|e| AttestError::Key(e.to_string()))?;
        let no_jwt_keys = JwtBundle::new(bundle.trust_domain().clone(), Vec::new());
        let identity = Arc::new(WorkloadIdentity {
            dir,
            client,
            bundle: Arc::new(ArcSwap::from_pointee(bundle)),
            resolver,
            renew_at: AtomicI64::new(halfway(&svid)),
            svid: watch::channel(Arc::new(svid)).0,
            jwt_bundle: watch::channel(Arc::new(no_jwt_keys)).0,
            jwt_bundle_asked: AtomicI64::new(0),
            jwt_cache: Mutex::new(HashMap::new()),
        });
        Ok(identity)
    }

    /// Fetches the JWT bundle now; on failure the one held stays.
    pub async fn refresh_jwt_bundle(&self) -> Result<(), AttestError> {
        self.jwt_bundle_asked.store(now_secs(), Ordering::Relaxed);
        let bundle = self
            .client
            .jwt_bundle(&self.svid(), &self.bundle.load())
            .await?;
        self.jwt_bundle.send_if_modified(|held| {
            let changed = **held != bundle;
            if changed {
                tracing::info!(keys = bundle.keys().len(), "JWT bundle updated");
                *held = Arc::new(bundle);
            }
            changed
        });
        Ok(())
    }

    /// The JWT bundle, following updates.
    pub fn jwt_bundle(&self) -> watch::Receiver<Arc<JwtBundle>> {
        self.jwt_bundle.subscribe()
    }

    /// Asks for the JWT bundle again, unless that was done moments ago (a
    /// token naming an unknown key must not make every call reach the issuer).
    pub async fn refresh_jwt_bundle_soon(&self) {
        let last = self.jwt_bundle_asked.load(Ordering::Relaxed);
        if now_secs() - last < JWT_BUNDLE_MIN_INTERVAL {
            return;
        }
        if let Err(e) = self.refresh_jwt_bundle().await {
            tracing::warn!(error = %e, "cannot fetch the JWT bundle");
        }
    }

    /// A JWT-SVID for `audience` (a cached one while it has more than half its
    /// life ahead).
    pub async fn jwt_svid(&self, audience: &[String]) -> Result<String, AttestError> {
        let mut key = audience.to_vec();
        key.sort();
        key.dedup();
        let now = now_secs();
        if let Ok(cache) = self.jwt_cache.lock()
            && let Some(hit) = cache.get(&key)
            && now < hit.issued + (hit.expires - hit.issued) / 2
        {
            return Ok(hit.token.clone());
        }
        let reply = self
            .client
            .jwt_svid(&self.svid(), &self.bundle.load(), &key)
            .await?;
        if let Ok(mut cache) = self.jwt_cache.lock() {
            cache.retain(|_, c| c.expires > now);
            cache.insert(
                key,
                CachedJwt {
                    token: reply.token.clone(),
                    issued: now,
                    expires: reply.expires_at,
                },
            );
        }
        Ok(reply.token)
    }

    /// The identity.
    pub fn id(&self) -> SpiffeId {
        self.svid.borrow().id().clone()
    }

    /// The current SVID.
    pub fn svid(&self) -> Arc<Svid> {
        self.svid.borrow().clone()
    }

    /// Follows renewals.
    pub fn watch(&self) -> watch::Receiver<Arc<Svid>> {
        self.svid.subscribe()
    }

    /// The trust bundle, updated on renewal (CA rotations reach workloads so).
    pub fn bundle(&self) -> SharedBundle {
        self.bundle.clone()
    }

    /// The certificate resolver to give rustls, for both sides.
    pub fn resolver(&self) -> Arc<SvidResolver> {
        self.resolver.clone()
    }

    /// Renews once, now.
    pub async fn renew_now(&self) -> Result<(), AttestError> {
        let current = self.svid();
        let (svid, bundle) = self.client.renew(&current, &self.bundle.load()).await?;
        save(&self.dir, &svid, &bundle)?;
        self.resolver
            .replace(&svid)
            .map_err(|e| AttestError::Key(e.to_string()))?;
        self.bundle.store(Arc::new(bundle));
        tracing::info!(id = %svid.id(), not_after = svid.issued().not_after, "renewed");
        self.renew_at.store(halfway(&svid), Ordering::Relaxed);
        self.svid.send_replace(Arc::new(svid));
        if let Err(e) = self.refresh_jwt_bundle().await {
            tracing::warn!(error = %e, "cannot fetch the JWT bundle");
        }
        Ok(())
    }

    /// Renews at half-life, forever; retries with backoff on failure until the
    /// SVID expires, after which only a new join token helps.
    pub async fn run_renewals(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let due = self.renew_at.load(Ordering::Relaxed);
            let wait = u64::try_from(due - now_secs()).unwrap_or(0);
            if wait > 0 {
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            match self.renew_now().await {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(e) => {
                    if self.svid().is_expired(now_secs()) {
                        tracing::error!(error = %e, "the SVID expired before it could be renewed: attest again with a new join token");
                        return;
                    }
                    tracing::warn!(error = %e, retry_in = ?backoff, "renewal failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
