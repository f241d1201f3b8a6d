//! Keeping the webhooks' CA in a Secret of the operator's namespace.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use time::OffsetDateTime;

use super::tls::Authority;
use crate::Error;
use crate::crd::MANAGED_BY;

/// The Secret's name.
pub const SECRET: &str = "ibac-webhook-ca";

fn read(secret: &Secret, namespace: &str) -> Result<Authority, Error> {
    let field = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .ok_or_else(|| Error::WebhookSecret {
                namespace: namespace.to_owned(),
                reason: format!("it has no `{key}`; delete it to have a new CA made"),
            })
    };
    Authority::from_pem(&field("ca.crt")?, &field("ca.key")?).map_err(|e| Error::WebhookSecret {
        namespace: namespace.to_owned(),
        reason: format!("{e}; delete it to have a new CA made"),
    })
}

/// The CA kept in `namespace`, made and kept there first if there is none.
pub async fn load_or_create(client: &kube::Client, namespace: &str) -> Result<Authority, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let unreachable = |e: kube::Error| Error::WebhookSecret {
        namespace: namespace.to_owned(),
        reason: e.to_string(),
    };
    if let Some(secret) = api.get_opt(SECRET).await.map_err(unreachable)? {
        return read(&secret, namespace);
    }
    let authority = Authority::generate(OffsetDateTime::now_utc())?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                "ca.crt".to_owned(),
                ByteString(authority.cert_pem().as_bytes().to_vec()),
            ),
            (
                "ca.key".to_owned(),
                ByteString(authority.key_pem().as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(authority),
        // Another replica made it first: use that one.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = api.get(SECRET).await.map_err(unreachable)?;
            read(&secret, namespace)
        }
        Err(e) => Err(unreachable(e)),
    }
}
