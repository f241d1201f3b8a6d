//! What the crate's unit tests share: reading a test source, and one v1
//! ClientIntents that calls a target of each kind, which the decoding tests
//! read and the encoding tests convert.

use crate::decode::{ParseOptions, Parsed, parse_source};
use crate::document::Document;

/// Reads `text` as the source `t.yaml`, with the default options.
pub(crate) fn parse(text: &str) -> Parsed {
    parse_source(&"t.yaml".into(), text, &ParseOptions::default())
}

/// The documents of `text`, which must read without errors.
pub(crate) fn docs(text: &str) -> Vec<Document> {
    let parsed = parse(text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    parsed.documents
}

/// A k8s.otterize.com/v1alpha3 ClientIntents in namespace `shop` whose seven
/// calls are: an HTTP call to another namespace, a Service (`svc:`), a plain
/// call, Kafka, a database, the internet and AWS, in that order.
pub(crate) const V1_CALLS: &str = "
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: client, namespace: shop}
spec:
  service: {name: client, kind: Deployment}
  calls:
  - name: server.other
    type: http
    HTTPResources: [{path: /x/*, methods: [POST, GET]}]
  - name: svc:frontend
  - name: plain
  - name: kafka.kafka
    type: kafka
    kafkaTopics: [{name: t, operations: [consume]}]
  - name: db
    type: database
    databaseResources: [{databaseName: d, table: t, operations: [SELECT]}]
  - type: internet
    internet: {ips: [10.0.0.0/8], domains: [a.example.com], ports: [443]}
  - name: arn:aws:s3:::b
    type: aws
    awsActions: [\"s3:*\"]
";
