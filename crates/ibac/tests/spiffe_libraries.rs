//! The SPIFFE project's own client libraries against `ibac agent`, each from
//! its ecosystem's registry: go-spiffe (Go module proxy), py-spiffe (PyPI)
//! and java-spiffe (Maven Central). Each small client under `tests/interop/`
//! fetches the X.509-SVID and the bundles, watches a renewal arrive, and —
//! with go-spiffe's and java-spiffe's TLS helpers — calls an `ibac proxy`
//! over mTLS with the SVID it fetched. Each also fetches a JWT-SVID, checks
//! it against the JWT bundle itself and has the agent validate it; a last
//! test sends the agent tokens it must refuse.
//!
//! The clients and their dependencies are built or installed under
//! `~/.cache/ibac/interop` (or `$IBAC_INTEROP_CACHE`), outside the clone, so
//! that later runs only check them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Guard, app, free_port, ok_in, spawn_in, start_api_proxy, start_issuer, write_web_gets_orders,
};

const PY_SPIFFE: &str = "0.3.2";
const WEB: &str = "spiffe://ibac.local/ns/shop/workload/web";
const API: &str = "spiffe://ibac.local/ns/shop/workload/api";
/// The audience the clients ask a JWT-SVID for.
const AUDIENCE: &str = "spiffe://ibac.local/ns/shop/workload/api";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn cache() -> PathBuf {
    let dir = std::env::var_os("IBAC_INTEROP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/ibac/interop")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(what: &str, command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it ({e}); scripts/test installs it"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn newest_mtime(paths: &[PathBuf]) -> std::time::SystemTime {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .max()
        .unwrap()
}

fn go_binary() -> String {
    let path = Path::new("/usr/local/go/bin/go");
    if path.exists() {
        path.display().to_string()
    } else {
        "go".into()
    }
}

/// The go-spiffe client, built with `go build` (modules from the Go proxy).
fn go_client() -> Command {
    let out = cache().join("go-client");
    run(
        "go build",
        Command::new(go_binary())
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(interop_dir().join("go")),
    );
    Command::new(out)
}

/// The py-spiffe client, in a virtual environment with `spiffe` from PyPI.
fn python_client() -> Command {
    let venv = cache().join(format!("py-spiffe-{PY_SPIFFE}"));
    let python = venv.join("bin/python");
    if !python.exists() {
        run(
            "python3 -m venv",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        );
        run(
            "pip install spiffe",
            Command::new(venv.join("bin/pip")).args([
                "install",
                "-q",
                &format!("spiffe=={PY_SPIFFE}"),
            ]),
        );
    }
    let mut command = Command::new(python);
    command.arg(interop_dir().join("python/client.py"));
    command
}

/// The java-spiffe client, built with Maven (artifacts from Maven Central);
/// rebuilt only when its sources are newer than the build.
fn java_client() -> Command {
    let project = interop_dir().join("java");
    let out = cache().join("java");
    let jar = out.join("interop-java-1.jar");
    let sources = [
        project.join("pom.xml"),
        project.join("src/main/java/dev/ibac/interop/Client.java"),
    ];
    if !jar.exists() || newest_mtime(&sources) > newest_mtime(std::slice::from_ref(&jar)) {
        run(
            "mvn package",
            Command::new("mvn")
                .args(["-q", "-B", "package"])
                .arg(format!("-Dinterop.out={}", out.display()))
                .current_dir(&project),
        );
    }
    let mut command = Command::new("java");
    command.arg("-cp").arg(format!(
        "{}:{}/*",
        out.join("classes").display(),
        out.join("dependency").display()
    ));
    command.arg("dev.ibac.interop.Client");
    command
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(env!("CARGO_MANIFEST_DIR")).unwrap().uid()
}

/// An issuer with short-lived SVIDs (so that a renewal comes within
/// seconds), an agent serving web.shop, and a proxy protecting api.shop that
/// lets web.shop GET /orders/* only.
struct World {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    inbound: u16,
    _processes: Vec<Guard>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (issuer, url) = start_issuer(root, &["--svid-ttl", "16s"]);
    write_web_gets_orders(root);
    let app = app();
    let inbound = free_port();
    let proxy = start_api_proxy(root, &url, inbound, app, &[]);
    let web_token = ok_in(root, &["ca", "token", "web.shop"]);
    let socket = root.join("agent.sock");
    let (agent, _) = spawn_in(
        root,
        &[
            "agent",
            "--issuer",
            &url,
            "--dir",
            "web-id",
            "--token",
            web_token.trim(),
            "--socket",
            &format!("unix://{}", socket.display()),
            "--uid",
            &uid().to_string(),
        ],
    );
    wait_for_port(inbound);
    World {
        _dir: dir,
        socket,
        inbound,
        _processes: vec![agent, proxy, issuer],
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} not open within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a client against the world and returns its lines, split in words.
fn talk(world: &World, mut client: Command, mtls: bool) -> Vec<Vec<String>> {
    client
        .env(
            "SPIFFE_ENDPOINT_SOCKET",
            format!("unix://{}", world.socket.display()),
        )
        .env("IBAC_INTEROP_WAIT", "60")
        .env("IBAC_INTEROP_AUDIENCE", AUDIENCE);
    if mtls {
        let base = format!("https://127.0.0.1:{}", world.inbound);
        client
            .env("IBAC_INTEROP_URL", format!("{base}/orders/7 {base}/admin"))
            .env("IBAC_INTEROP_SERVER_ID", API);
    }
    let text = run_bounded(client, Duration::from_secs(180));
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Runs a client to its end, or kills it after `limit` and says what it printed.
fn run_bounded(mut client: Command, limit: Duration) -> String {
    use std::io::Read;
    let mut child = client
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start the interop client ({e}); scripts/test installs it")
        });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(status) if status.success() => out,
        Some(status) => panic!("the interop client failed ({status}):\n{out}\n{err}"),
        None => panic!("the interop client did not finish within {limit:?}:\n{out}\n{err}"),
    }
}

fn line<'a>(lines: &'a [Vec<String>], kind: &str) -> &'a [String] {
    lines
        .iter()
        .find(|l| l[0] == kind)
        .unwrap_or_else(|| panic!("no `{kind}` line in {lines:?}"))
}

fn check(lines: &[Vec<String>], mtls: bool) {
    let x509 = line(lines, "x509");
    assert_eq!(x509[1], WEB, "{lines:?}");
    assert_eq!(x509[3], "1", "one root in the bundle: {lines:?}");
    assert_eq!(
        line(lines, "bundles")[1..],
        ["ibac.local", "1"],
        "{lines:?}"
    );
    // A JWT-SVID for this workload and audience, valid for the library
    // against the JWT bundle and for the agent's ValidateJWTSVID.
    assert_eq!(line(lines, "jwt")[1..], [WEB, AUDIENCE], "{lines:?}");
    let rotated = line(lines, "rotated");
    assert_ne!(rotated[1], x509[2], "a new serial after renewal");
    if mtls {
        let calls: Vec<&Vec<String>> = lines.iter().filter(|l| l[0] == "mtls").collect();
        assert_eq!(calls.len(), 2, "{lines:?}");
        // The proxy accepted the SVID and passed the caller's identity on...
        assert_eq!(calls[0][1..], ["200", "/orders/7", WEB], "{lines:?}");
        // ...and authorized by intent: no intent allows /admin.
        assert_eq!(calls[1][1..3], ["403", "blocked"], "{lines:?}");
    }
}

#[test]
fn go_spiffe_fetches_x509_and_jwt_svids_watches_and_calls_the_proxy_over_mtls() {
    let client = go_client();
    let world = world();
    check(&talk(&world, client, true), true);
}

#[test]
fn py_spiffe_fetches_x509_and_jwt_svids_and_watches() {
    let client = python_client();
    let world = world();
    check(&talk(&world, client, false), false);
}

#[test]
fn java_spiffe_fetches_x509_and_jwt_svids_watches_and_calls_the_proxy_over_mtls() {
    let client = java_client();
    let world = world();
    check(&talk(&world, client, true), true);
}

mod refusals {
    //! ValidateJWTSVID through the real agent's socket, with tokens signed by
    //! the trust domain's own key but wrong in one way each, and with forged
    //! ones; and FetchJWTSVID for an identity that is not the caller's.

    use super::*;
    use ibac_identity::jwt::JwtKey;
    use ibac_identity::workload_api::{
        JwtsvidRequest, SpiffeWorkloadApiClient, ValidateJwtsvidRequest,
    };
    use serde_json::{Map, Value, json};
    use tonic::transport::Channel;

    async fn connect(socket: PathBuf) -> SpiffeWorkloadApiClient<Channel> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "no agent socket within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ibac_identity::workload_api::connect(&socket).await.unwrap()
    }

    fn call<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("workload.spiffe.io", "true".parse().unwrap());
        request
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn validate_jwt_svid_refuses_expired_foreign_wrong_audience_and_unsigned_tokens() {
        let world = world();
        let mut client = connect(world.socket.clone()).await;
        let store = ibac_identity::CaStore::open(&world._dir.path().join("ibac-ca")).unwrap();
        let key = store.jwt_key().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();

        // A genuine token from the agent is accepted, with its claims.
        let fetched = client
            .fetch_jwtsvid(call(JwtsvidRequest {
                audience: vec![AUDIENCE.into()],
                spiffe_id: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched.svids[0].spiffe_id, WEB);
        let token = fetched.svids[0].svid.clone();
        let valid = client
            .validate_jwtsvid(call(ValidateJwtsvidRequest {
                audience: AUDIENCE.into(),
                svid: token.clone(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(valid.spiffe_id, WEB);
        let fields = valid.claims.unwrap().fields;
        assert_eq!(
            fields["sub"].kind,
            Some(prost_types::value::Kind::StringValue(WEB.into()))
        );
        assert!(fields.contains_key("exp") && fields.contains_key("aud"));

        // Asking for someone else's identity is refused.
        let other = client
            .fetch_jwtsvid(call(JwtsvidRequest {
                audience: vec![AUDIENCE.into()],
                spiffe_id: API.into(),
            }))
            .await
            .unwrap_err();
        assert_eq!(other.code(), tonic::Code::PermissionDenied, "{other:?}");

        let signed = |c: Value| key.sign_claims(&claims(c)).unwrap();
        let stranger = JwtKey::generate().unwrap();
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(json!({"sub": WEB, "aud": AUDIENCE, "exp": now + 60})
                .to_string()
                .as_bytes())
        );
        let (head_and_claims, _) = token.rsplit_once('.').unwrap();
        let foreign_signature = stranger
            .sign_claims(&claims(
                json!({"sub": WEB, "aud": AUDIENCE, "exp": now + 60}),
            ))
            .unwrap();
        let bad_signature = format!(
            "{head_and_claims}.{}",
            foreign_signature.rsplit_once('.').unwrap().1
        );
        let cases = [
            (
                signed(json!({"sub": WEB, "aud": AUDIENCE, "exp": now - 5})),
                "the token expired",
            ),
            (
                signed(json!({"sub": WEB, "aud": AUDIENCE, "exp": now + 600, "nbf": now + 300})),
                "not valid yet",
            ),
            (
                signed(
                    json!({"sub": "spiffe://elsewhere.test/ns/shop/workload/web", "aud": AUDIENCE, "exp": now + 60}),
                ),
                "foreign trust domain",
            ),
            (
                signed(
                    json!({"sub": WEB, "aud": "spiffe://ibac.local/ns/shop/workload/db", "exp": now + 60}),
                ),
                "not for `spiffe://ibac.local/ns/shop/workload/api`",
            ),
            (
                signed(json!({"sub": WEB, "aud": AUDIENCE})),
                "claim `exp` is missing",
            ),
            (
                stranger
                    .sign_claims(&claims(
                        json!({"sub": WEB, "aud": AUDIENCE, "exp": now + 60}),
                    ))
                    .unwrap(),
                "is not in the JWT bundle",
            ),
            (bad_signature, "the signature does not verify"),
            (unsigned, "`alg: none`"),
            ("not-a-token".to_string(), "not a signed JWT"),
        ];
        for (svid, reason) in cases {
            let refused = client
                .validate_jwtsvid(call(ValidateJwtsvidRequest {
                    audience: AUDIENCE.into(),
                    svid,
                }))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
            assert!(
                refused.message().starts_with("the JWT-SVID is refused: ")
                    && refused.message().contains(reason),
                "{reason}: {}",
                refused.message()
            );
        }
    }
}
