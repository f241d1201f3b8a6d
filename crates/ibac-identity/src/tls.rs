//! mTLS with SPIFFE identities for rustls: verifiers for both sides that apply
//! [`verify_svid`](crate::verify::verify_svid) against a trust bundle that can
//! change while connections are open (CA rotation), and certificate resolvers
//! that swap in a renewed SVID without dropping connections.
//!
//! Only TLS 1.3 is offered, with the ring provider.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, Error, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::bundle::{TrustBundle, fingerprint};
use crate::spiffe_id::SpiffeId;
use crate::svid::Svid;
use crate::verify::{LeafInfo, PeerRole, SvidError, verify_svid};

/// A trust bundle that can be replaced while in use.
pub type SharedBundle = Arc<ArcSwap<TrustBundle>>;

/// The crypto provider ibac uses everywhere: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn refuse(e: SvidError) -> Error {
    Error::General(format!("peer certificate refused: {e}"))
}

/// Checks a handshake signature with the provider's algorithms, so that every
/// verifier here accepts exactly the schemes ibac offers.
fn check_signature(
    verify: fn(
        &[u8],
        &CertificateDer<'_>,
        &DigitallySignedStruct,
        &WebPkiSupportedAlgorithms,
    ) -> Result<HandshakeSignatureValid, Error>,
    msg: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    verify(
        msg,
        cert,
        dss,
        &provider().signature_verification_algorithms,
    )
}

/// The handshake-signature half of a certificate verifier, the same for the
/// server and client verifiers alike.
macro_rules! signature_checks_by_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            msg: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            check_signature(rustls::crypto::verify_tls12_signature, msg, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            msg: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            check_signature(rustls::crypto::verify_tls13_signature, msg, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Which server identity a client accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedServer {
    /// Exactly this SPIFFE ID: the intended target.
    Id(SpiffeId),
    /// Any SVID of the bundle's trust domain.
    AnyInTrustDomain,
}

/// Verifies a server's SVID; never looks at DNS names or the CN.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    trust: ServerTrust,
}

/// What a server's chain is checked against. One verifier type serves both,
/// so that the rustls plumbing around the check exists once.
#[derive(Debug)]
enum ServerTrust {
    /// The (rotating) trust bundle, and which of its identities is wanted.
    Bundle {
        bundle: SharedBundle,
        expected: ExpectedServer,
    },
    /// The lowercase SHA-256 fingerprint (hex) of the CA the chain must
    /// include: how a newcomer holding only a join token knows it talks to
    /// the right CA.
    PinnedCa { fingerprint: String },
}

impl SpiffeServerVerifier {
    /// A verifier accepting only `expected`.
    pub fn new(bundle: SharedBundle, expected: ExpectedServer) -> Self {
        SpiffeServerVerifier {
            trust: ServerTrust::Bundle { bundle, expected },
        }
    }

    /// Trusts a server only if its chain includes the CA certificate with
    /// the SHA-256 `fingerprint` (hex) and its leaf is an SVID signed by
    /// that CA.
    pub fn pinned_ca(fingerprint: &str) -> Self {
        SpiffeServerVerifier {
            trust: ServerTrust::PinnedCa {
                fingerprint: fingerprint.to_ascii_lowercase(),
            },
        }
    }
}

/// The chain to verify: the leaf first, then the certificates that sign it.
fn chain<'a>(
    end_entity: &CertificateDer<'a>,
    intermediates: impl IntoIterator<Item = CertificateDer<'a>>,
) -> Vec<CertificateDer<'a>> {
    let mut chain = vec![end_entity.clone()];
    chain.extend(intermediates);
    chain
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match &self.trust {
            ServerTrust::Bundle { bundle, expected } => {
                let chain = chain(end_entity, intermediates.iter().cloned());
                let id =
                    verify_svid(&chain, &bundle.load(), now, PeerRole::Server).map_err(refuse)?;
                if let ExpectedServer::Id(want) = expected
                    && *want != id
                {
                    return Err(Error::General(format!(
                        "peer certificate refused: the server is `{id}`, not the intended `{want}`"
                    )));
                }
            }
            ServerTrust::PinnedCa { fingerprint } => {
                verify_pinned(fingerprint, end_entity, intermediates, now)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    signature_checks_by_provider!();
}

/// Verifies a chain that must include the CA with `pinned_fingerprint`, with
/// that CA as the only trust anchor of the leaf's trust domain.
fn verify_pinned(
    pinned_fingerprint: &str,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), Error> {
    let pinned = intermediates
        .iter()
        .find(|c| fingerprint(c) == pinned_fingerprint)
        .ok_or_else(|| {
            Error::General("the server does not present the CA the join token names".into())
        })?;
    let info = LeafInfo::parse(end_entity).map_err(refuse)?;
    let id = match info.uri_sans.as_slice() {
        [uri] => SpiffeId::parse(uri).map_err(|reason| {
            refuse(SvidError::BadSpiffeId {
                uri: uri.clone(),
                reason,
            })
        })?,
        _ => return Err(refuse(SvidError::NoUriSan)),
    };
    let td = crate::spiffe_id::TrustDomain::parse(id.trust_domain())
        .map_err(|e| Error::General(e.to_string()))?;
    let bundle = TrustBundle::new(td, vec![pinned.clone().into_owned()]);
    let others = intermediates.iter().filter(|c| *c != pinned).cloned();
    verify_svid(&chain(end_entity, others), &bundle, now, PeerRole::Server).map_err(refuse)?;
    Ok(())
}

/// Verifies a client's SVID. With `mandatory` false, clients may also
/// connect without a certificate (their requests are then unauthenticated).
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    bundle: SharedBundle,
    mandatory: bool,
}

impl SpiffeClientVerifier {
    /// A verifier for the given bundle.
    pub fn new(bundle: SharedBundle, mandatory: bool) -> Self {
        SpiffeClientVerifier { bundle, mandatory }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let chain = chain(end_entity, intermediates.iter().cloned());
        verify_svid(&chain, &self.bundle.load(), now, PeerRole::Client).map_err(refuse)?;
        Ok(ClientCertVerified::assertion())
    }

    signature_checks_by_provider!();
}

/// Our own certificate, swappable: renewals reach new handshakes at once and
/// leave established connections alone.
#[derive(Debug)]
pub struct SvidResolver {
    current: ArcSwap<CertifiedKey>,
}

impl SvidResolver {
    /// A resolver presenting `svid`.
    pub fn new(svid: &Svid) -> Result<Arc<Self>, Error> {
        Ok(Arc::new(SvidResolver {
            current: ArcSwap::new(svid.certified_key()?),
        }))
    }

    /// A resolver presenting a certificate chain that is not an SVID (the
    /// control plane's own chain, say).
    pub fn from_certified_key(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(SvidResolver {
            current: ArcSwap::new(key),
        })
    }

    /// Presents `svid` from now on.
    pub fn replace(&self, svid: &Svid) -> Result<(), Error> {
        self.current.store(svid.certified_key()?);
        Ok(())
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A TLS 1.3 server config presenting `ours` and verifying clients.
pub fn server_config(
    ours: Arc<SvidResolver>,
    clients: Arc<dyn ClientCertVerifier>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(clients)
        .with_cert_resolver(ours);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A TLS 1.3 client config presenting `ours` (if any) and verifying the server.
pub fn client_config(
    ours: Option<Arc<SvidResolver>>,
    server: Arc<dyn ServerCertVerifier>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server);
    let mut config = match ours {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The SPIFFE ID of a peer whose chain the verifiers above accepted.
pub fn peer_id(certs: Option<&[CertificateDer<'_>]>) -> Option<SpiffeId> {
    let leaf = certs?.first()?;
    let info = LeafInfo::parse(leaf).ok()?;
    match info.uri_sans.as_slice() {
        [uri] => SpiffeId::parse(uri).ok(),
        _ => None,
    }
}
