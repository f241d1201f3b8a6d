//! A client of the control plane's API, for the CLI and tests: a bearer
//! token, and the server checked against the trust bundle to be the issuer.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use ibac_identity::attest::ISSUER_COMPONENT;
use ibac_identity::bundle::TrustBundle;
use ibac_identity::https::{CallError, Endpoint};
use ibac_identity::spiffe_id::{SpiffeId, TrustDomain};
use ibac_identity::tls::{ExpectedServer, SpiffeServerVerifier, client_config};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;

/// A call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not set up right: address, bundle, trust domain.
    #[error("{0}")]
    Setup(String),
    /// Not reachable.
    #[error("{0}")]
    Call(#[from] CallError),
    /// The API refused.
    #[error("{}", .body.error)]
    Api {
        /// The status.
        status: StatusCode,
        /// What it said.
        body: ErrorBody,
    },
    /// An answer this client does not understand.
    #[error("unexpected answer from the control plane: {0}")]
    BadReply(String),
}

/// Answers larger than this are refused.
const MAX_ANSWER: usize = 256 << 20;

/// The API, as a token holder.
#[derive(Clone)]
pub struct ApiClient {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    token: String,
}

impl ApiClient {
    /// A client of `url` (https://host:port) with `token`, trusting
    /// `bundle_pem` for `trust_domain`.
    pub fn new(
        url: &str,
        token: &str,
        bundle_pem: &str,
        trust_domain: &str,
    ) -> Result<Self, ClientError> {
        let endpoint = Endpoint::parse(url)?;
        let td = TrustDomain::parse(trust_domain)
            .map_err(|e| ClientError::Setup(format!("`{trust_domain}`: {e}")))?;
        let bundle = TrustBundle::from_pem(td.clone(), bundle_pem.as_bytes())
            .map_err(|e| ClientError::Setup(format!("the trust bundle: {e}")))?;
        let issuer = SpiffeId::for_component(&td, ISSUER_COMPONENT)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let verifier = Arc::new(SpiffeServerVerifier::new(
            Arc::new(ArcSwap::from_pointee(bundle)),
            ExpectedServer::Id(issuer),
        ));
        let tls = client_config(None, verifier, &[b"http/1.1"])
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(ApiClient {
            endpoint,
            tls: Arc::new(tls),
            token: token.trim().to_string(),
        })
    }

    /// Sends a request and returns the raw answer body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let mut request = http::Request::builder().method(method).uri(path).header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", self.token),
        );
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let (status, answer) = self
            .endpoint
            .send(
                self.tls.clone(),
                request,
                Duration::from_secs(60),
                MAX_ANSWER,
            )
            .await?;
        if !status.is_success() {
            let body = serde_json::from_slice::<ErrorBody>(&answer).unwrap_or_else(|_| ErrorBody {
                error: format!("HTTP {status}: {}", String::from_utf8_lossy(&answer).trim()),
                errors: Vec::new(),
            });
            return Err(ClientError::Api { status, body });
        }
        Ok(answer)
    }

    fn decode<T: DeserializeOwned>(answer: &Bytes) -> Result<T, ClientError> {
        serde_json::from_slice(answer).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// GET, JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::decode(&self.raw(Method::GET, path, None).await?)
    }

    /// A method with a JSON body and a JSON answer.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Setup(e.to_string()))?;
        Self::decode(&self.raw(method, path, Some(json)).await?)
    }

    /// DELETE, no answer expected.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.raw(Method::DELETE, path, None).await.map(|_| ())
    }
}
