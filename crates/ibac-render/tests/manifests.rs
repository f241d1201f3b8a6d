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

const HELM_TEMPLATE: &str = r#"---
# Source: kafka/templates/scripts-configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: kafka-scripts
  namespace: kafka
  labels:
    app.kubernetes.io/name: kafka
    helm.sh/chart: kafka-21.4.6
data:
  setup.sh: |-
    #!/bin/bash
    exec /entrypoint.sh
---
# Source: kafka/templates/empty.yaml
---
# Source: kafka/templates/svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: kafka
  namespace: kafka
  labels:
    app.kubernetes.io/name: kafka
spec:
  type: ClusterIP
  ports:
    - name: tcp-client
      port: 9092
      protocol: TCP
      targetPort: kafka-client
  selector:
    app.kubernetes.io/name: kafka
    app.kubernetes.io/component: kafka
---
# Source: kafka/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: kafka
  namespace: kafka
  labels:
    app.kubernetes.io/name: kafka
spec:
  podManagementPolicy: Parallel
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: kafka
      app.kubernetes.io/component: kafka
  serviceName: kafka-headless
  template:
    metadata:
      labels:
        app.kubernetes.io/name: kafka
        app.kubernetes.io/component: kafka
    spec:
      securityContext:
        fsGroup: 1001
      containers:
        - name: kafka
          image: docker.io/bitnami/kafka:3.4.0-debian-11-r15
          command:
            - /scripts/setup.sh
          ports:
            - name: kafka-client
              containerPort: 9092
          volumeMounts:
            - name: scripts
              mountPath: /scripts/setup.sh
              subPath: setup.sh
      volumes:
        - name: scripts
          configMap:
            name: kafka-scripts
            defaultMode: 0755
        - name: hex
          secret:
            secretName: s
            defaultMode: 0x1ED
        - name: o
          secret:
            secretName: t
            defaultMode: 0o644
"#;

#[test]
fn helm_template_output_with_octal_modes_reads() {
    let facts = read("helm.yaml", HELM_TEMPLATE).unwrap();
    assert_eq!(kinds(&facts), ["StatefulSet kafka.kafka"]);
    assert_eq!(facts.workloads().next().unwrap().ports[0].port, 9092);
    let service = facts.services().values().next().unwrap();
    assert_eq!(service.id.as_str(), "kafka.kafka");
    assert_eq!(service.ports[0].port, 9092);
}

const KUBECTL_GET: &str = r#"apiVersion: v1
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    annotations:
      deployment.kubernetes.io/revision: "1"
    creationTimestamp: "2024-03-01T10:00:00Z"
    generation: 1
    labels:
      app: redis-cart
    managedFields:
    - apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:spec:
          f:template:
            f:spec:
              f:volumes:
                k:{"name":"redis-data"}:
                  .: {}
                  f:name: {}
      manager: kubectl-client-side-apply
      operation: Update
      time: "2024-03-01T10:00:00Z"
    name: redis-cart
    namespace: otterize-ecom-demo
    resourceVersion: "1234"
    uid: 0f6c0a3e-7d1c-4c1e-9a52-1f0b7cbd1a11
  spec:
    progressDeadlineSeconds: 600
    replicas: 1
    revisionHistoryLimit: 10
    selector:
      matchLabels:
        app: redis-cart
    strategy:
      rollingUpdate:
        maxSurge: 25%
        maxUnavailable: 25%
      type: RollingUpdate
    template:
      metadata:
        creationTimestamp: null
        labels:
          app: redis-cart
      spec:
        containers:
        - image: redis:alpine
          imagePullPolicy: IfNotPresent
          name: redis
          ports:
          - containerPort: 6379
            protocol: TCP
          resources:
            limits:
              cpu: 125m
              memory: 256Mi
          terminationMessagePath: /dev/termination-log
          terminationMessagePolicy: File
        dnsPolicy: ClusterFirst
        restartPolicy: Always
        schedulerName: default-scheduler
        securityContext: {}
        terminationGracePeriodSeconds: 30
        volumes:
        - emptyDir: {}
          name: redis-data
        - configMap:
            defaultMode: 420
            name: redis-config
          name: config
  status:
    availableReplicas: 1
    conditions:
    - lastTransitionTime: "2024-03-01T10:00:05Z"
      lastUpdateTime: "2024-03-01T10:00:05Z"
      message: Deployment has minimum availability.
      reason: MinimumReplicasAvailable
      status: "True"
      type: Available
    observedGeneration: 1
    readyReplicas: 1
    replicas: 1
    updatedReplicas: 1
- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: "2024-03-01T10:00:00Z"
    name: redis-cart
    namespace: otterize-ecom-demo
    resourceVersion: "1240"
    uid: 3b1d2c4e-1111-4c1e-9a52-1f0b7cbd1a12
  spec:
    clusterIP: 10.96.12.34
    clusterIPs:
    - 10.96.12.34
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: tcp-redis
      port: 6379
      protocol: TCP
      targetPort: 6379
    selector:
      app: redis-cart
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
kind: List
metadata:
  resourceVersion: ""
"#;

#[test]
fn kubectl_get_output_with_status_and_managed_fields_reads() {
    let facts = read("get.yaml", KUBECTL_GET).unwrap();
    assert_eq!(kinds(&facts), ["Deployment redis-cart.otterize-ecom-demo"]);
    assert_eq!(facts.services().len(), 1);
}

const KUSTOMIZE_BUILD: &str = r#"apiVersion: v1
data:
  redis.conf: |
    maxmemory 200mb
kind: ConfigMap
metadata:
  labels:
    app.kubernetes.io/part-of: shop
  name: redis-config-8g2h5fk9tb
  namespace: shop
---
apiVersion: v1
kind: Service
metadata:
  labels:
    app.kubernetes.io/part-of: shop
  name: prod-redis
  namespace: shop
spec:
  ports:
  - port: 6379
    targetPort: redis
  selector:
    app: redis
    app.kubernetes.io/part-of: shop
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  labels:
    app.kubernetes.io/part-of: shop
  name: prod-redis
  namespace: shop
spec:
  selector:
    matchLabels:
      app: redis
      app.kubernetes.io/part-of: shop
  serviceName: prod-redis
  template:
    metadata:
      labels:
        app: redis
        app.kubernetes.io/part-of: shop
    spec:
      containers:
      - image: redis:7
        name: redis
        ports:
        - containerPort: 6379
          name: redis
        volumeMounts:
        - mountPath: /etc/redis
          name: config
      volumes:
      - configMap:
          defaultMode: 0644
          name: redis-config-8g2h5fk9tb
        name: config
"#;

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
