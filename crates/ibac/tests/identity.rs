//! The identity commands as a user runs them, as real processes: create a CA,
//! serve issuance, mint a join token, run the agent, and read the SVID through
//! the SPIFFE Workload API with an independent client library.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{first_line, ibac_at, ok_in, spawn_piped};

fn ibac(dir: &Path, args: &[&str]) -> std::process::Output {
    ibac_at(dir).args(args).output().unwrap()
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    tempfile::NamedTempFile::new()
        .unwrap()
        .as_file()
        .metadata()
        .unwrap()
        .uid()
}

async fn fetch(socket: &Path) -> Result<String, String> {
    let client = spiffe::WorkloadApiClient::connect_to(format!("unix:{}", socket.display()))
        .await
        .map_err(|e| e.to_string())?;
    client
        .fetch_x509_svid()
        .await
        .map(|s| s.spiffe_id().to_string())
        .map_err(|e| e.to_string())
}

async fn fetch_eventually(socket: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match fetch(socket).await {
            Ok(id) => return id,
            Err(e) if Instant::now() > deadline => panic!("no SVID within 30 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn ca_issuer_agent_and_an_independent_workload_api_client() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok_in(root, &["ca", "init"]);
    let (_issuer, mut out) = spawn_piped(root, &["ca", "serve", "--listen", "127.0.0.1:0"]);
    let banner = first_line(&mut out);
    let url = banner.split_whitespace().last().unwrap().to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{banner}");

    let token = String::from_utf8(ibac(root, &["ca", "token", "web.shop"]).stdout).unwrap();
    let socket = root.join("agent.sock");
    let uid = uid().to_string();
    let agent_args = |token: Option<&str>| {
        let mut args = vec![
            "agent".to_string(),
            "--issuer".into(),
            url.clone(),
            "--dir".into(),
            "web".into(),
            "--socket".into(),
            format!("unix://{}", socket.display()),
            "--uid".into(),
            uid.clone(),
        ];
        if let Some(t) = token {
            args.extend(["--token".to_string(), t.trim().to_string()]);
        }
        args
    };
    {
        let args = agent_args(Some(&token));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_agent, _out) = spawn_piped(root, &args);
        assert_eq!(
            fetch_eventually(&socket).await,
            "spiffe://ibac.local/ns/shop/workload/web"
        );
    }
    // Restart without a token: the SVID kept on disk is enough.
    let args = agent_args(None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_agent, _out) = spawn_piped(root, &args);
    assert_eq!(
        fetch_eventually(&socket).await,
        "spiffe://ibac.local/ns/shop/workload/web"
    );

    let audit = std::fs::read_to_string(root.join("ibac-ca/audit.jsonl")).unwrap();
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"action\":\"join\""))
            .count(),
        1,
        "{audit}"
    );

    // The token was used: a second agent with it for a fresh directory is refused.
    let reuse = ibac(
        root,
        &[
            "agent",
            "--issuer",
            &url,
            "--dir",
            "again",
            "--token",
            token.trim(),
            "--socket",
            "/tmp/unused.sock",
            "--uid",
            "0",
        ],
    );
    assert!(!reuse.status.success());
    assert!(String::from_utf8_lossy(&reuse.stderr).contains("unknown or already used join token"));
}

#[test]
fn inspect_explains_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok_in(root, &["ca", "init", "--trust-domain", "example.org"]);
    ok_in(root, &["ca", "issue", "web.shop", "--out", "web"]);
    let good = ibac(root, &["ca", "inspect", "web/svid.pem"]);
    assert!(good.status.success());
    let text = String::from_utf8(good.stdout).unwrap();
    assert!(
        text.contains(
            "SPIFFE ID:      spiffe://example.org/ns/shop/workload/web  (workload web.shop)"
        ),
        "{text}"
    );
    assert!(text.contains("ibac accepts this certificate"), "{text}");
    let wrong_td = ibac(
        root,
        &[
            "ca",
            "inspect",
            "web/svid.pem",
            "--trust-domain",
            "ibac.local",
        ],
    );
    assert_eq!(wrong_td.status.code(), Some(1));
    assert!(
        String::from_utf8(wrong_td.stdout)
            .unwrap()
            .contains("is in trust domain `example.org`, not `ibac.local`")
    );
}

#[test]
fn inspect_refuses_a_spiffe_id_without_a_path() {
    // A leaf minted by openssl, signed by ibac's own CA, so that the only rule
    // it breaks is the bare trust domain as its SPIFFE ID (X509-SVID §5.2).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok_in(root, &["ca", "init", "--trust-domain", "example.org"]);
    std::fs::write(
        root.join("leaf.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nO = test\n\
         [svid]\nsubjectAltName = URI:spiffe://example.org\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth, clientAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf-key.pem",
        "-out",
        "leaf.csr",
        "-config",
        "leaf.cnf",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ibac-ca/ca.pem",
        "-CAkey",
        "ibac-ca/ca-key.pem",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.cnf",
        "-extensions",
        "svid",
        "-out",
        "leaf.pem",
    ]);
    let out = ibac(root, &["ca", "inspect", "leaf.pem"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ibac refuses this certificate"), "{text}");
    assert!(
        text.contains("the SPIFFE ID `spiffe://example.org` has no path"),
        "{text}"
    );
}
