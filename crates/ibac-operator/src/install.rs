//! Puts ibac's CRDs in force: server-side apply as field manager `ibac`, then a
//! wait until the API server serves them. Applying what is already there
//! changes nothing (the API server skips a no-op apply), so every start can do it.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::Error;

/// The field manager of everything ibac writes.
pub const FIELD_MANAGER: &str = "ibac";

/// How long a new CRD may take to be served.
const ESTABLISHED_WITHIN: Duration = Duration::from_secs(60);

/// Applies `crds` and waits until each is established.
pub async fn apply_crds(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // ibac owns its CRDs: take over fields that a `kubectl apply` of an older
    // chart left behind.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|source| Error::ApplyCrd {
                name: name.clone(),
                source: Box::new(source),
            })?;
        tracing::debug!(crd = %name, "applied");
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISHED_WITHIN, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(Error::WaitCrd {
                    name,
                    reason: source.to_string(),
                });
            }
            Err(_) => {
                return Err(Error::WaitCrd {
                    name,
                    reason: format!("not established after {}s", ESTABLISHED_WITHIN.as_secs()),
                });
            }
        }
    }
    Ok(())
}

/// Applies the validating webhook configuration (its `caBundle` included).
pub async fn apply_webhook(
    client: &kube::Client,
    configuration: &ValidatingWebhookConfiguration,
) -> Result<(), Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let name = configuration.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(configuration),
    )
    .await
    .map_err(|source| Error::ApplyWebhook {
        name,
        source: Box::new(source),
    })?;
    Ok(())
}
