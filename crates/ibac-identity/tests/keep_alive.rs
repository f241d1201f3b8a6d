//! Calls to ibac's own HTTPS endpoints reuse their connection: a hundred
//! proxies long-polling the control plane must not all connect again at
//! once after each change. A connection the server has closed is replaced
//! without the caller noticing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Extension;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use ibac_identity::https::{ConnectionInfo, Endpoint, serve};
use ibac_identity::tls::{
    ExpectedServer, SpiffeClientVerifier, SpiffeServerVerifier, SvidResolver, client_config,
    server_config,
};
use support::{id, issue, root};
use tokio::net::TcpListener;

/// Serves `GET /who` on `listener`: the client's port, so that a test sees
/// whether two calls came over one connection. Stops when `stop` fires.
fn serve_who(
    ca: &ibac_identity::Ca,
    listener: TcpListener,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let bundle = Arc::new(ArcSwap::from_pointee(ca.bundle()));
    let config = server_config(
        SvidResolver::new(&issue(ca, "control.ibac")).unwrap(),
        Arc::new(SpiffeClientVerifier::new(bundle, true)),
        &[],
    )
    .unwrap();
    let app =
        axum::Router::new().route(
            "/who",
            get(|Extension(info): Extension<ConnectionInfo>| async move {
                info.remote.port().to_string()
            }),
        );
    tokio::spawn(serve(listener, Arc::new(config), app, async {
        let _ = stop.await;
    }))
}

/// `web.shop`'s client config, expecting the server to be `control.ibac`.
fn client_tls(ca: &ibac_identity::Ca) -> Arc<rustls::ClientConfig> {
    let bundle = Arc::new(ArcSwap::from_pointee(ca.bundle()));
    Arc::new(
        client_config(
            Some(SvidResolver::new(&issue(ca, "web.shop")).unwrap()),
            Arc::new(SpiffeServerVerifier::new(
                bundle,
                ExpectedServer::Id(id(ca, "control.ibac")),
            )),
            &[],
        )
        .unwrap(),
    )
}

async fn who(endpoint: &Endpoint, tls: &Arc<rustls::ClientConfig>) -> String {
    let request = http::Request::get("/who")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body) = endpoint
        .send(
            tls.clone(),
            request,
            std::time::Duration::from_secs(10),
            1 << 10,
        )
        .await
        .unwrap();
    assert!(status.is_success(), "{status}");
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn calls_reuse_their_connection_and_replace_one_the_server_closed() {
    let ca = root();
    let tls = client_tls(&ca);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = serve_who(&ca, listener, stopped);
    let endpoint = Endpoint::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    let first = who(&endpoint, &tls).await;
    assert_eq!(who(&endpoint, &tls).await, first, "one connection for both");
    // Another TLS config (a renewed certificate) gets a connection of its own.
    let renewed = Arc::new((*tls).clone());
    assert_ne!(who(&endpoint, &renewed).await, first);

    // The server goes away, closing the kept connections; a new one on the
    // same address is reached by the next call as if nothing happened.
    let _ = stop.send(());
    task.await.unwrap();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let _task = serve_who(&ca, listener, stopped);
    let after = who(&endpoint, &tls).await;
    assert_ne!(after, first, "a new connection");
    assert_eq!(who(&endpoint, &tls).await, after, "kept in turn");
}

/// A one-shot endpoint (the issuer's: each call brings its own TLS config,
/// and calls are far apart) connects anew every time and keeps nothing.
#[tokio::test]
async fn a_one_shot_endpoint_connects_anew_for_every_call() {
    let ca = root();
    let tls = client_tls(&ca);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let _task = serve_who(&ca, listener, stopped);
    let endpoint = Endpoint::parse(&format!("https://127.0.0.1:{port}"))
        .unwrap()
        .one_shot();
    let first = who(&endpoint, &tls).await;
    assert_ne!(who(&endpoint, &tls).await, first, "a new connection");
}
