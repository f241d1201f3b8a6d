//! The webhook configuration the operator writes, pointing the API server at
//! its webhooks.
//!
//! Choices, and what users see while the operator is down:
//! - `failurePolicy: Fail`: an ibac object is never admitted unchecked. While
//!   the operator is down, creating or changing ClientIntents and the other
//!   ibac kinds fails with kubectl's "failed calling webhook" error; deleting
//!   them works (deletions are not sent), and enforcement already in place
//!   stays as it is.
//! - `timeoutSeconds: 5`: a slow operator fails a request quickly instead of
//!   holding kubectl for the API server's 10 s default.
//! - a `namespaceSelector` that leaves `kube-system` and the operator's own
//!   namespace alone, and rules that match only ibac's groups: nothing the
//!   operator needs in order to start goes through its own webhook, so a
//!   restart can never deadlock on itself.
//! - conversion (set on the CRDs, not here) has no namespace selector: the
//!   API server asks the operator whenever an Otterize object is read or
//!   written in a version other than `v2beta1`. The operator itself reads
//!   only `v2beta1` and `ibac.dev/v1`, so it never waits on its own
//!   conversion either; while it is down, those other versions fail and
//!   `v2beta1` keeps working.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, WebhookConversion,
};

use crate::crd::{IBAC_GROUP, MANAGED_BY, OTTERIZE_GROUP};

/// The name of the ValidatingWebhookConfiguration.
pub const VALIDATING: &str = "ibac";

/// How long the API server waits for an answer.
pub const TIMEOUT_SECONDS: i32 = 5;

/// Where the API server reaches the webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `https://host:port` (an operator outside the cluster).
    Url(String),
    /// A Service on port 443 (an operator in a pod).
    Service {
        /// The Service's name.
        name: String,
        /// Its namespace, the operator's.
        namespace: String,
    },
}

impl Target {
    /// Where the API server sends ConversionReviews (`/convert`).
    fn conversion_config(&self, ca_pem: &str) -> apiextensions::WebhookClientConfig {
        let admission = self.client_config("/convert", ca_pem);
        apiextensions::WebhookClientConfig {
            url: admission.url,
            ca_bundle: admission.ca_bundle,
            service: admission.service.map(|s| apiextensions::ServiceReference {
                name: s.name,
                namespace: s.namespace,
                path: s.path,
                port: s.port,
            }),
        }
    }

    fn client_config(&self, path: &str, ca_pem: &str) -> WebhookClientConfig {
        let ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
        match self {
            Target::Url(base) => WebhookClientConfig {
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
                ca_bundle,
                service: None,
            },
            Target::Service { name, namespace } => WebhookClientConfig {
                url: None,
                ca_bundle,
                service: Some(ServiceReference {
                    name: name.clone(),
                    namespace: namespace.clone(),
                    path: Some(path.to_owned()),
                    port: Some(443),
                }),
            },
        }
    }
}

/// The kinds whose versions differ in shape (v1's `service`/`calls`, v2's
/// `workload`/`targets`; `service` or `workload` for the Kafka broker): the
/// API server converts them through the webhook. The database configs have
/// one shape in every version, so the API server relabels them itself and
/// reading them never depends on the operator.
pub const CONVERTED: [&str; 3] = [
    "clientintents.k8s.otterize.com",
    "protectedservices.k8s.otterize.com",
    "kafkaserverconfigs.k8s.otterize.com",
];

/// Points the CRDs in [`CONVERTED`] at the conversion webhook at `target`,
/// trusted through `ca_pem`; the others are left as they are.
pub fn with_conversion(crds: &mut [CustomResourceDefinition], target: &Target, ca_pem: &str) {
    for crd in crds {
        if !CONVERTED.contains(&crd.metadata.name.as_deref().unwrap_or_default()) {
            continue;
        }
        crd.spec.conversion = Some(CustomResourceConversion {
            strategy: "Webhook".to_owned(),
            webhook: Some(WebhookConversion {
                client_config: Some(target.conversion_config(ca_pem)),
                conversion_review_versions: vec!["v1".to_owned()],
            }),
        });
    }
}

/// The validating webhook at `target`, trusted through `ca_pem`;
/// `own_namespace` is left alone, and with `watched` namespaces given, only
/// those are checked.
pub fn validating(
    target: &Target,
    ca_pem: &str,
    own_namespace: &str,
    watched: &[String],
) -> ValidatingWebhookConfiguration {
    let mut requirements = vec![LabelSelectorRequirement {
        key: "kubernetes.io/metadata.name".to_owned(),
        operator: "NotIn".to_owned(),
        values: Some(vec!["kube-system".to_owned(), own_namespace.to_owned()]),
    }];
    if !watched.is_empty() {
        requirements.push(LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".to_owned(),
            operator: "In".to_owned(),
            values: Some(watched.to_vec()),
        });
    }
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(VALIDATING.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "validate.ibac.dev".to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: target.client_config("/validate", ca_pem),
            failure_policy: Some("Fail".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(requirements),
                match_labels: None,
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![OTTERIZE_GROUP.to_owned(), IBAC_GROUP.to_owned()]),
                api_versions: Some(vec!["*".to_owned()]),
                operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                resources: Some(vec!["*".to_owned()]),
                scope: Some("Namespaced".to_owned()),
            }]),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            ..ValidatingWebhook::default()
        }]),
    }
}
