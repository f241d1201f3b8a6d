//! `ibac up -f topology.yaml`: the workloads to run on this machine, each
//! behind its own `ibac proxy`.
//!
//! ```yaml
//! workloads:
//! - name: web
//!   namespace: shop
//!   command: [./web, --port, "{port}"]
//!   port: 8080            # the app's port (default: a free one, in {port} and $PORT)
//!   protocol: http        # how its proxy decides inbound calls: http or tcp
//!   tcp: [db]             # TCP targets: a local listener each, in {tcp:db}
//!   env: {LOG: debug}
//! ```
//!
//! In `command`, `{port}` is the app's port, `{proxy}` the HTTP proxy to
//! call other workloads through (also in `$HTTP_PROXY`), and `{tcp:NAME}`
//! the local address that reaches TCP target NAME (`name` or
//! `name.namespace`) through the proxy.

use std::collections::BTreeMap;

use ibac_model::yaml::{Limits, parse_json_documents};
use ibac_model::{Namespace, WorkloadId};
use serde::{Deserialize, Serialize};

pub use ibac_model::Protocol;

/// One workload to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The name.
    pub name: String,
    /// The namespace (default: `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The app's port.
    #[serde(default)]
    pub port: Option<u16>,
    /// How its proxy decides inbound calls.
    #[serde(default)]
    pub protocol: Protocol,
    /// TCP targets it calls.
    #[serde(default)]
    pub tcp: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The workloads to run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Each workload.
    pub workloads: Vec<WorkloadSpec>,
}

/// A topology file is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TopologyError(pub String);

impl WorkloadSpec {
    /// `name.namespace`.
    pub fn id(&self) -> Result<WorkloadId, TopologyError> {
        let ns = self.namespace.as_deref().unwrap_or("default");
        WorkloadId::parse(&format!("{}.{ns}", self.name))
            .map_err(|e| TopologyError(format!("`{}.{ns}`: {e}", self.name)))
    }

    /// Its TCP targets, resolved against its namespace.
    pub fn tcp_targets(&self) -> Result<Vec<(String, WorkloadId)>, TopologyError> {
        let ns = Namespace::parse(self.namespace.as_deref().unwrap_or("default"))
            .map_err(|e| TopologyError(e.to_string()))?;
        self.tcp
            .iter()
            .map(|t| {
                WorkloadId::parse_relative(t, &ns)
                    .map(|id| (t.clone(), id))
                    .map_err(|e| TopologyError(format!("tcp target `{t}`: {e}")))
            })
            .collect()
    }
}

impl Topology {
    /// Reads a topology file's text; errors name the file and place.
    pub fn parse(file: &str, text: &str) -> Result<Topology, TopologyError> {
        let docs = parse_json_documents(&file.into(), text, &Limits::default())
            .map_err(|e| TopologyError(e.to_string()))?;
        let [(at, value)] = docs.as_slice() else {
            return Err(TopologyError(format!(
                "{file}: expected one document with `workloads:`"
            )));
        };
        let topology: Topology = serde_json::from_value(value.clone())
            .map_err(|e| TopologyError(format!("{at}: {e}")))?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, w) in topology.workloads.iter().enumerate() {
            let id = w
                .id()
                .map_err(|e| TopologyError(format!("{at}: workloads[{i}]: {e}")))?;
            w.tcp_targets()
                .map_err(|e| TopologyError(format!("{at}: workloads[{i}]: {e}")))?;
            if w.command.is_empty() {
                return Err(TopologyError(format!(
                    "{at}: workloads[{i}] ({id}): `command` is empty"
                )));
            }
            if !seen.insert(id.clone()) {
                return Err(TopologyError(format!(
                    "{at}: workloads[{i}]: {id} is listed twice"
                )));
            }
        }
        Ok(topology)
    }
}

/// Fills `{port}`, `{proxy}` and `{tcp:NAME}` in an argument.
pub fn substitute(
    arg: &str,
    port: u16,
    proxy: &str,
    tcp: &BTreeMap<String, String>,
) -> Result<String, TopologyError> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let key = &rest[start + 1..start + end];
        match key {
            "port" => out.push_str(&port.to_string()),
            "proxy" => out.push_str(proxy),
            k if k.starts_with("tcp:") => {
                let name = &k[4..];
                let addr = tcp.get(name).ok_or_else(|| {
                    TopologyError(format!(
                        "`{{{k}}}`: `{name}` is not in this workload's `tcp` list"
                    ))
                })?;
                out.push_str(addr);
            }
            // Anything else is the program's own business (`{id}` in demo paths).
            _ => out.push_str(&rest[start..start + end + 1]),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_topology_reads_and_names_its_mistakes() {
        let t = Topology::parse(
            "t.yaml",
            "workloads:\n- name: web\n  namespace: shop\n  command: [./web, '{port}']\n  tcp: [db, cache.ops]\n",
        )
        .unwrap();
        let w = &t.workloads[0];
        assert_eq!(w.id().unwrap().as_str(), "web.shop");
        let targets: Vec<String> = w
            .tcp_targets()
            .unwrap()
            .into_iter()
            .map(|(_, id)| id.to_string())
            .collect();
        assert_eq!(targets, ["db.shop", "cache.ops"]);

        let err =
            Topology::parse("t.yaml", "workloads:\n- name: web\n  comand: [x]\n").unwrap_err();
        assert!(
            err.0.starts_with("t.yaml:1:1: unknown field `comand`"),
            "{err}"
        );
        let err = Topology::parse(
            "t.yaml",
            "workloads:\n- {name: a, command: [x]}\n- {name: a, command: [y]}\n",
        )
        .unwrap_err();
        assert!(err.0.contains("listed twice"), "{err}");
        let err =
            Topology::parse("t.yaml", "workloads:\n- {name: Bad, command: [x]}\n").unwrap_err();
        assert!(err.0.contains("workloads[0]"), "{err}");
    }

    #[test]
    fn placeholders_are_filled_and_unknown_ones_left() {
        let tcp: BTreeMap<String, String> =
            [("db".to_string(), "127.0.0.1:7000".to_string())].into();
        assert_eq!(
            substitute(
                "--db={tcp:db} --port {port} {proxy} /items/{id}",
                80,
                "http://p",
                &tcp
            )
            .unwrap(),
            "--db=127.0.0.1:7000 --port 80 http://p /items/{id}"
        );
        assert!(substitute("{tcp:other}", 1, "", &tcp).is_err());
        assert_eq!(substitute("{unclosed", 1, "", &tcp).unwrap(), "{unclosed");
    }
}
