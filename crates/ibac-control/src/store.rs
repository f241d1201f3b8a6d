//! The embedded store: one SQLite database in the data directory.
//!
//! WAL journaling with `synchronous = FULL`: a write that returned is on disk
//! and survives `kill -9` and power loss alike. Every change — documents,
//! workloads, tokens — is one transaction together with its audit record
//! and the new revision, so a crash never leaves a change half-applied or
//! unaudited.

use std::net::SocketAddr;
use std::path::Path;

pub use ibac_api::AuditRow;
use ibac_mapper::{CallKey, CallRecord, Protocol, VerdictCounts};
use ibac_model::WorkloadId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("the store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row holds something this version cannot read.
    #[error("the store holds an unreadable row: {0}")]
    Corrupt(String),
}

/// A stored document, in ibac's canonical YAML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDocument {
    /// The `kind`.
    pub kind: String,
    /// The namespace.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The canonical YAML.
    pub source: String,
}

/// A registered workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRow {
    /// `name.namespace`.
    pub id: WorkloadId,
    /// Where its proxy listens, once known.
    pub address: Option<SocketAddr>,
    /// The port its app listens on, on this host (for the socket scanner).
    pub app_port: Option<u16>,
    /// The port intents name for it.
    pub port: Option<u16>,
    /// Unix seconds.
    pub created_at: i64,
}

/// An API token, by the hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// Who holds it.
    pub name: String,
    /// The namespaces it may change; `None`: all, and tokens too.
    pub namespaces: Option<Vec<String>>,
    /// Unix seconds.
    pub created_at: i64,
}

/// One audit record to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// More, in words.
    pub detail: String,
}

/// One transaction's worth of changes.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// Documents to write (by kind, namespace and name).
    pub put_documents: Vec<StoredDocument>,
    /// Documents to remove: (kind, namespace, name).
    pub delete_documents: Vec<(String, String, String)>,
    /// Workloads to write.
    pub put_workloads: Vec<WorkloadRow>,
    /// Workloads to remove.
    pub delete_workloads: Vec<WorkloadId>,
    /// Tokens to write.
    pub put_tokens: Vec<TokenRow>,
    /// What to audit.
    pub audit: Vec<AuditEntry>,
}

/// The database.
pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    source TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS workloads (
    id TEXT PRIMARY KEY, address TEXT, app_port INTEGER, port INTEGER, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY, name TEXT NOT NULL, namespaces TEXT, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    client TEXT NOT NULL, server TEXT NOT NULL, port INTEGER NOT NULL, protocol TEXT NOT NULL,
    method TEXT NOT NULL, path TEXT NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, count INTEGER NOT NULL,
    allowed INTEGER NOT NULL, would_be_blocked INTEGER NOT NULL, blocked INTEGER NOT NULL,
    unchecked INTEGER NOT NULL, by_proxy INTEGER NOT NULL, by_socket_scan INTEGER NOT NULL,
    PRIMARY KEY (client, server, port, protocol, method, path));
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A workload's row as SQLite returns it: id, address, app port, port and
/// creation time, checked before it becomes a [`WorkloadRow`].
type WorkloadColumns = (String, Option<String>, Option<i64>, Option<i64>, i64);

/// The key columns of a call's row, in the table's order: a call without a
/// method or path stores it empty, so that the key has no NULLs.
fn key_columns(k: &CallKey) -> (&str, &str, u16, &str, &str, &str) {
    (
        k.client.as_str(),
        k.server.as_str(),
        k.port,
        k.protocol.as_str(),
        k.method.as_deref().unwrap_or(""),
        k.path.as_deref().unwrap_or(""),
    )
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Self::prepare(conn)
    }

    /// A database in memory (tests).
    pub fn in_memory() -> Result<Store, StoreError> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// The revision: it grows with every change to documents or workloads.
    pub fn revision(&self) -> Result<u64, StoreError> {
        let r: i64 =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                    r.get(0)
                })?;
        Ok(to_u64(r))
    }

    /// Every stored document.
    pub fn documents(&self) -> Result<Vec<StoredDocument>, StoreError> {
        self.select(
            "SELECT kind, namespace, name, source FROM documents ORDER BY kind, namespace, name",
            [],
            |r| {
                Ok(StoredDocument {
                    kind: r.get(0)?,
                    namespace: r.get(1)?,
                    name: r.get(2)?,
                    source: r.get(3)?,
                })
            },
        )
    }

    /// Every row `sql` selects, each read by `row`. Rows are collected so
    /// that the statement is finished before the caller checks what they
    /// hold.
    fn select<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(params, row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every registered workload.
    pub fn workloads(&self) -> Result<Vec<WorkloadRow>, StoreError> {
        let rows: Vec<WorkloadColumns> = self.select(
            "SELECT id, address, app_port, port, created_at FROM workloads ORDER BY id",
            [],
            |r| r.try_into(),
        )?;
        let mut out = Vec::new();
        for (id, address, app_port, port, created_at) in rows {
            let port_of = |p: Option<i64>| -> Result<Option<u16>, StoreError> {
                p.map(|p| u16::try_from(p).map_err(|_| corrupt(format!("port {p}"))))
                    .transpose()
            };
            out.push(WorkloadRow {
                id: WorkloadId::parse(&id).map_err(|e| corrupt(format!("workload `{id}`: {e}")))?,
                address: address
                    .map(|a| a.parse().map_err(|_| corrupt(format!("address `{a}`"))))
                    .transpose()?,
                app_port: port_of(app_port)?,
                port: port_of(port)?,
                created_at,
            });
        }
        Ok(out)
    }

    /// Every API token.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows: Vec<(String, String, Option<String>, i64)> = self.select(
            "SELECT hash, name, namespaces, created_at FROM tokens",
            [],
            |r| r.try_into(),
        )?;
        let mut out = Vec::new();
        for (hash, name, namespaces, created_at) in rows {
            let namespaces = namespaces
                .map(|n| {
                    serde_json::from_str(&n).map_err(|e| corrupt(format!("token {name}: {e}")))
                })
                .transpose()?;
            out.push(TokenRow {
                hash,
                name,
                namespaces,
                created_at,
            });
        }
        Ok(out)
    }

    /// The last `limit` audit records, newest last.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.select(
            "SELECT id, at, actor, action, target, detail FROM
               (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
            params![to_i64(limit as u64)],
            |r| {
                Ok(AuditRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                })
            },
        )
    }

    /// Applies `change` in one transaction and returns the new revision.
    pub fn write(&mut self, change: &Change) -> Result<u64, StoreError> {
        let at = now();
        let tx = self.conn.transaction()?;
        for d in &change.put_documents {
            tx.execute(
                "INSERT INTO documents (kind, namespace, name, source, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, namespace, name) DO UPDATE SET source = ?4, updated_at = ?5",
                params![d.kind, d.namespace, d.name, d.source, at],
            )?;
        }
        for (kind, namespace, name) in &change.delete_documents {
            tx.execute(
                "DELETE FROM documents WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![kind, namespace, name],
            )?;
        }
        for w in &change.put_workloads {
            tx.execute(
                "INSERT INTO workloads (id, address, app_port, port, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET address = ?2, app_port = ?3, port = ?4",
                params![
                    w.id.as_str(),
                    w.address.map(|a| a.to_string()),
                    w.app_port,
                    w.port,
                    w.created_at
                ],
            )?;
        }
        for id in &change.delete_workloads {
            tx.execute("DELETE FROM workloads WHERE id = ?1", params![id.as_str()])?;
        }
        for t in &change.put_tokens {
            let namespaces = t
                .namespaces
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?;
            tx.execute(
                "INSERT OR REPLACE INTO tokens (hash, name, namespaces, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![t.hash, t.name, namespaces, t.created_at],
            )?;
        }
        for a in &change.audit {
            tx.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at, a.actor, a.action, a.target, a.detail],
            )?;
        }
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'revision'",
            [],
        )?;
        let revision: i64 =
            tx.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })?;
        tx.commit()?;
        Ok(to_u64(revision))
    }

    /// Every discovered call.
    pub fn calls(&self) -> Result<Vec<(CallKey, CallRecord)>, StoreError> {
        let rows = self.select(
            "SELECT client, server, port, protocol, method, path, first_seen, last_seen, count,
                    allowed, would_be_blocked, blocked, unchecked, by_proxy, by_socket_scan FROM calls",
            [],
            |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ),
                CallRecord {
                    first_seen: r.get(6)?,
                    last_seen: r.get(7)?,
                    count: to_u64(r.get(8)?),
                    verdicts: VerdictCounts {
                        allowed: to_u64(r.get(9)?),
                        would_be_blocked: to_u64(r.get(10)?),
                        blocked: to_u64(r.get(11)?),
                        unchecked: to_u64(r.get(12)?),
                    },
                    by_proxy: r.get(13)?,
                    by_socket_scan: r.get(14)?,
                },
            ))
            },
        )?;
        let mut out = Vec::new();
        for ((client, server, port, protocol, method, path), record) in rows {
            let id = |s: &str| WorkloadId::parse(s).map_err(|e| corrupt(format!("`{s}`: {e}")));
            let key = CallKey {
                client: id(&client)?,
                server: id(&server)?,
                port: u16::try_from(port).map_err(|_| corrupt(format!("port {port}")))?,
                protocol: Protocol::parse(&protocol)
                    .ok_or_else(|| corrupt(format!("protocol `{protocol}`")))?,
                method: (!method.is_empty()).then_some(method),
                path: (!path.is_empty()).then_some(path),
            };
            out.push((key, record));
        }
        Ok(out)
    }

    /// Writes discovered calls and forgets others, in one transaction.
    pub fn save_calls(
        &mut self,
        put: &[(CallKey, CallRecord)],
        forget: &[CallKey],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT OR REPLACE INTO calls (client, server, port, protocol, method, path,
                   first_seen, last_seen, count, allowed, would_be_blocked, blocked, unchecked,
                   by_proxy, by_socket_scan)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            for (k, r) in put {
                let (client, server, port, protocol, method, path) = key_columns(k);
                upsert.execute(params![
                    client,
                    server,
                    port,
                    protocol,
                    method,
                    path,
                    r.first_seen,
                    r.last_seen,
                    to_i64(r.count),
                    to_i64(r.verdicts.allowed),
                    to_i64(r.verdicts.would_be_blocked),
                    to_i64(r.verdicts.blocked),
                    to_i64(r.verdicts.unchecked),
                    r.by_proxy,
                    r.by_socket_scan,
                ])?;
            }
            let mut delete = tx.prepare_cached(
                "DELETE FROM calls WHERE client = ?1 AND server = ?2 AND port = ?3
                   AND protocol = ?4 AND method = ?5 AND path = ?6",
            )?;
            for k in forget {
                delete.execute(key_columns(k))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets every discovered call, audited.
    pub fn reset_calls(&mut self, audit: &AuditEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM calls", [])?;
        tx.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), audit.actor, audit.action, audit.target, audit.detail],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Whether a document is stored.
    pub fn has_document(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM documents WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![kind, namespace, name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use ibac_mapper::{Discovered, Observation, Source};
    use ibac_policy::Verdict;

    fn doc(name: &str) -> StoredDocument {
        StoredDocument {
            kind: "ProtectedService".into(),
            namespace: "shop".into(),
            name: name.into(),
            source: format!("name: {name}"),
        }
    }

    #[test]
    fn a_change_is_one_transaction_with_its_audit_and_a_new_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ibac.db");
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.revision().unwrap(), 0);
        let r = store
            .write(&Change {
                put_documents: vec![doc("a"), doc("b")],
                audit: vec![AuditEntry {
                    actor: "admin".into(),
                    action: "apply".into(),
                    target: "ProtectedService shop/a".into(),
                    detail: "created".into(),
                }],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(r, 1);
        let r = store
            .write(&Change {
                delete_documents: vec![("ProtectedService".into(), "shop".into(), "a".into())],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(r, 2);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.revision().unwrap(), 2);
        assert_eq!(store.documents().unwrap(), vec![doc("b")]);
        assert_eq!(store.audit(10).unwrap()[0].actor, "admin");
        assert!(store.has_document("ProtectedService", "shop", "b").unwrap());
    }

    #[test]
    fn workloads_tokens_and_calls_round_trip() {
        let mut store = Store::in_memory().unwrap();
        let id = WorkloadId::parse("web.shop").unwrap();
        store
            .write(&Change {
                put_workloads: vec![WorkloadRow {
                    id: id.clone(),
                    address: Some("127.0.0.1:1234".parse().unwrap()),
                    app_port: Some(8080),
                    port: Some(80),
                    created_at: 5,
                }],
                put_tokens: vec![TokenRow {
                    hash: "ab".into(),
                    name: "ci".into(),
                    namespaces: Some(vec!["shop".into()]),
                    created_at: 1,
                }],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(store.workloads().unwrap()[0].app_port, Some(8080));
        assert_eq!(
            store.tokens().unwrap()[0].namespaces,
            Some(vec!["shop".into()])
        );

        let mut d = Discovered::default();
        for key in [
            CallKey::http(
                id.clone(),
                WorkloadId::parse("api.shop").unwrap(),
                80,
                "GET",
                "/x",
            ),
            CallKey::tcp(id.clone(), WorkloadId::parse("db.shop").unwrap(), 5432),
        ] {
            d.observe(Observation {
                key,
                verdict: Some(Verdict::Blocked),
                count: 3,
                first_seen: 1,
                last_seen: 2,
                source: Source::Proxy,
            });
        }
        let all = d.since(None);
        store.save_calls(&all, &[]).unwrap();
        let mut back = store.calls().unwrap();
        back.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(back, all);
        store.save_calls(&[], &[all[0].0.clone()]).unwrap();
        assert_eq!(store.calls().unwrap().len(), 1);
    }
}
