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
//! JWT-SVIDs are not issued: those calls answer Unimplemented.

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

use crate::authority::AuthorityRewrite;
use crate::svid::Svid;
use crate::tls::SharedBundle;

#[allow(missing_docs, unused_qualifications, clippy::all, clippy::pedantic)]
mod proto {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}

pub use proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use proto::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
pub use proto::{
    X509BundlesRequest, X509BundlesResponse, X509svid, X509svidRequest, X509svidResponse,
};

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

/// An identity the API can serve: the SVID as it is renewed, and the bundle.
#[derive(Clone, Debug)]
pub struct IdentitySource {
    /// The SVID, updated on renewal.
    pub svid: watch::Receiver<Arc<Svid>>,
    /// The trust bundle.
    pub bundle: SharedBundle,
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
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = ResponseStream<X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<proto::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let identity = self.identity_for(&request)?;
        let bundle = identity.bundle.clone();
        let stream =
            WatchStream::new(identity.svid).map(move |svid| Ok(x509_response(&svid, &bundle)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let identity = self.identity_for(&request)?;
        let bundle = identity.bundle.clone();
        let stream = WatchStream::new(identity.svid).map(move |_| Ok(bundles_response(&bundle)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_jwtsvid(
        &self,
        _request: Request<proto::JwtsvidRequest>,
    ) -> Result<Response<proto::JwtsvidResponse>, Status> {
        Err(Status::unimplemented("ibac issues X.509-SVIDs only"))
    }

    async fn fetch_jwt_bundles(
        &self,
        _request: Request<proto::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented("ibac issues X.509-SVIDs only"))
    }

    async fn validate_jwtsvid(
        &self,
        _request: Request<proto::ValidateJwtsvidRequest>,
    ) -> Result<Response<proto::ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented("ibac issues X.509-SVIDs only"))
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
