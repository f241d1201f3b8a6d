//! Cluster facts read from manifests in the shapes real tools write them:
//! `kubectl get -o yaml` (a List, with status and managedFields), `helm
//! template` (`# Source:` comments, empty documents, octal file modes) and
//! `kustomize build` (sorted keys, generated names). They read as kubectl reads
//! them, and a field that does not fit is reported at its own place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ibac_model::DocumentError;
use ibac_render::facts::{ClusterFacts, FactsOptions};

fn read(name: &str, text: &str) -> Result<ClusterFacts, Vec<DocumentError>> {
    ClusterFacts::read(&[(name.into(), text.into())], &FactsOptions::default())
}

fn errors(name: &str, text: &str) -> Vec<String> {
    read(name, text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn kinds(facts: &ClusterFacts) -> Vec<String> {
    facts
        .workloads()
        .map(|w| format!("{} {}", w.kind, w.id))
        .collect()
}

/// What `helm template` prints for a chart: source comments, empty documents, octal file modes.
const HELM_TEMPLATE: &str = include_str!("manifests/helm-template.yaml");

#[test]
fn helm_template_output_with_octal_modes_reads() {
    let facts = read("helm.yaml", HELM_TEMPLATE).unwrap();
    assert_eq!(kinds(&facts), ["StatefulSet kafka.kafka"]);
    assert_eq!(facts.workloads().next().unwrap().ports[0].port, 9092);
    let service = facts.services().values().next().unwrap();
    assert_eq!(service.id.as_str(), "kafka.kafka");
    assert_eq!(service.ports[0].port, 9092);
}

/// What `kubectl get -o yaml` prints: a List with status and managed fields.
const KUBECTL_GET: &str = include_str!("manifests/kubectl-get.yaml");

#[test]
fn kubectl_get_output_with_status_and_managed_fields_reads() {
    let facts = read("get.yaml", KUBECTL_GET).unwrap();
    assert_eq!(kinds(&facts), ["Deployment redis-cart.otterize-ecom-demo"]);
    assert_eq!(facts.services().len(), 1);
}

/// What `kustomize build` prints.
const KUSTOMIZE_BUILD: &str = include_str!("manifests/kustomize-build.yaml");

#[test]
fn kustomize_output_reads() {
    let facts = read("kustomize.yaml", KUSTOMIZE_BUILD).unwrap();
    assert_eq!(kinds(&facts), ["StatefulSet prod-redis.shop"]);
}

#[test]
fn a_field_that_does_not_fit_is_reported_at_its_place() {
    let bad = HELM_TEMPLATE.replace("containerPort: 9092", "containerPort: ninety");
    let line = bad
        .lines()
        .position(|l| l.contains("containerPort: ninety"))
        .unwrap()
        + 1;
    assert_eq!(
        errors("helm.yaml", &bad),
        [format!(
            "helm.yaml:{line}:30: StatefulSet `kafka`: `spec.template.spec.containers[0].ports[0].containerPort`: invalid type: string \"ninety\", expected i32"
        )]
    );
    // Inside a List, too.
    let bad = KUBECTL_GET.replace(
        "replicas: 1\n    revisionHistoryLimit",
        "replicas: one\n    revisionHistoryLimit",
    );
    let line = bad
        .lines()
        .position(|l| l.contains("replicas: one"))
        .unwrap()
        + 1;
    let errs = errors("get.yaml", &bad);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!(
            "get.yaml:{line}:15: Deployment `redis-cart`: `spec.replicas`: invalid type: string \"one\""
        )),
        "{errs:?}"
    );
    // A name ibac cannot use points at the name.
    let bad = KUSTOMIZE_BUILD.replace(
        "  name: prod-redis\n  namespace: shop\nspec:\n  selector",
        "  name: Prod-Redis\n  namespace: shop\nspec:\n  selector",
    );
    let line = bad.lines().position(|l| l.contains("Prod-Redis")).unwrap() + 1;
    let errs = errors("kustomize.yaml", &bad);
    assert!(
        errs[0].starts_with(&format!(
            "kustomize.yaml:{line}:9: StatefulSet `Prod-Redis`: ibac cannot name it"
        )),
        "{errs:?}"
    );
}
