//! The control plane over real HTTPS: the API as the CLI uses it, a proxy's
//! policy source and reports as a proxy uses them, authentication, the
//! change stream, and the store across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use ibac_api::{Direction, DocumentChange, Report};
use ibac_control::client::{ApiClient, ClientError};
use ibac_control::control::{Outcome, Registered};
use ibac_control::server::files;
use ibac_identity::attest::{IssuerClient, WorkloadIdentity};
use ibac_model::{Namespace, WorkloadId};
use ibac_policy::{Request, Verdict};
use ibac_proxy::{
    ControlPlane, ControlReports, ControlSource, PolicySource, PolicyWatch, ReportSink,
};
use serde_json::{Value, json};
use support::{admin_plane, client, credentials, plane, plane_scanning};

/// web may GET /products on api, a protected service, in namespace shop.
const INTENTS: &str = include_str!("fixtures/shop.yaml");

/// The status the API answered with, if it answered.
fn status_of(err: &ClientError) -> Option<StatusCode> {
    match err {
        ClientError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

async fn apply(c: &ApiClient, name: &str, text: &str) -> Result<Outcome, ClientError> {
    c.send(
        Method::POST,
        "/v1/apply",
        &json!({"sources": [{"name": name, "text": text}]}),
    )
    .await
}

#[tokio::test]
async fn apply_is_all_or_nothing_and_errors_name_file_line_and_column() {
    let (_dir, p, c) = admin_plane().await;

    let out = apply(&c, "intents.yaml", INTENTS).await.unwrap();
    assert_eq!(out.documents.len(), 2);
    assert!(
        out.documents
            .iter()
            .all(|d| d.outcome == DocumentChange::Created)
    );
    let again = apply(&c, "intents.yaml", INTENTS).await.unwrap();
    assert!(
        again
            .documents
            .iter()
            .all(|d| d.outcome == DocumentChange::Unchanged)
    );
    assert_eq!(
        again.revision, out.revision,
        "nothing changed, no new revision"
    );

    // One good and one bad document: nothing is applied.
    let bad = "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: orders, namespace: shop}\nspec: {name: orders}\n---\napiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: cart, namespace: shop}\nspec: {name: cart, colour: red}\n";
    let err = apply(&c, "bad.yaml", bad).await.unwrap_err();
    let ClientError::Api { status, body } = err else {
        panic!("{err}")
    };
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let first = &body.errors[0];
    assert_eq!(first.file.as_deref(), Some("bad.yaml"));
    assert_eq!(first.line, Some(9), "{}", first.message);
    assert!(first.column.is_some());
    assert!(
        first.message.starts_with("bad.yaml:9:"),
        "{}",
        first.message
    );
    let docs: Vec<Value> = c.get("/v1/documents").await.unwrap();
    assert_eq!(
        docs.len(),
        2,
        "the good documents of a bad apply were not applied"
    );

    // Deleting something not stored deletes nothing.
    let missing = "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: ghost, namespace: shop}\nspec: {name: ghost}\n";
    let err = c
        .send::<_, Outcome>(
            Method::POST,
            "/v1/delete",
            &json!({"sources": [{"name": "x.yaml", "text": format!("{INTENTS}---\n{missing}")}]}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("x.yaml:"), "{err}");
    assert_eq!(c.get::<Vec<Value>>("/v1/documents").await.unwrap().len(), 2);
    let out: Outcome = c
        .send(
            Method::POST,
            "/v1/delete",
            &json!({"sources": [{"name": "i.yaml", "text": INTENTS}]}),
        )
        .await
        .unwrap();
    assert!(
        out.documents
            .iter()
            .all(|d| d.outcome == DocumentChange::Deleted)
    );
    assert!(
        c.get::<Vec<Value>>("/v1/documents")
            .await
            .unwrap()
            .is_empty()
    );

    let audit: Vec<Value> = c.get("/v1/audit").await.unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"apply") && actions.contains(&"delete"),
        "{actions:?}"
    );
    assert!(
        audit
            .iter()
            .all(|a| a["actor"] == "token:admin" || a["actor"] == "token:ibac up")
    );
    p.stop().await;
}

#[tokio::test]
async fn only_authenticated_callers_in_scope_change_anything() {
    let (dir, p, admin) = admin_plane().await;

    let nobody = client(dir.path(), &p.url, Some("ibac_not-a-token"));
    let err = apply(&nobody, "i.yaml", INTENTS).await.unwrap_err();
    assert_eq!(status_of(&err), Some(StatusCode::UNAUTHORIZED), "{err}");

    let made: Value = admin
        .send(
            Method::POST,
            "/v1/tokens",
            &json!({"name": "payments-team", "namespaces": ["payments"]}),
        )
        .await
        .unwrap();
    let team = client(dir.path(), &p.url, made["token"].as_str());
    let err = apply(&team, "i.yaml", INTENTS).await.unwrap_err();
    let ClientError::Api { status, body } = err else {
        panic!()
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.error.contains("token:payments-team may not change"),
        "{}",
        body.error
    );
    // Nor may it set the mode or make tokens.
    for (method, path, body) in [
        (Method::PUT, "/v1/mode", json!({"mode": "defaultActive"})),
        (Method::POST, "/v1/tokens", json!({"name": "x"})),
    ] {
        let err = team
            .send::<_, Value>(method, path, &body)
            .await
            .unwrap_err();
        assert_eq!(
            status_of(&err),
            Some(StatusCode::FORBIDDEN),
            "{path}: {err}"
        );
    }
    // It may read, and change its own namespace.
    let _: Vec<Value> = team.get("/v1/documents").await.unwrap();
    let _: Outcome = team
        .send(
            Method::POST,
            "/v1/protect",
            &json!({"workload": "ledger.payments"}),
        )
        .await
        .unwrap();

    // The API description is public and describes every route.
    let spec = admin
        .raw(Method::GET, "/v1/openapi.yaml", None)
        .await
        .unwrap();
    let spec = String::from_utf8(spec.to_vec()).unwrap();
    for route in [
        "/v1/apply",
        "/v1/delete",
        "/v1/documents",
        "/v1/workloads",
        "/v1/workloads/{id}",
        "/v1/protect",
        "/v1/mode",
        "/v1/graph",
        "/v1/graph/events",
        "/v1/mapper/calls",
        "/v1/audit",
        "/v1/tokens",
        "/v1/proxy/state",
        "/v1/proxy/reports",
        "/v1/info",
    ] {
        assert!(
            spec.contains(&format!("  {route}:\n")),
            "{route} is not described"
        );
    }
    p.stop().await;
}

async fn join(dir: &Path, url: &str, token: &str) -> Arc<WorkloadIdentity> {
    WorkloadIdentity::obtain(dir, IssuerClient::new(url).unwrap(), Some(token))
        .await
        .unwrap()
}

async fn wait_for(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting");
}

/// Waits until `policy` gives `verdict` to `client` calling `server` with
/// `request`.
async fn wait_for_verdict(
    policy: &mut PolicyWatch,
    client: &WorkloadId,
    server: &WorkloadId,
    request: &Request,
    verdict: Verdict,
) {
    wait_for(async || {
        policy
            .borrow_and_update()
            .as_ref()
            .is_some_and(|p| p.decide(Some(client), server, request).verdict == verdict)
    })
    .await;
}

#[tokio::test]
async fn proxies_follow_policy_report_calls_and_keep_their_policy_when_the_plane_is_down() {
    let (dir, p, c) = admin_plane().await;
    apply(&c, "i.yaml", INTENTS).await.unwrap();

    let reg: Registered = c
        .send(
            Method::POST,
            "/v1/workloads",
            &json!({"id": "api.shop", "address": "127.0.0.1:9999", "appPort": 8080}),
        )
        .await
        .unwrap();
    let ids = tempfile::tempdir().unwrap();
    let identity = join(&ids.path().join("api"), &p.url, &reg.token).await;
    let control = ControlPlane::new(&p.url, &identity).unwrap();
    let cache = ids.path().join("state.json");
    let source = ControlSource::spawn(
        control.clone(),
        Namespace::default_namespace(),
        Some(cache.clone()),
    );
    let mut policy = source.subscribe();
    let web = WorkloadId::parse("web.shop").unwrap();
    let api = WorkloadId::parse("api.shop").unwrap();
    let admin_path = Request::http(
        None,
        ibac_model::http::RequestMethod::parse("GET").unwrap(),
        ibac_model::http::normalize("/admin").unwrap(),
    );
    wait_for_verdict(&mut policy, &web, &api, &admin_path, Verdict::Blocked).await;
    assert_eq!(
        ibac_proxy::Discovery::resolve(&source, &api),
        Some("127.0.0.1:9999".parse().unwrap())
    );

    // A change reaches the proxy without it asking again.
    apply(
        &c,
        "more.yaml",
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: web, namespace: shop}\nspec:\n  workload: {name: web}\n  targets:\n  - kubernetes: {name: api}\n",
    )
    .await
    .unwrap();
    wait_for_verdict(&mut policy, &web, &api, &admin_path, Verdict::Allowed).await;

    // Reports become discovered calls and graph edges; a proxy cannot
    // report for another workload, or write policy.
    let sink = ControlReports::spawn(control.clone());
    let report = |reporter: &str| Report {
        reporter: WorkloadId::parse(reporter).unwrap(),
        direction: Direction::Inbound,
        client: Some(WorkloadId::parse("rogue.shop").unwrap()),
        server: api.clone(),
        port: 8080,
        protocol: ibac_model::Protocol::Http,
        method: Some("GET".into()),
        path: Some("/products".into()),
        verdict: Verdict::Blocked,
        count: 7,
        first_seen: "2026-11-23T20:00:00Z".into(),
        last_seen: "2026-11-23T20:00:05Z".into(),
        revision: None,
    };
    sink.send(&[report("api.shop")]).unwrap();
    wait_for(async || {
        let g: Value = c.get("/v1/graph").await.unwrap();
        g["edges"].as_array().unwrap().iter().any(|e| {
            e["client"] == "rogue.shop" && e["verdict"] == "blocked" && e["seen"]["count"] == 7
        })
    })
    .await;
    let err = control.report(&[report("web.shop")]).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let calls: Vec<Value> = c
        .get("/v1/mapper/calls?since=30d&namespaces=shop")
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["verdicts"]["blocked"], 7);

    // The plane stops: the proxy keeps its policy, and a restarted proxy
    // reads it from its cache.
    p.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        policy
            .borrow()
            .as_ref()
            .is_some_and(|p| p.decide(Some(&web), &api, &admin_path).verdict == Verdict::Allowed)
    );
    drop(source);
    let restarted = ControlSource::spawn(control, Namespace::default_namespace(), Some(cache));
    assert!(
        restarted
            .subscribe()
            .borrow()
            .as_ref()
            .is_some_and(|p| p.decide(Some(&web), &api, &admin_path).verdict == Verdict::Allowed)
    );

    // The plane restarts from its store with everything it had.
    let p = plane(dir.path()).await;
    let c = client(dir.path(), &p.url, None);
    let docs: Vec<Value> = c.get("/v1/documents").await.unwrap();
    assert_eq!(docs.len(), 2);
    let workloads: Vec<Value> = c.get("/v1/workloads").await.unwrap();
    assert_eq!(workloads[0]["id"], "api.shop");
    assert_eq!(workloads[0]["protected"], true);
    let calls: Vec<Value> = c.get("/v1/mapper/calls").await.unwrap();
    assert_eq!(calls.len(), 1);
    assert!(
        !dir.path()
            .join(files::ADMIN_TOKEN)
            .metadata()
            .unwrap()
            .permissions()
            .readonly()
    );
    p.stop().await;
}

#[tokio::test]
async fn the_change_stream_sends_the_graph_again_after_a_change() {
    use http_body_util::BodyExt;

    let (dir, p, c) = admin_plane().await;
    // Read the stream through the same TLS set-up as the client, by hand.
    let (admin, bundle) = credentials(dir.path());
    let td = ibac_identity::spiffe_id::TrustDomain::parse("ibac.local").unwrap();
    let tb = ibac_identity::bundle::TrustBundle::from_pem(td.clone(), bundle.as_bytes()).unwrap();
    let verifier = Arc::new(ibac_identity::tls::SpiffeServerVerifier::new(
        Arc::new(arc_swap::ArcSwap::from_pointee(tb)),
        ibac_identity::tls::ExpectedServer::Id(
            ibac_identity::spiffe_id::SpiffeId::for_component(&td, "issuer").unwrap(),
        ),
    ));
    let tls = ibac_identity::tls::client_config(None, verifier, &[b"http/1.1"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(p.url.trim_start_matches("https://"))
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("/v1/graph/events")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {}", admin.trim()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let mut text = String::new();
    let mut next_event = async || loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
        }
        if let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if event.starts_with("event: graph") {
                return event;
            }
        }
    };
    let first = next_event().await;
    assert!(first.contains("\"edges\":[]"), "{first}");
    apply(&c, "i.yaml", INTENTS).await.unwrap();
    let second = next_event().await;
    assert!(second.contains("\"client\":\"web.shop\""), "{second}");
    p.stop().await;
}

#[tokio::test]
async fn the_socket_scanner_finds_calls_that_bypass_the_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let p = plane_scanning(dir.path(), Some(Duration::from_millis(100))).await;
    let c = client(dir.path(), &p.url, None);
    // The "app" of db.shop listens here; this test process is web.shop, and
    // connects to it directly, with no proxy in between.
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = app.local_addr().unwrap().port();
    let _: Registered = c
        .send(
            Method::POST,
            "/v1/workloads",
            &json!({"id": "db.shop", "appPort": app_port, "port": 5432}),
        )
        .await
        .unwrap();
    p.running()
        .control
        .set_pids([(std::process::id(), WorkloadId::parse("web.shop").unwrap())].into());
    let _conn = tokio::net::TcpStream::connect(("127.0.0.1", app_port))
        .await
        .unwrap();
    let _accepted = app.accept().await.unwrap();
    wait_for(async || {
        let g: Value = c.get("/v1/graph").await.unwrap();
        g["edges"].as_array().unwrap().iter().any(|e| {
            e["client"] == "web.shop"
                && e["server"] == "db.shop"
                && e["seen"]["bySocketScan"] == true
        })
    })
    .await;
    let calls: Vec<Value> = c.get("/v1/mapper/calls").await.unwrap();
    assert_eq!(
        calls[0]["port"], 5432,
        "the port intents name, not the app's"
    );
    let metrics = c.raw(Method::GET, "/metrics", None).await.unwrap();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(metrics.contains("ibac_control_workloads 1"), "{metrics}");
    assert!(
        metrics.contains("ibac_control_discovered_calls 1"),
        "{metrics}"
    );
    assert_eq!(calls[0]["verdicts"]["unchecked"], 1);
    p.stop().await;
}
