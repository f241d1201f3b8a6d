//! Hostile HTTP against the inbound side. A permissive, shadow-mode proxy lets
//! plaintext through, so raw bytes reach the HTTP parser; each test checks what
//! comes back and what reaches the app. The app only ever sees requests ibac
//! re-framed itself, so nothing can be smuggled past a decision.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ibac_model::fixtures::intents;
use ibac_proxy::{Limits, Protocol, ProxyConfig, StaticPolicy};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Target {
    app: App,
    addr: std::net::SocketAddr,
    _proxy: Running,
}

async fn target(limits: Limits) -> Target {
    let pki = Pki::new();
    let app = App::start().await;
    let policy = StaticPolicy::new(Some(policy(vec![
        intents("web.shop").calls("api.shop").build(),
    ])));
    let proxy = start_serving(
        ProxyConfig {
            inbound: inbound(app.addr, None, Protocol::Http, true),
            limits,
            ..ProxyConfig::default()
        },
        pki.identity("api.shop"),
        &policy,
    )
    .await;
    Target {
        addr: proxy.addresses.inbound.unwrap(),
        app,
        _proxy: proxy,
    }
}

async fn default_target() -> Target {
    target(Limits::default()).await
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

/// Sends `request` on a connection of its own and checks that the proxy
/// answers with status `want`; returns the whole answer.
async fn answers(t: &Target, request: &[u8], want: &str) -> String {
    let answer = raw(t.addr, request).await;
    assert_eq!(
        status(&answer),
        want,
        "{}: {answer}",
        String::from_utf8_lossy(request)
    );
    answer
}

/// A connection that has sent `bytes`.
async fn sent(t: &Target, bytes: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(t.addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp
}

/// Runs `client` for up to 15 s and checks that it ended well before: the
/// proxy closed the connection (`closer` says why it should have).
async fn closed_early(client: impl Future, closer: &str) {
    let started = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(15), client).await;
    assert!(started.elapsed() < Duration::from_secs(14), "{closer}");
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    let t = default_target().await;
    let attack = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    answers(&t, attack, "200").await;
    let seen = t.app.requests();
    assert_eq!(
        seen.len(),
        1,
        "only the framed request reaches the app: {seen:?}"
    );
    assert_eq!(seen[0].uri, "/a");
    assert!(seen[0].body.is_empty());
    assert!(!seen[0].headers.contains_key("transfer-encoding"));
}

/// Requests the proxy answers itself: none of them reaches the app.
#[tokio::test]
async fn malformed_requests_are_refused_before_the_app() {
    let t = default_target().await;
    let cases: [(&str, &[u8], &str); 6] = [
        (
            "conflicting Content-Lengths",
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            "400",
        ),
        (
            "a transfer coding other than chunked",
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            "400",
        ),
        (
            "NUL in a header value",
            b"GET /a HTTP/1.1\r\nHost: x\r\nX-Test: a\0b\r\n\r\n",
            "400",
        ),
        (
            "CR in a header value",
            b"GET /a HTTP/1.1\r\nHost: x\r\nX-Test: a\rb\r\n\r\n",
            "400",
        ),
        (
            "an absolute-form target inbound",
            b"GET http://evil.example/a HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "CONNECT inbound",
            b"CONNECT api.shop:443 HTTP/1.1\r\nHost: api.shop:443\r\nConnection: close\r\n\r\n",
            "405",
        ),
    ];
    for (what, request, want) in cases {
        let answer = raw(t.addr, request).await;
        assert_eq!(status(&answer), want, "{what}: {answer:?}");
    }
    assert!(t.app.requests().is_empty());
}

#[tokio::test]
async fn duplicate_equal_content_lengths_frame_one_body() {
    let t = default_target().await;
    answers(
        &t,
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabcGET /smuggled HTTP/1.1\r\n\r\n",
        "200",
    )
    .await;
    let seen = t.app.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, b"abc");
}

#[tokio::test]
async fn malformed_chunking_never_reaches_the_app() {
    let t = default_target().await;
    for body in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloXX\r\n0\r\n\r\n",
        b"ffffffffffffffffff\r\n",
    ] {
        let mut request =
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        let answer = raw(t.addr, &request).await;
        assert!(answer.is_empty() || status(&answer) == "400", "{answer}");
    }
    assert!(t.app.requests().is_empty());
}

#[tokio::test]
async fn bare_lf_line_endings_are_refused() {
    let t = default_target().await;
    // A parser that ended lines only at CRLF would see one request with a
    // body; one that accepts a bare LF sees two. ibac answers neither.
    let answer = answers(
        &t,
        b"GET /first HTTP/1.1\nHost: x\n\nGET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "400",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    // In a header line, after a good request, in a chunk-size line, in a trailer.
    let cases: [&[u8]; 4] = [
        b"GET /a HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: 1\n\r\n",
    ];
    for bad in cases {
        let answer = raw(t.addr, bad).await;
        assert!(
            answer.contains("HTTP/1.1 400"),
            "{}: {answer}",
            String::from_utf8_lossy(bad)
        );
    }
    let uris: Vec<String> = t.app.requests().into_iter().map(|s| s.uri).collect();
    assert!(
        uris.iter().all(|u| u == "/a"),
        "only the well-formed request reaches the app: {uris:?}"
    );
    // Bare LF inside a body is data, not a line ending.
    answers(
        &t,
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\n\n\n",
        "200",
    )
    .await;
}

#[tokio::test]
async fn exactly_one_valid_host_header_is_required() {
    let t = default_target().await;
    for bad in [
        &b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nHost: api.shop\r\nHost: admin.shop\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: api.shop\r\nHost: api.shop\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: user@api.shop\r\nConnection: close\r\n\r\n",
    ] {
        let answer = answers(&t, bad, "400").await;
        assert!(answer.contains("Host"), "the answer says why: {answer}");
    }
    assert!(t.app.requests().is_empty());
    // HTTP/1.0 needs no Host.
    answers(&t, b"GET /a HTTP/1.0\r\n\r\n", "200").await;
}

#[tokio::test]
async fn paths_an_app_could_decode_into_something_else_are_refused() {
    let t = default_target().await;
    for path in [
        "/a/%c0%ae%c0%ae/admin",
        "/%C0%AF",
        "/%e0%80%ae",
        "/a/%ff",
        "/a/%252e%252e/admin",
        "/a/%252E%252E/admin",
        "/a%252fadmin",
        "/a%252Fadmin",
        "/a%255cadmin",
        "/a%25252Fadmin",
        "/a%2525252eadmin",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = answers(&t, request.as_bytes(), "400").await;
        assert!(answer.contains("bad request path"), "{path}: {answer}");
    }
    assert!(t.app.requests().is_empty());
    // Valid UTF-8 escapes pass.
    answers(
        &t,
        b"GET /caf%C3%A9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "200",
    )
    .await;
}

#[tokio::test]
async fn header_count_and_size_are_limited() {
    let t = default_target().await;
    let mut many = b"GET /a HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..150 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    answers(&t, &many, "431").await;
    let mut big = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let answer = raw(t.addr, &big).await;
    assert!(
        answer.is_empty() || status(&answer) == "431" || status(&answer) == "400",
        "{answer}"
    );
    assert!(t.app.requests().is_empty());
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let t = target(Limits {
        header_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut tcp = sent(&t, b"GET /a HTTP/1.1\r\nHost: x\r\n").await;
    let slowloris = async {
        loop {
            // Trickle a byte now and then, as slowloris does.
            if tcp.write_all(b"X").await.is_err() {
                break;
            }
            let mut chunk = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) | Err(_) => {}
            }
        }
    };
    closed_early(slowloris, "the connection was closed by the proxy").await;
    assert!(t.app.requests().is_empty());
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let t = target(Limits {
        idle_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut tcp = sent(&t, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut out = Vec::new();
    closed_early(
        tcp.read_to_end(&mut out),
        "closed after idling, not kept forever",
    )
    .await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let t = target(Limits {
        max_body: 1024,
        ..Limits::default()
    })
    .await;
    let mut request =
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n"
            .to_vec();
    request.extend(std::iter::repeat_n(b'a', 5000));
    answers(&t, &request, "413").await;
    let mut chunked =
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..5 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend(std::iter::repeat_n(b'a', 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    answers(&t, &chunked, "413").await;
    assert!(t.app.requests().is_empty());
}

/// An HTTP/2 connection to `addr`, ready to send a request, and the task
/// driving it.
async fn h2_connection(
    addr: std::net::SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    (client.ready().await.unwrap(), conn)
}

fn h2_request(path: &str) -> http::Request<()> {
    http::Request::builder()
        .method("GET")
        .uri(format!("http://api.shop{path}"))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn http2_works_and_caps_concurrent_streams() {
    let t = target(Limits {
        max_streams: 4,
        ..Limits::default()
    })
    .await;
    let (mut client, conn) = h2_connection(t.addr).await;
    let (response, _) = client.send_request(h2_request("/h2/../ok"), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(t.app.requests()[0].uri, "/ok");
    // The server's SETTINGS say how many streams may be open at once.
    assert_eq!(client.current_max_send_streams(), 4);
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}

#[tokio::test]
async fn http2_rapid_reset_is_cut_off() {
    let t = default_target().await;
    let (mut client, conn) = h2_connection(t.addr).await;
    let mut refused = false;
    for _ in 0..2_000 {
        match client.send_request(h2_request("/slow"), true) {
            Ok((response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                drop(response);
            }
            Err(_) => {
                refused = true;
                break;
            }
        }
        match client.clone().ready().await {
            Ok(c) => client = c,
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        refused || matches!(ended, Ok(Ok(Err(_)))),
        "the server ended a connection that reset streams as fast as it opened them"
    );
    assert!(
        t.app.requests().len() < 2_000,
        "most reset streams never reached the app"
    );
}
