//! Small builders for documents, for tests:
//! `intents("web.shop").calls("api.shop").get("/api/*").build()`.
#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};

use crate::document::*;
use crate::http::{Method, PathPattern};
use crate::kafka::{KafkaOperation, TopicPattern};
use crate::location::Location;
use crate::name::{Kind, Name, Namespace, WorkloadId};

static LINE: AtomicU32 = AtomicU32::new(1);

/// A fresh location, so that every fixture part can be told apart.
pub fn here() -> Location {
    Location::new(
        "fixture.yaml".into(),
        LINE.fetch_add(1, Ordering::Relaxed),
        1,
    )
}

pub fn id(text: &str) -> WorkloadId {
    WorkloadId::parse(text).expect("fixture ids are valid")
}

fn meta(name: &str, ns: &str, format: Format) -> Meta {
    Meta {
        name: name.to_string(),
        namespace: Namespace::parse(ns).expect("valid namespace"),
        origin: here(),
        format,
        namespace_given: true,
    }
}

/// Starts a ClientIntents for client `name.namespace`.
pub fn intents(client: &str) -> IntentsBuilder {
    let client = id(client);
    IntentsBuilder {
        meta: meta(client.name(), client.namespace(), Format::IbacV1),
        workload: WorkloadRef {
            id: client,
            kind: None,
        },
        targets: Vec::new(),
    }
}

pub struct IntentsBuilder {
    meta: Meta,
    workload: WorkloadRef,
    targets: Vec<Target>,
}

impl IntentsBuilder {
    fn push(mut self, kind: TargetKind) -> Self {
        self.targets.push(Target { at: here(), kind });
        self
    }

    fn last_call(&mut self) -> &mut CallTarget {
        match self.targets.last_mut().map(|t| &mut t.kind) {
            Some(TargetKind::Workload(c) | TargetKind::Service(c)) => c,
            _ => panic!("call a workload or service first"),
        }
    }

    /// Adds a workload target with every port and request allowed.
    pub fn calls(self, server: &str) -> Self {
        self.push(TargetKind::Workload(call(server)))
    }

    /// Adds a Service target.
    pub fn calls_service(self, service: &str) -> Self {
        self.push(TargetKind::Service(call(service)))
    }

    /// Narrows the last call to a port.
    pub fn port(mut self, port: u16) -> Self {
        self.last_call().ports.push(port);
        self
    }

    /// Narrows the last call to a path and methods.
    pub fn http(mut self, methods: &[Method], path: &str) -> Self {
        self.last_call().http.push(HttpRule {
            at: here(),
            path: PathPattern::parse(path).expect("valid pattern"),
            methods: methods.to_vec(),
        });
        self
    }

    /// Narrows the last call to GET on a path.
    pub fn get(self, path: &str) -> Self {
        self.http(&[Method::Get], path)
    }

    /// Adds a Kafka target.
    pub fn kafka(self, server: &str, topic: &str, ops: &[KafkaOperation]) -> Self {
        self.push(TargetKind::Kafka(KafkaTarget {
            server: id(server),
            topics: vec![KafkaTopic {
                at: here(),
                topic: TopicPattern::parse(topic, true).expect("valid topic"),
                operations: ops.to_vec(),
            }],
        }))
    }

    /// Adds an internet target.
    pub fn internet(self, domain: &str) -> Self {
        self.push(TargetKind::Internet(InternetTarget {
            domains: vec![domain.to_string()],
            ips: Vec::new(),
            ports: Vec::new(),
        }))
    }

    /// Sets the client's kind.
    pub fn kind(mut self, kind: &str) -> Self {
        self.workload.kind = Some(Kind::parse(kind).expect("valid kind"));
        self
    }

    pub fn build(self) -> Document {
        Document::ClientIntents(ClientIntents {
            meta: self.meta,
            workload: self.workload,
            targets: self.targets,
        })
    }
}

fn call(target: &str) -> CallTarget {
    CallTarget {
        id: id(target),
        kind: None,
        ports: Vec::new(),
        http: Vec::new(),
    }
}

/// A ProtectedService for `name.namespace`.
pub fn protected(server: &str) -> Document {
    let server = id(server);
    Document::ProtectedService(ProtectedService {
        meta: meta(server.name(), server.namespace(), Format::OtterizeV2beta1),
        workload: WorkloadRef {
            id: server,
            kind: None,
        },
    })
}

/// Settings with the given mode and enforced namespaces.
pub fn settings(mode: Mode, enforced: &[&str]) -> Document {
    Document::EnforcementConfig(EnforcementConfig {
        meta: meta("default", "ibac-system", Format::IbacV1),
        mode,
        enforced_namespaces: enforced
            .iter()
            .map(|ns| Namespace::parse(ns).expect("valid namespace"))
            .collect(),
        enforcers: Enforcers::default(),
        external_traffic: ExternalTraffic::default(),
    })
}

/// A name, checked.
pub fn name(text: &str) -> Name {
    Name::parse(text).expect("valid name")
}
