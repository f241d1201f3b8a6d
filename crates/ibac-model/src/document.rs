//! The canonical in-memory form of every document ibac reads.
//!
//! Whatever format a document arrived in (Otterize v1alpha2 … v2beta1, or
//! `ibac.dev/v1`), it is held in these types, already validated. Each part
//! remembers where it was written so that later stages can explain themselves.

use std::fmt;

use ipnet::IpNet;

use crate::http::{Method, PathPattern};
use crate::kafka::{KafkaOperation, TopicPattern};
use crate::location::Location;
use crate::name::{Kind, Name, Namespace, WorkloadId};
use crate::sql::SqlOperation;

/// The API group and version a document was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// `k8s.otterize.com/v1alpha2`: v1alpha3's shape, except that calls carry
    /// no `kind`, HTTP calls list `resources` and Kafka calls `topics`.
    OtterizeV1alpha2,
    /// `k8s.otterize.com/v1alpha3`.
    OtterizeV1alpha3,
    /// `k8s.otterize.com/v1beta1`.
    OtterizeV1beta1,
    /// `k8s.otterize.com/v2alpha1`.
    OtterizeV2alpha1,
    /// `k8s.otterize.com/v2beta1` (also read from `k8s.otterize.com/v2`).
    OtterizeV2beta1,
    /// `ibac.dev/v1`: the v2 shapes plus ibac's additions.
    IbacV1,
}

impl Format {
    /// The apiVersion string.
    pub fn api_version(self) -> &'static str {
        match self {
            Format::OtterizeV1alpha2 => "k8s.otterize.com/v1alpha2",
            Format::OtterizeV1alpha3 => "k8s.otterize.com/v1alpha3",
            Format::OtterizeV1beta1 => "k8s.otterize.com/v1beta1",
            Format::OtterizeV2alpha1 => "k8s.otterize.com/v2alpha1",
            Format::OtterizeV2beta1 => "k8s.otterize.com/v2beta1",
            Format::IbacV1 => "ibac.dev/v1",
        }
    }

    /// Parses an apiVersion; `Err` carries a hint.
    pub fn parse(api_version: &str) -> Result<Format, Option<&'static str>> {
        match api_version {
            "k8s.otterize.com/v1alpha2" => Ok(Format::OtterizeV1alpha2),
            "k8s.otterize.com/v1alpha3" => Ok(Format::OtterizeV1alpha3),
            "k8s.otterize.com/v1beta1" => Ok(Format::OtterizeV1beta1),
            "k8s.otterize.com/v2alpha1" => Ok(Format::OtterizeV2alpha1),
            "k8s.otterize.com/v2beta1" | "k8s.otterize.com/v2" => Ok(Format::OtterizeV2beta1),
            "ibac.dev/v1" => Ok(Format::IbacV1),
            "k8s.otterize.com/v1alpha1" => Err(Some(
                "Otterize no longer serves v1alpha1: rewrite it as k8s.otterize.com/v2beta1 (ibac reads v1alpha2, v1alpha3, v1beta1, v2alpha1 and v2beta1)",
            )),
            other if other.starts_with("k8s.otterize.com/") => Err(Some(
                "ibac reads k8s.otterize.com v1alpha2, v1alpha3, v1beta1, v2alpha1 and v2beta1",
            )),
            other if other.starts_with("ibac.dev/") => Err(Some("ibac reads ibac.dev/v1")),
            _ => Err(None),
        }
    }

    /// Whether documents in this format use the older `service`/`calls` shape.
    pub fn is_v1(self) -> bool {
        matches!(
            self,
            Format::OtterizeV1alpha2 | Format::OtterizeV1alpha3 | Format::OtterizeV1beta1
        )
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_version())
    }
}

/// What every document carries besides its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// `metadata.name`, or a name derived from the spec when absent.
    pub name: String,
    /// `metadata.namespace`, else the `-n` namespace, else `default`.
    pub namespace: Namespace,
    /// Whether the document itself named its namespace (`metadata.namespace`).
    /// When it did not, `ibac convert` writes none either, so that the output
    /// still goes wherever `kubectl apply -n` sends it.
    pub namespace_given: bool,
    /// Where the document starts.
    pub origin: Location,
    /// The format it was written in.
    pub format: Format,
}

/// The kinds of document ibac reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocumentKind {
    /// `ClientIntents`.
    ClientIntents,
    /// `ProtectedService`.
    ProtectedService,
    /// `EnforcementConfig` (ibac.dev/v1 only).
    EnforcementConfig,
    /// `KafkaServerConfig`.
    KafkaServerConfig,
    /// `PostgreSQLServerConfig`.
    PostgreSqlServerConfig,
    /// `MySQLServerConfig`.
    MySqlServerConfig,
}

impl DocumentKind {
    /// Every kind, for hints.
    pub const ALL: [DocumentKind; 6] = [
        DocumentKind::ClientIntents,
        DocumentKind::ProtectedService,
        DocumentKind::EnforcementConfig,
        DocumentKind::KafkaServerConfig,
        DocumentKind::PostgreSqlServerConfig,
        DocumentKind::MySqlServerConfig,
    ];

    /// The `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::ClientIntents => "ClientIntents",
            DocumentKind::ProtectedService => "ProtectedService",
            DocumentKind::EnforcementConfig => "EnforcementConfig",
            DocumentKind::KafkaServerConfig => "KafkaServerConfig",
            DocumentKind::PostgreSqlServerConfig => "PostgreSQLServerConfig",
            DocumentKind::MySqlServerConfig => "MySQLServerConfig",
        }
    }

    /// Parses a `kind` string.
    pub fn parse(kind: &str) -> Option<DocumentKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a stored document: two documents with the same key are versions
/// of one another.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentKey {
    /// The kind.
    pub kind: DocumentKind,
    /// The namespace.
    pub namespace: Namespace,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for DocumentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A validated document.
#[derive(Clone, Debug, PartialEq)]
pub enum Document {
    /// The calls a client makes.
    ClientIntents(ClientIntents),
    /// Turns enforcement on for one server.
    ProtectedService(ProtectedService),
    /// Global settings.
    EnforcementConfig(EnforcementConfig),
    /// How to reach and configure a Kafka server.
    KafkaServerConfig(KafkaServerConfig),
    /// How to reach and configure a PostgreSQL or MySQL server.
    DatabaseServerConfig(DatabaseServerConfig),
}

impl Document {
    /// The document's metadata.
    pub fn meta(&self) -> &Meta {
        match self {
            Document::ClientIntents(d) => &d.meta,
            Document::ProtectedService(d) => &d.meta,
            Document::EnforcementConfig(d) => &d.meta,
            Document::KafkaServerConfig(d) => &d.meta,
            Document::DatabaseServerConfig(d) => &d.meta,
        }
    }

    /// The document's kind.
    pub fn kind(&self) -> DocumentKind {
        match self {
            Document::ClientIntents(_) => DocumentKind::ClientIntents,
            Document::ProtectedService(_) => DocumentKind::ProtectedService,
            Document::EnforcementConfig(_) => DocumentKind::EnforcementConfig,
            Document::KafkaServerConfig(_) => DocumentKind::KafkaServerConfig,
            Document::DatabaseServerConfig(d) => match d.dialect {
                SqlDialect::PostgreSql => DocumentKind::PostgreSqlServerConfig,
                SqlDialect::MySql => DocumentKind::MySqlServerConfig,
            },
        }
    }

    /// The document's identity among stored documents.
    pub fn key(&self) -> DocumentKey {
        let meta = self.meta();
        DocumentKey {
            kind: self.kind(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
        }
    }
}

/// A workload named by a document, with the kind it optionally gives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    /// `name.namespace`.
    pub id: WorkloadId,
    /// The Kubernetes kind (`Deployment`, …) when given.
    pub kind: Option<Kind>,
}

/// The calls one client makes: `ClientIntents`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientIntents {
    /// Metadata.
    pub meta: Meta,
    /// The client.
    pub workload: WorkloadRef,
    /// What it calls.
    pub targets: Vec<Target>,
}

/// One intent: something the client calls.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Where the target is written.
    pub at: Location,
    /// What is called.
    pub kind: TargetKind,
}

/// The kinds of intent target.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetKind {
    /// A workload (`kubernetes:` without `kind: Service`).
    Workload(CallTarget),
    /// A Kubernetes Service (`service:`, or `kubernetes:` with `kind: Service`).
    Service(CallTarget),
    /// Topics on a Kafka server.
    Kafka(KafkaTarget),
    /// Privileges on a SQL server.
    Sql(SqlTarget),
    /// Destinations outside the cluster.
    Internet(InternetTarget),
    /// AWS resources.
    Aws(CloudTarget),
    /// GCP resources.
    Gcp(CloudTarget),
    /// Azure resources.
    Azure(AzureTarget),
}

impl TargetKind {
    /// The document key that introduces this kind of target.
    pub fn label(&self) -> &'static str {
        match self {
            TargetKind::Workload(_) => "kubernetes",
            TargetKind::Service(_) => "service",
            TargetKind::Kafka(_) => "kafka",
            TargetKind::Sql(_) => "sql",
            TargetKind::Internet(_) => "internet",
            TargetKind::Aws(_) => "aws",
            TargetKind::Gcp(_) => "gcp",
            TargetKind::Azure(_) => "azure",
        }
    }
}

/// The workload or Service a call goes to, narrowed by port and HTTP rules.
#[derive(Clone, Debug, PartialEq)]
pub struct CallTarget {
    /// `name.namespace` of the workload or Service.
    pub id: WorkloadId,
    /// The workload's kind when given (never `Service`: that is [`TargetKind::Service`]).
    pub kind: Option<Kind>,
    /// Allowed ports; empty means every port. Service ports on Service targets,
    /// container ports on workload targets.
    pub ports: Vec<u16>,
    /// Allowed HTTP requests; empty means every request.
    pub http: Vec<HttpRule>,
}

impl CallTarget {
    /// Whether this names the Kubernetes API server (`kubernetes.default`).
    pub fn is_api_server(&self) -> bool {
        self.id.is_api_server()
    }
}

/// One HTTP rule: a path pattern and the methods allowed on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRule {
    /// Where it is written.
    pub at: Location,
    /// The path pattern.
    pub path: PathPattern,
    /// The methods; empty means every method.
    pub methods: Vec<Method>,
}

/// Topics on a Kafka server.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaTarget {
    /// The Kafka server workload.
    pub server: WorkloadId,
    /// Topics and operations; empty means L4 access only.
    pub topics: Vec<KafkaTopic>,
}

/// Operations on some topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTopic {
    /// Where it is written.
    pub at: Location,
    /// Which topics.
    pub topic: TopicPattern,
    /// Which operations.
    pub operations: Vec<KafkaOperation>,
}

/// Privileges on a SQL server.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlTarget {
    /// The PostgreSQLServerConfig or MySQLServerConfig, `name.namespace`.
    pub server: WorkloadId,
    /// Whether the target wrote the namespace (`name.namespace`). When it did
    /// not, the config is found by name in any namespace, as Otterize does,
    /// provided only one has that name.
    pub namespace_given: bool,
    /// The privileges.
    pub privileges: Vec<SqlPrivilege>,
}

/// Privileges on one database or table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlPrivilege {
    /// Where it is written.
    pub at: Location,
    /// The database.
    pub database: String,
    /// The table (`schema.table` or `table`); none means every table.
    pub table: Option<String>,
    /// The operations. Empty parses (Otterize reads it as ALL) but renderers refuse it.
    pub operations: Vec<SqlOperation>,
}

/// Destinations outside the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternetTarget {
    /// Domain names, optionally `*.`-prefixed.
    pub domains: Vec<String>,
    /// Addresses and ranges.
    pub ips: Vec<IpNet>,
    /// Ports; empty means every port.
    pub ports: Vec<u16>,
}

/// An AWS or GCP resource and what may be done to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudTarget {
    /// The ARN (AWS) or resource name (GCP).
    pub resource: String,
    /// Actions (AWS) or permissions (GCP).
    pub actions: Vec<String>,
}

/// An Azure scope and the access asked on it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AzureTarget {
    /// The scope.
    pub scope: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Control-plane actions.
    pub actions: Vec<String>,
    /// Data-plane actions.
    pub data_actions: Vec<String>,
    /// Key Vault access policy.
    pub key_vault_policy: Option<KeyVaultPolicy>,
}

/// Azure Key Vault permissions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyVaultPolicy {
    /// Certificate permissions.
    pub certificate_permissions: Vec<String>,
    /// Key permissions.
    pub key_permissions: Vec<String>,
    /// Secret permissions.
    pub secret_permissions: Vec<String>,
    /// Storage permissions.
    pub storage_permissions: Vec<String>,
}

/// Turns enforcement on for one server: `ProtectedService`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtectedService {
    /// Metadata.
    pub meta: Meta,
    /// The protected server.
    pub workload: WorkloadRef,
}

/// How servers without explicit protection are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Nothing is enforced unless protected; everything else is reported.
    #[default]
    #[serde(rename = "defaultShadow")]
    DefaultShadow,
    /// Every server is protected (excluded namespaces aside).
    #[serde(rename = "defaultActive")]
    DefaultActive,
}

impl Mode {
    /// The spelling documents use.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DefaultShadow => "defaultShadow",
            Mode::DefaultActive => "defaultActive",
        }
    }

    /// Parses a mode.
    pub fn parse(text: &str) -> Option<Mode> {
        [Mode::DefaultShadow, Mode::DefaultActive]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether traffic from outside the cluster may reach protected servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub enum ExternalTraffic {
    /// Never allowed unless declared.
    #[serde(rename = "off")]
    Off,
    /// Allowed through LoadBalancer/NodePort Services and Ingresses to servers ibac blocks.
    #[default]
    #[serde(rename = "ifBlocked")]
    IfBlocked,
    /// Always allowed through LoadBalancer/NodePort Services and Ingresses.
    #[serde(rename = "always")]
    Always,
}

impl ExternalTraffic {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalTraffic::Off => "off",
            ExternalTraffic::IfBlocked => "ifBlocked",
            ExternalTraffic::Always => "always",
        }
    }

    /// Parses a setting; `ifBlockedByOtterize` is accepted as an alias.
    pub fn parse(text: &str) -> Option<ExternalTraffic> {
        match text {
            "off" => Some(ExternalTraffic::Off),
            "ifBlocked" | "ifBlockedByOtterize" => Some(ExternalTraffic::IfBlocked),
            "always" => Some(ExternalTraffic::Always),
            _ => None,
        }
    }
}

/// Which enforcers are on.
///
/// Its fields are read and written only through [`Enforcers::fields`] and
/// [`Enforcers::field_mut`], one table for the decoder and the encoder, so the
/// spelling a document uses can never differ between the two (it once did:
/// `kafkaAcl` written, `kafkaACL` read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enforcers {
    /// Kubernetes NetworkPolicies (ingress).
    pub network_policy: bool,
    /// Egress NetworkPolicies (off by default).
    pub egress_network_policy: bool,
    /// Istio AuthorizationPolicies.
    pub istio: bool,
    /// Kafka ACLs.
    pub kafka_acl: bool,
    /// SQL grants.
    pub database: bool,
    /// The ibac proxy.
    pub proxy: bool,
}

impl Enforcers {
    /// The field names, as documents spell them.
    pub const FIELDS: [&'static str; 6] = [
        "networkPolicy",
        "egressNetworkPolicy",
        "istio",
        "kafkaACL",
        "database",
        "proxy",
    ];

    /// Every setting with the name documents give it, in [`Enforcers::FIELDS`] order.
    pub fn fields(&self) -> [(&'static str, bool); 6] {
        [
            (Self::FIELDS[0], self.network_policy),
            (Self::FIELDS[1], self.egress_network_policy),
            (Self::FIELDS[2], self.istio),
            (Self::FIELDS[3], self.kafka_acl),
            (Self::FIELDS[4], self.database),
            (Self::FIELDS[5], self.proxy),
        ]
    }

    /// The setting a document's field name stands for.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut bool> {
        let index = Self::FIELDS.iter().position(|f| *f == name)?;
        Some(match index {
            0 => &mut self.network_policy,
            1 => &mut self.egress_network_policy,
            2 => &mut self.istio,
            3 => &mut self.kafka_acl,
            4 => &mut self.database,
            _ => &mut self.proxy,
        })
    }
}

impl serde::Serialize for Enforcers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.fields();
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (name, on) in fields {
            map.serialize_entry(name, &on)?;
        }
        map.end()
    }
}

impl Default for Enforcers {
    fn default() -> Self {
        Self {
            network_policy: true,
            egress_network_policy: false,
            istio: true,
            kafka_acl: true,
            database: true,
            proxy: true,
        }
    }
}

/// Global settings: `EnforcementConfig` (ibac.dev/v1).
#[derive(Clone, Debug, PartialEq)]
pub struct EnforcementConfig {
    /// Metadata.
    pub meta: Meta,
    /// The mode.
    pub mode: Mode,
    /// Namespaces whose servers are all protected.
    pub enforced_namespaces: Vec<Namespace>,
    /// Which enforcers are on.
    pub enforcers: Enforcers,
    /// Traffic from outside the cluster.
    pub external_traffic: ExternalTraffic,
}

/// How to reach a Kafka server and what its topics require.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaServerConfig {
    /// Metadata.
    pub meta: Meta,
    /// The Kafka server workload.
    pub workload: WorkloadRef,
    /// `host:port` of the broker.
    pub address: Option<String>,
    /// Client TLS files for managing ACLs.
    pub tls: Option<KafkaTls>,
    /// Per-topic requirements.
    pub topics: Vec<KafkaTopicConfig>,
    /// Whether the operator skips creating its own intents to the server.
    pub no_auto_create_intents_for_operator: bool,
}

/// Client TLS files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTls {
    /// Certificate file.
    pub cert_file: String,
    /// Key file.
    pub key_file: String,
    /// Root CA file.
    pub root_ca_file: String,
}

/// Requirements of one topic or topic prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTopicConfig {
    /// The topic or prefix.
    pub topic: String,
    /// Whether `topic` is a prefix.
    pub prefix: bool,
    /// Whether clients must present an identity.
    pub client_identity_required: bool,
    /// Whether clients must declare intents.
    pub intents_required: bool,
}

/// Which SQL dialect a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SqlDialect {
    /// PostgreSQL.
    PostgreSql,
    /// MySQL.
    MySql,
}

/// How to reach a SQL server.
#[derive(Clone, PartialEq)]
pub struct DatabaseServerConfig {
    /// Metadata.
    pub meta: Meta,
    /// The dialect (from the document's kind).
    pub dialect: SqlDialect,
    /// `host:port`.
    pub address: String,
    /// How ibac logs in to manage grants.
    pub credentials: Credentials,
}

impl DatabaseServerConfig {
    /// The name intents use for this server, `name.namespace`.
    pub fn id(&self) -> Option<WorkloadId> {
        Name::parse(&self.meta.name)
            .ok()
            .map(|n| WorkloadId::new(&n, &self.meta.namespace))
    }
}

impl fmt::Debug for DatabaseServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseServerConfig")
            .field("meta", &self.meta)
            .field("dialect", &self.dialect)
            .field("address", &self.address)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Login for a SQL server: inline, or from a Kubernetes Secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// User name.
    pub username: Option<String>,
    /// Password (never printed in debug output).
    pub password: Option<String>,
    /// A Secret holding both.
    pub secret_ref: Option<SecretRef>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("secret_ref", &self.secret_ref)
            .finish()
    }
}

/// A Kubernetes Secret with a user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// Its namespace; the config's own when absent.
    pub namespace: Option<Namespace>,
    /// Key of the user name (default `username`).
    pub username_key: String,
    /// Key of the password (default `password`).
    pub password_key: String,
}
