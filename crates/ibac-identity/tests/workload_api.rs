//! The SPIFFE Workload API on a real Unix socket, read by an independent
//! SPIFFE client library (the `spiffe` crate), plus raw gRPC calls for what
//! that library never does (leaving out the security header, sending the
//! socket path or nothing as `:authority`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_like::next;
use ibac_identity::workload_api::{
    IdentitySource, Registration, Selector, WorkloadApi, X509svidRequest, connect, serve,
};
use ibac_identity::{Ca, Svid};
use support::{issue, root};
use tokio::sync::watch;

mod futures_like {
    use tokio_stream::{Stream, StreamExt};

    /// The next stream item, or a panic after a generous timeout.
    pub async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
        tokio::time::timeout(std::time::Duration::from_secs(20), stream.next())
            .await
            .expect("an item within 20 s")
            .expect("the stream is still open")
    }
}

fn uid() -> u32 {
    // The test runs as some user; read it from a file we create.
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid()
}

/// Serves `api` on `socket` in the background, returning once the socket
/// exists (or after about five seconds, for the test to fail on).
async fn serve_on(socket: &Path, api: WorkloadApi) {
    let path = socket.to_path_buf();
    tokio::spawn(async move {
        serve(&path, api, std::future::pending()).await.unwrap();
    });
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The spiffe crate's own client, as an independent workload would use it.
async fn spiffe_client(socket: &Path) -> spiffe::WorkloadApiClient {
    spiffe::WorkloadApiClient::connect_to(format!("unix:{}", socket.display()))
        .await
        .unwrap()
}

struct Api {
    socket: PathBuf,
    ca: Arc<Ca>,
    web: watch::Sender<Arc<Svid>>,
    _dir: tempfile::TempDir,
}

/// Serves web.shop to this test process (selected by uid and executable)
/// and db.shop to a uid nobody here has.
async fn start() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let ca = Arc::new(root());
    let bundle = Arc::new(ArcSwap::from_pointee(ca.bundle()));
    let (web, web_rx) = watch::channel(Arc::new(issue(&ca, "web.shop")));
    let (_db, db_rx) = watch::channel(Arc::new(issue(&ca, "db.shop")));
    let me = std::env::current_exe().unwrap();
    let api = WorkloadApi::new(vec![
        Registration {
            selector: Selector {
                uid: Some(uid().wrapping_add(4242)),
                exe: None,
            },
            identity: IdentitySource {
                svid: db_rx,
                bundle: bundle.clone(),
                jwt: None,
            },
        },
        Registration {
            selector: Selector {
                uid: Some(uid()),
                exe: Some(me),
            },
            identity: IdentitySource {
                svid: web_rx,
                bundle,
                jwt: None,
            },
        },
    ]);
    serve_on(&socket, api).await;
    Api {
        socket,
        ca,
        web,
        _dir: dir,
    }
}

#[tokio::test]
async fn an_independent_spiffe_client_gets_its_svid_and_bundle() {
    let api = start().await;
    let client = spiffe_client(&api.socket).await;
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(
        svid.spiffe_id().to_string(),
        "spiffe://ibac.local/ns/shop/workload/web"
    );
    assert_eq!(svid.cert_chain().len(), 1);
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new("ibac.local").unwrap();
    let bundle = bundles.get(&td).expect("the bundle of ibac.local");
    assert_eq!(bundle.authorities()[0].as_ref(), api.ca.root().as_ref());
}

#[tokio::test]
async fn the_svid_stream_follows_rotations() {
    let api = start().await;
    let client = spiffe_client(&api.socket).await;
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let first = next(&mut stream).await.unwrap();
    let first_leaf = first.default_svid().unwrap().leaf().as_ref().to_vec();
    api.web.send_replace(Arc::new(issue(&api.ca, "web.shop")));
    let second = next(&mut stream).await.unwrap();
    let second_svid = second.default_svid().unwrap();
    assert_ne!(
        second_svid.leaf().as_ref(),
        first_leaf.as_slice(),
        "a renewed SVID arrives on the stream"
    );
    assert_eq!(
        second_svid.spiffe_id().to_string(),
        "spiffe://ibac.local/ns/shop/workload/web"
    );
}

#[tokio::test]
async fn calls_without_the_security_header_are_refused() {
    let api = start().await;
    let mut client = connect(&api.socket).await.unwrap();
    let status = client.fetch_x509svid(X509svidRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let mut request = tonic::Request::new(X509svidRequest {});
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().unwrap());
    let mut stream = client.fetch_x509svid(request).await.unwrap().into_inner();
    let response = next(&mut stream).await.unwrap();
    assert_eq!(
        response.svids[0].spiffe_id,
        "spiffe://ibac.local/ns/shop/workload/web"
    );
}

#[tokio::test]
async fn callers_get_only_their_registered_identity() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let ca = root();
    let (_tx, rx) = watch::channel(Arc::new(issue(&ca, "db.shop")));
    let api = WorkloadApi::new(vec![Registration {
        selector: Selector {
            uid: None,
            exe: Some(PathBuf::from("/usr/sbin/some-other-daemon")),
        },
        identity: IdentitySource {
            svid: rx,
            bundle: Arc::new(ArcSwap::from_pointee(ca.bundle())),
            jwt: None,
        },
    }]);
    serve_on(&socket, api).await;
    let client = spiffe_client(&socket).await;
    let err = client.fetch_x509_svid().await.unwrap_err();
    assert!(
        matches!(err, spiffe::WorkloadApiError::PermissionDenied(_)),
        "{err:?}"
    );
}

/// One gRPC call in raw HTTP/2 frames, with the `:authority` the client
/// chooses; returns the response's header fields (headers, then trailers).
async fn raw_call(socket: &Path, authority: &[u8], header: bool) -> Vec<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"),
        (b":authority", authority),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ];
    if header {
        fields.push((b"workload.spiffe.io", b"true"));
    }
    let block = loona_hpack::Encoder::new().encode(fields);
    let mut conn = tokio::net::UnixStream::connect(socket).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x4, 1, &block));
    out.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
    conn.write_all(&out).await.unwrap();
    let mut decoder = loona_hpack::Decoder::new();
    let mut seen = Vec::new();
    let read = async {
        loop {
            let mut head = [0u8; 9];
            conn.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            conn.read_exact(&mut payload).await.unwrap();
            match head[3] {
                0x4 if head[4] & 0x1 == 0 => {
                    conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap()
                }
                0x1 => {
                    for (n, v) in decoder.decode(&payload).unwrap() {
                        seen.push((String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()));
                    }
                    // A response that carries its status is complete enough.
                    if seen.iter().any(|(n, _)| n == "grpc-status") {
                        return;
                    }
                }
                0x0 if seen.iter().any(|(n, v)| n == ":status" && v == "200") => return,
                0x3 | 0x7 => panic!("the server reset the call: {:?}", payload),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("a response within 20 s");
    seen
}

#[tokio::test]
async fn any_authority_a_grpc_client_sends_is_served() {
    let api = start().await;
    let path = api.socket.display().to_string();
    let encoded = path.trim_start_matches('/').replace('/', "%2F");
    for authority in [path.as_bytes(), encoded.as_bytes(), b"localhost", b""] {
        let fields = raw_call(&api.socket, authority, true).await;
        assert!(
            fields.contains(&(":status".into(), "200".into())),
            "{:?}: {fields:?}",
            String::from_utf8_lossy(authority)
        );
        assert!(
            !fields.iter().any(|(n, _)| n == "grpc-status"),
            "a streaming answer, not an error: {fields:?}"
        );
        // Everything else stays as strict: without the security header the
        // call is refused, whatever the authority.
        let fields = raw_call(&api.socket, authority, false).await;
        assert!(
            fields.contains(&("grpc-status".into(), "3".into())),
            "{fields:?}"
        );
    }
}
