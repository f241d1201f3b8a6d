//! The seed tutorial, end to end, with real processes: `ibac up --demo`
//! starts the control plane and the shop behind proxies; discover, export
//! the clients of productcatalogservice, apply, protect; an undeclared
//! caller started after the export is blocked, and the declared clients
//! never see a failed request. Then the control plane is killed with
//! SIGKILL and started again: nothing is lost.
//!
//! Waits poll with generous timeouts; nothing here depends on timing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn the_protect_one_service_tutorial() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut procs = Processes(vec![start_up(&dir, port, None)]);
    let demo = Demo {
        dir: dir.clone(),
        url: format!("https://127.0.0.1:{port}"),
    };
    let long = Duration::from_secs(180);

    // 1. Shadow mode: every call of the shop is discovered, would-be-blocked.
    wait_until("every demo call is discovered", long, || {
        dir.join("admin.token").exists() && {
            let out = demo.cli(&["get", "graph", "-o", "json"]);
            out.status.success() && {
                let g: Value = serde_json::from_slice(&out.stdout).unwrap();
                DEMO_EDGES.iter().all(|(c, s)| {
                    edge(&g, c, s).is_some_and(|e| e["verdict"] == "would-be-blocked")
                })
            }
        }
    });
    let table = demo.ok(&["get", "graph"]);
    assert!(
        table.contains("0 allowed, 18 would be blocked, 0 blocked"),
        "{table}"
    );

    // 2. Export the clients of productcatalogservice: exactly the three, with
    //    all their calls.
    let exported = demo.ok(&["network-mapper", "export", "--server", CATALOG]);
    let parsed = ibac_model::parse_source(
        &"export.yaml".into(),
        &exported,
        &ibac_model::ParseOptions::default(),
    );
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut clients: Vec<(String, usize)> = parsed
        .documents
        .iter()
        .map(|d| match d {
            ibac_model::Document::ClientIntents(ci) => {
                (ci.workload.id.name().to_string(), ci.targets.len())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    clients.sort();
    assert_eq!(
        clients,
        [
            ("checkoutservice".into(), 7),
            ("frontend".into(), 7),
            ("recommendationservice".into(), 1)
        ]
    );
    let file = tmp.path().join("catalog-clients.yaml");
    std::fs::write(&file, &exported).unwrap();

    // 3. Apply: those calls are allowed.
    let applied = demo.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(applied.matches("created").count(), 3, "{applied}");
    wait_until("the declared calls are allowed", long, || {
        let g = demo.graph();
        DEMO_EDGES.iter().all(|(c, s)| {
            let declared = ["frontend", "checkoutservice", "recommendationservice"].contains(c);
            let want = if declared {
                "allowed"
            } else {
                "would-be-blocked"
            };
            edge(&g, c, s).is_some_and(|e| e["verdict"] == want)
        })
    });

    // 4. An undeclared caller, started after the export, with its own proxy.
    let rogue_app = start_rogue(&demo, tmp.path(), &mut procs);
    wait_until(
        "the rogue's calls go through in shadow mode, reported",
        long,
        || {
            stats(rogue_app)["calls"][CATALOG]["ok"]
                .as_u64()
                .unwrap_or(0)
                > 0
                && edge(&demo.graph(), "rogue", "productcatalogservice")
                    .is_some_and(|e| e["verdict"] == "would-be-blocked")
        },
    );

    // 5. Protect productcatalogservice: the rogue is blocked.
    let declared_ports: Vec<(String, u16)> =
        ["frontend", "checkoutservice", "recommendationservice"]
            .iter()
            .map(|c| (c.to_string(), demo.app_port(&format!("{c}.{NS}"))))
            .collect();
    let ok_before: Vec<u64> = declared_ports
        .iter()
        .map(|(_, p)| stats(*p)["calls"][CATALOG]["ok"].as_u64().unwrap_or(0))
        .collect();
    demo.ok(&["protect", CATALOG]);
    wait_until("the rogue is blocked", long, || {
        let s = stats(rogue_app);
        s["calls"][CATALOG]["failed"].as_u64().unwrap_or(0) > 0
            && s["calls"][CATALOG]["last_error"]
                .as_str()
                .unwrap_or("")
                .starts_with("403")
            && edge(&demo.graph(), "rogue", "productcatalogservice")
                .is_some_and(|e| e["verdict"] == "blocked")
    });
    // The declared clients keep calling it, and none of their calls ever failed.
    wait_until(
        "the declared clients made more calls after protection",
        long,
        || {
            declared_ports
                .iter()
                .zip(&ok_before)
                .all(|((_, p), before)| {
                    stats(*p)["calls"][CATALOG]["ok"].as_u64().unwrap_or(0) >= before + 3
                })
        },
    );
    for (client, p) in &declared_ports {
        let s = stats(*p);
        assert_eq!(
            s["calls"][CATALOG]["failed"].as_u64(),
            Some(0),
            "{client}: {s}"
        );
    }
    let graph = demo.ok(&["get", "graph"]);
    assert!(
        graph.contains("productcatalogservice.otterize-ecom-demo (protected)"),
        "{graph}"
    );

    // 6. Diff: the applied intents match what the three clients do.
    let diff = demo.cli(&["diff", "-f", file.to_str().unwrap()]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&diff.stdout),
        "Every discovered call is declared.\n"
    );

    // 6b. Every server protected (`mode defaultActive`): the command waits
    //     until all 15 proxies (14 services and the rogue) enforce it; every
    //     undeclared call of the shop is then refused by its server's proxy,
    //     the declared ones keep working; and back to shadow mode.
    let declared = ["frontend", "checkoutservice", "recommendationservice"];
    let undeclared: Vec<(&str, &str)> = DEMO_EDGES
        .iter()
        .copied()
        .filter(|(c, _)| !declared.contains(c))
        .collect();
    let out = demo.cli(&["mode", "defaultActive"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("all 15 proxies enforce revision"), "{said}");
    let failed_before: Vec<u64> = declared_ports
        .iter()
        .map(|(_, p)| total_failed(&stats(*p)))
        .collect();
    wait_until(
        "every undeclared call is observed blocked, none let through",
        long,
        || {
            let g = demo.graph();
            undeclared.iter().all(|(c, s)| {
                edge(&g, c, s).is_some_and(|e| {
                    e["verdict"] == "blocked"
                        && e["observed"]["blocked"].as_u64().unwrap_or(0) > 0
                        && e["mismatch"].is_null()
                })
            })
        },
    );
    let g = demo.graph();
    for (c, s) in DEMO_EDGES.iter().filter(|(c, _)| declared.contains(c)) {
        let e = edge(&g, c, s).unwrap();
        assert_eq!(e["verdict"], "allowed", "{c} → {s}: {e}");
        assert!(e["mismatch"].is_null(), "{c} → {s}: {e}");
    }
    for ((client, p), before) in declared_ports.iter().zip(&failed_before) {
        assert_eq!(
            total_failed(&stats(*p)),
            *before,
            "{client} had a call refused"
        );
    }
    let out = demo.cli(&["mode", "defaultShadow"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("all 15 proxies enforce revision"), "{said}");
    wait_until("undeclared calls are would-be-blocked again", long, || {
        let g = demo.graph();
        undeclared
            .iter()
            .filter(|(_, s)| *s != "productcatalogservice")
            .all(|(c, s)| edge(&g, c, s).is_some_and(|e| e["verdict"] == "would-be-blocked"))
            && edge(&g, "rogue", "productcatalogservice").is_some_and(|e| e["verdict"] == "blocked")
    });

    // 7. Pictures.
    let png = tmp.path().join("graph.png");
    demo.ok(&["network-mapper", "visualize", "-o", png.to_str().unwrap()]);
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");

    // 8. SIGKILL the control plane and start it again: nothing is lost.
    let up = &mut procs.0[0];
    up.kill().unwrap();
    up.wait().unwrap();
    procs.0[0] = start_up(&dir, port, None);
    wait_until("the control plane is back", long, || {
        demo.cli(&["get", "intents"]).status.success()
    });
    let intents = demo.json(&["get", "intents", "-o", "json"]);
    assert_eq!(intents.as_array().unwrap().len(), 3);
    let protected = demo.json(&["get", "protected", "-o", "json"]);
    assert_eq!(protected[0]["name"], "productcatalogservice");
    let g = demo.graph();
    assert!(
        edge(&g, "rogue", "productcatalogservice").is_some(),
        "discovered calls survived"
    );
    let audit = demo.ok(&["get", "audit"]);
    assert!(
        audit.contains("protect") && audit.contains("apply"),
        "{audit}"
    );
}

/// Calls of a demo service that failed, to any server.
fn total_failed(stats: &Value) -> u64 {
    stats["calls"]
        .as_object()
        .map(|calls| {
            calls
                .values()
                .map(|c| c["failed"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}
