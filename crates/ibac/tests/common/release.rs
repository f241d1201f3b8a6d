//! ibac installed with its Helm chart on the test control plane, and the
//! operator run as a local process with nothing but the chart's
//! ServiceAccount token (which proves the chart's RBAC is enough for what it
//! does). Uninstalled, and the operator stopped, when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ibac_k8s_test::{Cluster, free_port, http_get, wait_for};

/// The chart's directory.
pub fn chart() -> String {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/ibac"))
        .display()
        .to_string()
}

/// `ibac operator` with `kubeconfig`, its admin port on `admin`, more
/// `args`, its output in `log`.
pub fn spawn_operator(
    kubeconfig: &std::path::Path,
    admin: u16,
    args: &[String],
    log: &std::path::Path,
) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ibac"))
        .args(["operator", "--log", "info", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

/// A release and its operator.
pub struct Release<'c> {
    cluster: &'c Cluster,
    namespace: String,
    child: Child,
    /// The operator's admin port.
    pub admin: u16,
    log: PathBuf,
    kubeconfig: PathBuf,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl<'c> Release<'c> {
    /// `helm install ibac` into `namespace` with `--set` of each of `values`,
    /// its webhooks pointed at the operator started here.
    pub fn install(cluster: &'c Cluster, namespace: &str, values: &[&str]) -> Release<'c> {
        let webhook = free_port().unwrap();
        let url = format!("https://127.0.0.1:{webhook}");
        let url_value = format!("webhook.url={url}");
        let mut args = vec!["install", "ibac", "", "-n", namespace, "--set", &url_value];
        let chart = chart();
        args[2] = &chart;
        for value in values {
            args.extend(["--set", value]);
        }
        cluster.helm(&args).unwrap();
        let token = cluster
            .kubectl(&[
                "create",
                "token",
                "ibac",
                "-n",
                namespace,
                "--duration",
                "2h",
            ])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, cluster.kubeconfig_for_token(&token).unwrap()).unwrap();
        let admin = free_port().unwrap();
        let log = dir.path().join("operator.log");
        let args = vec![
            "--webhook-addr".to_owned(),
            format!("127.0.0.1:{webhook}"),
            "--webhook-url".to_owned(),
            url,
            "--operator-namespace".to_owned(),
            namespace.to_owned(),
        ];
        let child = spawn_operator(&kubeconfig, admin, &args, &log);
        Release {
            cluster,
            namespace: namespace.to_owned(),
            child,
            admin,
            log,
            kubeconfig,
            args,
            _dir: dir,
        }
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The sum of the samples of metric `name` (a prefix with its labels).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = http_get(self.admin, "/metrics").unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits (up to 90 s) for `probe`, showing the operator's log when it
    /// does not come.
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        wait_for(what, Duration::from_secs(90), || Ok(probe()))
            .unwrap_or_else(|e| panic!("{e}\n--- operator log ---\n{}", self.log()))
    }

    /// Waits until `/readyz` says ready.
    pub fn wait_ready(&self) {
        let admin = self.admin;
        self.wait("the operator is ready", || {
            matches!(http_get(admin, "/readyz"), Ok((200, _))).then_some(())
        });
    }

    /// Stops the operator and starts it again, as a new process with the
    /// same account and arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn_operator(&self.kubeconfig, self.admin, &self.args, &self.log);
        self.wait_ready();
    }

    /// Stops the operator (the release stays until dropped).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.stop();
        let _ = self.cluster.kubectl(&[
            "delete",
            "validatingwebhookconfiguration",
            "ibac",
            "--ignore-not-found",
        ]);
        let _ = self
            .cluster
            .helm(&["uninstall", "ibac", "-n", &self.namespace]);
    }
}
