//! Real TLS 1.3 handshakes on 127.0.0.1 with the SPIFFE verifiers on both
//! sides: who may connect, to whom, and renewals that reach new handshakes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use arc_swap::ArcSwap;
use ibac_identity::tls::{
    ExpectedServer, SharedBundle, SpiffeClientVerifier, SpiffeServerVerifier, SvidResolver,
    client_config, peer_id, server_config,
};
use ibac_identity::{Ca, Svid};
use rustls_pki_types::ServerName;
use support::{id, issue, root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn bundle(ca: &Ca) -> SharedBundle {
    Arc::new(ArcSwap::from_pointee(ca.bundle()))
}

/// An echo server that reports the client's SPIFFE ID as its first line.
async fn server(ca: &Ca, svid: &Svid, mandatory: bool) -> (u16, Arc<SvidResolver>) {
    let resolver = SvidResolver::new(svid).unwrap();
    let config = server_config(
        resolver.clone(),
        Arc::new(SpiffeClientVerifier::new(bundle(ca), mandatory)),
        &[],
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let who = peer_id(tls.get_ref().1.peer_certificates())
                        .map_or("anonymous".to_string(), |i| i.to_string());
                    let _ = tls.write_all(format!("{who}\n").as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (port, resolver)
}

async fn call(
    port: u16,
    ca: &Ca,
    ours: Option<&Svid>,
    expect: ExpectedServer,
) -> Result<String, String> {
    let ours = ours.map(|s| SvidResolver::new(s).unwrap());
    let config = client_config(
        ours,
        Arc::new(SpiffeServerVerifier::new(bundle(ca), expect)),
        &[],
    )
    .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out.trim().to_string())
}

/// A call presenting `ours` to a server that must be `target`.
async fn call_expecting(port: u16, ca: &Ca, ours: &Svid, target: &str) -> Result<String, String> {
    call(port, ca, Some(ours), ExpectedServer::Id(id(ca, target))).await
}

#[tokio::test]
async fn both_sides_see_each_others_spiffe_ids() {
    let ca = root();
    let (port, _) = server(&ca, &issue(&ca, "api.shop"), true).await;
    let web = issue(&ca, "web.shop");
    let got = call_expecting(port, &ca, &web, "api.shop").await.unwrap();
    assert_eq!(got, "spiffe://ibac.local/ns/shop/workload/web");
}

#[tokio::test]
async fn a_client_refuses_a_server_that_is_not_the_intended_target() {
    let ca = root();
    let (port, _) = server(&ca, &issue(&ca, "impostor.shop"), true).await;
    let err = call_expecting(port, &ca, &issue(&ca, "web.shop"), "api.shop")
        .await
        .unwrap_err();
    assert!(
        err.contains("not the intended `spiffe://ibac.local/ns/shop/workload/api`"),
        "{err}"
    );
}

#[tokio::test]
async fn clients_without_an_svid_or_from_another_ca_are_refused() {
    let ca = root();
    let (port, _) = server(&ca, &issue(&ca, "api.shop"), true).await;
    assert!(
        call(port, &ca, None, ExpectedServer::AnyInTrustDomain)
            .await
            .is_err()
    );
    let other = root();
    assert!(
        call(
            port,
            &ca,
            Some(&issue(&other, "web.shop")),
            ExpectedServer::AnyInTrustDomain
        )
        .await
        .is_err()
    );
    // Optional client auth (permissive): no SVID is let in, as anonymous.
    let (open, _) = server(&ca, &issue(&ca, "api.shop"), false).await;
    assert_eq!(
        call(open, &ca, None, ExpectedServer::AnyInTrustDomain)
            .await
            .unwrap(),
        "anonymous"
    );
}

#[tokio::test]
async fn a_renewed_svid_reaches_new_handshakes() {
    let ca = root();
    let (port, resolver) = server(&ca, &issue(&ca, "api.shop"), true).await;
    let web = issue(&ca, "web.shop");
    assert!(call_expecting(port, &ca, &web, "api.shop").await.is_ok());
    resolver.replace(&issue(&ca, "api-v2.shop")).unwrap();
    assert!(call_expecting(port, &ca, &web, "api-v2.shop").await.is_ok());
}
