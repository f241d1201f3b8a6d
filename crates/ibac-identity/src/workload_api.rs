//! The SPIFFE Workload API over a Unix socket, so that existing SPIFFE client
//! libraries get their SVIDs from ibac unchanged.
//!
//! Callers are told apart by what the kernel says about the socket's peer
//! (uid, and the executable of its pid), and each is served only the identity
//! it was registered for. Requests without the `workload.spiffe.io: true`
//! header are refused (InvalidArgument); unregistered callers get
//! PermissionDenied. `FetchX509SVID` streams a new response on every renewal.
//! Whatever `:authority` a client sends on the socket is accepted
//! ([`crate::authority`]).
//!
//! JWT-SVIDs come from a [`JwtSource`] (the agent asks the issuer, per
//! caller's identity as for X.509). `FetchJWTSVID` serves only the caller's
//! own SPIFFE ID; `FetchJWTBundles` streams the JWT bundle (JWKS JSON) on
//! every change; `ValidateJWTSVID` checks a token with [`crate::jwt::validate`]
//! and answers InvalidArgument with the reason when it is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::{UnixListenerStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use crate::attest::WorkloadIdentity;
use crate::authority::AuthorityRewrite;
use crate::jwt::{self, JwtBundle, JwtError};
use crate::svid::Svid;
use crate::tls::SharedBundle;

#[allow(missing_docs, unused_qualifications, clippy::all, clippy::pedantic)]
mod proto {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}

pub use proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use proto::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
pub use proto::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svid, X509svidRequest,
    X509svidResponse,
};

/// A client of the Workload API served on the Unix socket at `socket`. The
/// URI is a placeholder: the connection goes to the socket, and the server
/// accepts whatever `:authority` arrives there.
pub async fn connect(
    socket: &Path,
) -> Result<SpiffeWorkloadApiClient<tonic::transport::Channel>, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    let channel = tonic::transport::Endpoint::try_from("http://localhost")?
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await?;
    Ok(SpiffeWorkloadApiClient::new(channel))
}

/// The metadata every Workload API call must carry.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// Which local processes a registration covers; every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The caller's user id.
    pub uid: Option<u32>,
    /// The caller's executable (as `/proc/<pid>/exe` resolves).
    pub exe: Option<PathBuf>,
}

/// What the kernel reports about a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Process id, when known.
    pub pid: Option<i32>,
    /// Executable, when readable.
    pub exe: Option<PathBuf>,
}

impl Selector {
    /// Whether `caller` is covered. A selector with no field covers nobody.
    pub fn matches(&self, caller: &Caller) -> bool {
        if self.uid.is_none() && self.exe.is_none() {
            return false;
        }
        self.uid.is_none_or(|uid| uid == caller.uid)
            && self
                .exe
                .as_ref()
                .is_none_or(|exe| caller.exe.as_ref() == Some(exe))
    }
}

/// Where JWT-SVIDs and the JWT bundle of one identity come from.
#[tonic::async_trait]
pub trait JwtSource: Send + Sync {
    /// A JWT-SVID for the identity, for `audience` (checked non-empty).
    async fn jwt_svid(&self, audience: &[String]) -> Result<String, String>;
    /// The JWT bundle, following updates.
    fn jwt_bundle(&self) -> watch::Receiver<Arc<JwtBundle>>;
    /// Asks for the bundle again (a token named a key it lacks); may do
    /// nothing when it was asked for moments ago.
    async fn refresh_jwt_bundle(&self);
}

#[tonic::async_trait]
impl JwtSource for WorkloadIdentity {
    async fn jwt_svid(&self, audience: &[String]) -> Result<String, String> {
        WorkloadIdentity::jwt_svid(self, audience)
            .await
            .map_err(|e| e.to_string())
    }

    fn jwt_bundle(&self) -> watch::Receiver<Arc<JwtBundle>> {
        WorkloadIdentity::jwt_bundle(self)
    }

    async fn refresh_jwt_bundle(&self) {
        self.refresh_jwt_bundle_soon().await;
    }
}

/// An identity the API can serve: the SVID as it is renewed, the bundle, and
/// where its JWT-SVIDs come from.
#[derive(Clone)]
pub struct IdentitySource {
    /// The SVID, updated on renewal.
    pub svid: watch::Receiver<Arc<Svid>>,
    /// The trust bundle.
    pub bundle: SharedBundle,
    /// JWT-SVIDs; without it, the JWT calls answer Unimplemented.
    pub jwt: Option<Arc<dyn JwtSource>>,
}

impl std::fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySource")
            .field("id", &self.svid.borrow().id().to_string())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

/// Who gets which identity.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The callers.
    pub selector: Selector,
    /// Their identity.
    pub identity: IdentitySource,
}

/// The Workload API service.
#[derive(Clone, Debug)]
pub struct WorkloadApi {
    registrations: Arc<Vec<Registration>>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    let info = request
        .extensions()
        .get::<UdsConnectInfo>()
        .ok_or_else(|| Status::permission_denied("the caller is not on a Unix socket"))?;
    let cred = info.peer_cred.ok_or_else(|| {
        Status::permission_denied("the kernel gave no credentials for the caller")
    })?;
    let pid = cred.pid();
    Ok(Caller {
        uid: cred.uid(),
        pid,
        exe: pid.and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok()),
    })
}

fn check_header<T>(request: &Request<T>) -> Result<(), Status> {
    match request.metadata().get(SECURITY_HEADER).map(|v| v.to_str()) {
        Some(Ok("true")) => Ok(()),
        _ => Err(Status::invalid_argument(format!(
            "the `{SECURITY_HEADER}: true` header is required"
        ))),
    }
}

fn x509_response(svid: &Svid, bundle: &SharedBundle) -> X509svidResponse {
    let bundle = bundle.load();
    X509svidResponse {
        svids: vec![X509svid {
            spiffe_id: svid.id().to_string(),
            x509_svid: svid
                .issued()
                .chain
                .iter()
                .flat_map(|c| c.as_ref().iter().copied())
                .collect(),
            x509_svid_key: svid.key_der().to_vec(),
            bundle: bundle.to_der_concat(),
            hint: String::new(),
        }],
        crl: Vec::new(),
        federated_bundles: HashMap::new(),
    }
}

fn jwt_bundles_response(bundle: &JwtBundle) -> JwtBundlesResponse {
    JwtBundlesResponse {
        bundles: HashMap::from([(bundle.trust_domain().to_string(), bundle.to_jwks())]),
    }
}

/// JSON as a protobuf `Struct` value.
fn to_proto(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_proto).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
    }
}

fn jwt_source(identity: &IdentitySource) -> Result<Arc<dyn JwtSource>, Status> {
    identity
        .jwt
        .clone()
        .ok_or_else(|| Status::unimplemented("this agent serves no JWT-SVIDs for this identity"))
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn bundles_response(bundle: &SharedBundle) -> X509BundlesResponse {
    let bundle = bundle.load();
    X509BundlesResponse {
        crl: Vec::new(),
        bundles: HashMap::from([(
            bundle.trust_domain().id().to_string(),
            bundle.to_der_concat(),
        )]),
    }
}

impl WorkloadApi {
    /// A service for these registrations.
    pub fn new(registrations: Vec<Registration>) -> Self {
        WorkloadApi {
            registrations: Arc::new(registrations),
        }
    }

    fn identity_for<T>(&self, request: &Request<T>) -> Result<IdentitySource, Status> {
        check_header(request)?;
        let caller = caller_of(request)?;
        self.registrations
            .iter()
            .find(|r| r.selector.matches(&caller))
            .map(|r| r.identity.clone())
            .ok_or_else(|| {
                tracing::info!(uid = caller.uid, pid = ?caller.pid, exe = ?caller.exe, "Workload API caller has no registered identity");
                Status::permission_denied("no identity is registered for this process")
            })
    }

    /// Where the caller's JWT-SVIDs come from, if its identity has any.
    fn jwt_source_for<T>(&self, request: &Request<T>) -> Result<Arc<dyn JwtSource>, Status> {
        jwt_source(&self.identity_for(request)?)
    }

    /// One response for the caller's current SVID and one more on every
    /// renewal: the X.509 calls answer with a stream that follows the SVID.
    fn on_every_svid<T, R: Send + 'static>(
        &self,
        request: &Request<T>,
        respond: fn(&Svid, &SharedBundle) -> R,
    ) -> Result<Response<ResponseStream<R>>, Status> {
        let identity = self.identity_for(request)?;
        let bundle = identity.bundle;
        let stream = WatchStream::new(identity.svid).map(move |svid| Ok(respond(&svid, &bundle)));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = ResponseStream<X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        self.on_every_svid(&request, x509_response)
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        self.on_every_svid(&request, |_, bundle| bundles_response(bundle))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        let identity = self.identity_for(&request)?;
        let source = jwt_source(&identity)?;
        let id = identity.svid.borrow().id().clone();
        let request = request.into_inner();
        if !request.spiffe_id.is_empty() && request.spiffe_id != id.as_str() {
            return Err(Status::permission_denied(format!(
                "this process may have JWT-SVIDs for `{id}` only, not for `{}`",
                request.spiffe_id
            )));
        }
        jwt::check_audience(&request.audience)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let token = source
            .jwt_svid(&request.audience)
            .await
            .map_err(|e| Status::unavailable(format!("cannot get a JWT-SVID: {e}")))?;
        Ok(Response::new(JwtsvidResponse {
            svids: vec![proto::Jwtsvid {
                spiffe_id: id.to_string(),
                svid: token,
                hint: String::new(),
            }],
        }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        let source = self.jwt_source_for(&request)?;
        let stream =
            WatchStream::new(source.jwt_bundle()).map(|bundle| Ok(jwt_bundles_response(&bundle)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        let source = self.jwt_source_for(&request)?;
        let request = request.into_inner();
        if request.audience.is_empty() {
            return Err(Status::invalid_argument("`audience` is required"));
        }
        if request.svid.is_empty() {
            return Err(Status::invalid_argument("`svid` is required"));
        }
        let check = |bundle: &JwtBundle| {
            jwt::validate(&request.svid, bundle, &request.audience, unix_now())
        };
        let held = source.jwt_bundle().borrow().clone();
        let valid = match check(&held) {
            // A key the agent has not seen yet may come from a rotation.
            Err(JwtError::UnknownKey { .. }) => {
                source.refresh_jwt_bundle().await;
                let fresh = source.jwt_bundle().borrow().clone();
                check(&fresh)
            }
            other => other,
        }
        .map_err(|e| Status::invalid_argument(format!("the JWT-SVID is refused: {e}")))?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: valid.id.to_string(),
            claims: Some(to_struct(&valid.claims)),
        }))
    }
}

/// Serves the API on a Unix socket at `path` (replacing a stale socket file)
/// until `shutdown` completes. The socket is world-connectable: who gets what
/// is decided per caller by its credentials.
pub async fn serve(
    path: &Path,
    api: WorkloadApi,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), std::io::Error> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    }
    // Clients send all sorts of `:authority` on a Unix socket; see `authority`.
    let incoming = UnixListenerStream::new(listener).map(|conn| conn.map(AuthorityRewrite::new));
    tonic::transport::Server::builder()
        .add_service(SpiffeWorkloadApiServer::new(api))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(std::io::Error::other)
}
