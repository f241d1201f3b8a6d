//! `ibac network-mapper list`: each client and what it calls, in the shape
//! Otterize's mapper prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ibac_model::{Namespace, WorkloadId};

use crate::calls::{CallKey, CallRecord};

/// A workload as the listing names it: `name in namespace ns`.
fn in_namespace(id: &WorkloadId) -> String {
    format!("{} in namespace {}", id.name(), id.namespace())
}

/// The listing, or `None` when nothing matches (the caller then says
/// `No connections found.`).
pub fn list(calls: &[(CallKey, CallRecord)], namespaces: &[Namespace]) -> Option<String> {
    let mut by_client: BTreeMap<
        &WorkloadId,
        BTreeMap<&WorkloadId, BTreeMap<&str, BTreeSet<&str>>>,
    > = BTreeMap::new();
    for (key, _) in calls {
        if !namespaces.is_empty()
            && !namespaces
                .iter()
                .any(|n| n.as_str() == key.client.namespace())
        {
            continue;
        }
        let paths = by_client
            .entry(&key.client)
            .or_default()
            .entry(&key.server)
            .or_default();
        if let (Some(method), Some(path)) = (&key.method, &key.path) {
            paths.entry(path).or_default().insert(method);
        }
    }
    if by_client.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (client, servers) in by_client {
        let _ = writeln!(out, "{} calls:", in_namespace(client));
        for (server, paths) in servers {
            let _ = writeln!(out, "  - {}", in_namespace(server));
            for (path, methods) in paths {
                let methods: Vec<&str> = methods.into_iter().collect();
                let shown = if path == "*" {
                    "* (more paths than the mapper keeps)"
                } else {
                    path
                };
                let _ = writeln!(out, "    - path {shown}, methods: [{}]", methods.join(", "));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::calls::{Discovered, Observation, Source};

    fn obs(client: &str, server: &str, key: Option<(&str, &str)>) -> Observation {
        let (c, s) = (
            WorkloadId::parse(client).unwrap(),
            WorkloadId::parse(server).unwrap(),
        );
        Observation {
            key: match key {
                Some((m, p)) => CallKey::http(c, s, 80, m, p),
                None => CallKey::tcp(c, s, 6379),
            },
            verdict: None,
            count: 1,
            first_seen: 0,
            last_seen: 0,
            source: Source::Proxy,
        }
    }

    #[test]
    fn lists_each_client_with_servers_and_paths() {
        let mut d = Discovered::default();
        d.observe(obs(
            "checkoutservice.shop",
            "productcatalogservice.shop",
            Some(("GET", "/products")),
        ));
        d.observe(obs(
            "checkoutservice.shop",
            "productcatalogservice.shop",
            Some(("POST", "/products")),
        ));
        d.observe(obs("checkoutservice.shop", "cartservice.shop", None));
        d.observe(obs("cartservice.shop", "redis-cart.shop", None));
        d.observe(obs("admin.ops", "cartservice.shop", None));
        let text = list(&d.since(None), &[Namespace::parse("shop").unwrap()]).unwrap();
        assert_eq!(
            text,
            "cartservice in namespace shop calls:\n  - redis-cart in namespace shop\n\
             checkoutservice in namespace shop calls:\n  - cartservice in namespace shop\n  \
             - productcatalogservice in namespace shop\n    - path /products, methods: [GET, POST]\n"
        );
        assert_eq!(
            list(&d.since(None), &[Namespace::parse("nowhere").unwrap()]),
            None
        );
    }
}
