//! The shared control plane of one test binary, and a namespace per test.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::process::{Group, free_port, http_get};
use crate::{Error, pki};

/// How long a component may take to become ready; a loaded two-core machine
/// needs far more than an idle laptop. `IBAC_K8S_TIMEOUT` (seconds) overrides it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// A running control plane: etcd, kube-apiserver and kube-controller-manager.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    kubeconfig: PathBuf,
    server: String,
}

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

impl Cluster {
    /// The control plane of this test binary, started on first use.
    ///
    /// Under cargo-nextest, where every test is a process of its own, the
    /// tests of one binary find the control plane the first of them started; it
    /// stops when the nextest run ends.
    pub fn shared() -> Result<&'static Cluster, Error> {
        SHARED
            .get_or_init(|| Cluster::start_shared().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Start(e.clone()))
    }

    fn start_shared() -> Result<Cluster, Error> {
        let owner = if std::env::var_os("NEXTEST_RUN_ID").is_some() {
            std::os::unix::process::parent_id()
        } else {
            std::process::id()
        };
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "test".to_owned());
        let dir = std::env::temp_dir()
            .join("ibac-k8s")
            .join(format!("{exe}-{owner}"));
        std::fs::create_dir_all(&dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path)
            .map_err(Error::io(format!("cannot create {}", lock_path.display())))?;
        lock.lock()
            .map_err(Error::io(format!("cannot lock {}", lock_path.display())))?;

        let bin = binaries()?;
        let cluster = Cluster {
            kubeconfig: dir.join("kubeconfig"),
            server: std::fs::read_to_string(dir.join("server")).unwrap_or_default(),
            bin,
            dir,
        };
        if dir_ready(&cluster.dir) {
            cluster.kubectl(&["get", "--raw=/readyz"])?;
            return Ok(cluster);
        }
        cluster.start(owner)
    }

    fn start(mut self, owner: u32) -> Result<Cluster, Error> {
        let timeout = std::env::var("IBAC_K8S_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let dir = self.dir.clone();
        let files = pki::write(&dir.join("pki"))?;
        let group = Group::start(owner, &dir)?;
        let path = |p: &Path| p.display().to_string();

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = group.spawn(
            "etcd",
            &self.bin.join("etcd"),
            &[
                "--name=ibac-test".to_owned(),
                format!("--data-dir={}", path(&dir.join("etcd"))),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=ibac-test={peer_url}"),
                // The data is thrown away after the run.
                "--unsafe-no-fsync".to_owned(),
                "--log-level=warn".to_owned(),
            ],
            &dir.join("etcd.log"),
        )?;
        etcd.wait_ready(timeout, || match http_get(etcd_port, "/health")? {
            (200, body) if body.contains("true") => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        })?;

        let api_port = free_port()?;
        self.server = format!("https://127.0.0.1:{api_port}");
        let pki_dir = dir.join("pki");
        let mut apiserver = group.spawn(
            "kube-apiserver",
            &self.bin.join("kube-apiserver"),
            &[
                format!("--etcd-servers={client_url}"),
                "--bind-address=127.0.0.1".to_owned(),
                "--advertise-address=127.0.0.1".to_owned(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", path(&pki_dir)),
                format!("--tls-cert-file={}", path(&files.serving_cert)),
                format!("--tls-private-key-file={}", path(&files.serving_key)),
                format!("--client-ca-file={}", path(&files.ca_cert)),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
                format!(
                    "--service-account-key-file={}",
                    path(&files.service_account_public_key)
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    path(&files.service_account_key)
                ),
                format!("--service-cluster-ip-range={}", pki::SERVICE_RANGE),
                "--authorization-mode=RBAC".to_owned(),
                // Endpoints may not name a loopback address, and nothing in the
                // tests reaches the API server through its Service.
                "--endpoint-reconciler-type=none".to_owned(),
                "--profiling=false".to_owned(),
            ],
            &dir.join("kube-apiserver.log"),
        )?;
        write(
            &self.kubeconfig,
            &pki::kubeconfig(&files, &self.server),
            "the kubeconfig",
        )?;
        write(&dir.join("server"), &self.server, "the server address")?;
        apiserver.wait_ready(timeout, || {
            self.kubectl(&["get", "--raw=/readyz"])
                .map(drop)
                .map_err(|e| e.to_string())
        })?;

        let mut controller_manager = group.spawn(
            "kube-controller-manager",
            &self.bin.join("kube-controller-manager"),
            &[
                format!("--kubeconfig={}", path(&self.kubeconfig)),
                "--bind-address=127.0.0.1".to_owned(),
                "--secure-port=0".to_owned(),
                "--leader-elect=false".to_owned(),
                format!(
                    "--service-account-private-key-file={}",
                    path(&files.service_account_key)
                ),
                format!("--root-ca-file={}", path(&files.ca_cert)),
                format!("--cluster-signing-cert-file={}", path(&files.ca_cert)),
                format!("--cluster-signing-key-file={}", path(&files.ca_key)),
            ],
            &dir.join("kube-controller-manager.log"),
        )?;
        // Its service-account controller gives every namespace a `default`
        // ServiceAccount, which Pods need before they can be created.
        controller_manager.wait_ready(timeout, || {
            self.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                .map(drop)
                .map_err(|e| e.to_string())
        })?;
        write(&dir.join("ready"), "", "the ready mark")?;
        Ok(self)
    }

    /// The admin kubeconfig (client certificate of group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The directory of the control plane's files (logs, certificates).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of the binaries `scripts/k8s-env` built (`kubectl`,
    /// `helm`, ...).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Istio's published CRDs (every `*.istio.io` kind, one YAML stream), as
    /// `scripts/k8s-env` fetched them from the `istio.io/api` Go module.
    pub fn istio_crds(&self) -> Result<PathBuf, Error> {
        let path = self
            .bin
            .parent()
            .map(|cache| cache.join("crds/istio.yaml"))
            .unwrap_or_default();
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::NotBuilt {
                reason: format!("no Istio CRDs at {}: run scripts/k8s-env", path.display()),
            })
        }
    }

    /// `kubectl` with the admin kubeconfig, to add arguments to.
    pub fn kubectl_command(&self) -> Command {
        let mut command = Command::new(self.binary("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Runs `kubectl args...` as the admin and returns what it printed.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, Error> {
        run(self.kubectl_command().args(args), None)
    }

    /// Runs `kubectl args...` with `input` on its stdin (for `apply -f -`).
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> Result<String, Error> {
        run(self.kubectl_command().args(args), Some(input))
    }

    /// `helm` with the admin kubeconfig and its cache and configuration in
    /// the control plane's directory (never the user's).
    pub fn helm_command(&self) -> Command {
        let mut command = Command::new(self.binary("helm"));
        let home = self.dir.join("helm");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"));
        command
    }

    /// Runs `helm args...` and returns what it printed.
    pub fn helm(&self, args: &[&str]) -> Result<String, Error> {
        run(self.helm_command().args(args), None)
    }

    /// A kubeconfig that authenticates with `token` (a ServiceAccount's, from
    /// `kubectl create token`): to act as that account and nothing more.
    pub fn kubeconfig_for_token(&self, token: &str) -> Result<String, Error> {
        let admin = std::fs::read_to_string(&self.kubeconfig).map_err(Error::io(format!(
            "cannot read {}",
            self.kubeconfig.display()
        )))?;
        let ca = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
            .unwrap_or_default();
        Ok(pki::kubeconfig_as(
            &self.server,
            ca,
            "token",
            &format!("    token: {}", token.trim()),
        ))
    }

    /// A namespace of its own for one test, named `<prefix>-<random>`; it is
    /// deleted when the returned value is dropped. Returns once the namespace
    /// has its `default` ServiceAccount, so Pods can be created in it at once.
    pub fn namespace(&self, prefix: &str) -> Result<Namespace<'_>, Error> {
        let name = namespace_name(prefix);
        self.kubectl(&["create", "namespace", &name])?;
        let namespace = Namespace {
            cluster: self,
            name,
        };
        wait_for(
            &format!(
                "namespace `{}` has its default ServiceAccount",
                namespace.name
            ),
            Duration::from_secs(60),
            || {
                Ok(self
                    .kubectl(&["get", "serviceaccount", "default", "-n", &namespace.name])
                    .ok())
            },
        )?;
        Ok(namespace)
    }
}

/// A namespace that one test owns; deleted when dropped (also when the test
/// panics).
#[derive(Debug)]
pub struct Namespace<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl Namespace<'_> {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        // Best effort: the whole control plane goes away after the run anyway.
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// Polls `probe` (every 200 ms) until it returns `Some`, for at most `timeout`.
/// An error from `probe` ends the wait at once.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
                context: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dir_ready(dir: &Path) -> bool {
    dir.join("ready").exists() && dir.join("kubeconfig").exists()
}

fn write(path: &Path, contents: &str, what: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(Error::io(format!(
        "cannot write {what} to {}",
        path.display()
    )))
}

/// Where `scripts/k8s-env` put the binaries: `IBAC_K8S_BIN`, or what the
/// script says (it builds nothing when asked with `--print`).
fn binaries() -> Result<PathBuf, Error> {
    let dir = match std::env::var_os("IBAC_K8S_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/k8s-env");
            let out = Command::new(&script)
                .arg("--print")
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| Error::NotBuilt {
                    reason: format!("cannot run {}: {e}", script.display()),
                })?;
            if !out.status.success() {
                return Err(Error::NotBuilt {
                    reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                });
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kubectl",
    ] {
        if !dir.join(name).is_file() {
            return Err(Error::NotBuilt {
                reason: format!("no `{name}` in {}", dir.display()),
            });
        }
    }
    Ok(dir)
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub(crate) fn run(command: &mut Command, input: Option<&str>) -> Result<String, Error> {
    let line = command_line(command);
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io(format!("cannot run `{line}`")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .map_err(Error::io(format!("cannot write to `{line}`")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(Error::io(format!("cannot run `{line}`")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn command_line(command: &Command) -> String {
    let mut words = vec![
        Path::new(command.get_program())
            .file_name()
            .unwrap_or(OsStr::new("?"))
            .to_string_lossy()
            .into_owned(),
    ];
    let mut args = command.get_args();
    while let Some(arg) = args.next() {
        // The kubeconfig's path is noise in every message.
        if arg == "--kubeconfig" {
            args.next();
            continue;
        }
        words.push(arg.to_string_lossy().into_owned());
    }
    words.join(" ")
}

fn namespace_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() {
        clean.push_str("test");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id =
        (std::process::id().wrapping_mul(2_654_435_761) ^ nanos ^ n.rotate_left(20)) & 0xff_ffff;
    format!("{clean}-{id:06x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels() {
        let name = namespace_name("Deployment_Gets/Pods");
        assert!(name.starts_with("deployment-gets-pods-"), "{name}");
        assert!(name.len() <= 63);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert_ne!(namespace_name("a"), namespace_name("a"));
        assert!(namespace_name("--").starts_with("test-"));
    }
}
