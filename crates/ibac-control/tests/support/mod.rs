//! What the control plane's tests share: a control plane on an ephemeral
//! port with its data in a temporary directory, and the CLI's client for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use ibac_control::client::ApiClient;
use ibac_control::server::files;
use ibac_control::{Options, Running, Settings, start};
use tokio::sync::oneshot;

pub struct Plane {
    running: Option<Running>,
    stop: Option<oneshot::Sender<()>>,
    pub url: String,
}

/// A control plane keeping its data in `dir`, without the socket scanner.
pub async fn plane(dir: &Path) -> Plane {
    plane_scanning(dir, None).await
}

/// A control plane keeping its data in `dir`, scanning sockets every
/// `scan_every` if given.
pub async fn plane_scanning(dir: &Path, scan_every: Option<Duration>) -> Plane {
    let (stop, stopped) = oneshot::channel::<()>();
    let running = start(
        Options {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            trust_domain: None,
            settings: Settings::default(),
            scan_every,
            ui: None,
        },
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    let url = running.url.clone();
    Plane {
        running: Some(running),
        stop: Some(stop),
        url,
    }
}

impl Plane {
    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.running.take().unwrap().wait().await;
    }
}

/// The admin token and the trust bundle a control plane wrote in `dir`.
pub fn credentials(dir: &Path) -> (String, String) {
    let admin = std::fs::read_to_string(dir.join(files::ADMIN_TOKEN)).unwrap();
    let bundle = std::fs::read_to_string(dir.join(files::BUNDLE)).unwrap();
    (admin, bundle)
}

/// The CLI's client for the control plane at `url`, with `token` or else the
/// admin token.
pub fn client(dir: &Path, url: &str, token: Option<&str>) -> ApiClient {
    let (admin, bundle) = credentials(dir);
    ApiClient::new(url, token.unwrap_or(&admin), &bundle, "ibac.local").unwrap()
}

/// A control plane in a fresh temporary directory and the admin's client
/// for it; the directory lasts as long as the first value.
pub async fn admin_plane() -> (tempfile::TempDir, Plane, ApiClient) {
    let dir = tempfile::tempdir().unwrap();
    let p = plane(dir.path()).await;
    let c = client(dir.path(), &p.url, None);
    (dir, p, c)
}
