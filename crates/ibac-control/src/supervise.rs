//! Running workloads with their proxies, and keeping them running.
//!
//! For each workload: register it (its proxy's address becomes known to
//! every other proxy), start `ibac proxy` with a join token, then start the
//! app with `HTTP_PROXY` pointing at its proxy. A process that exits is
//! started again, with a growing pause; the proxy keeps its SVID on disk, so
//! a restart needs no new token. Output goes to `<data-dir>/logs/`. On
//! shutdown every child gets SIGTERM, then SIGKILL after a grace period.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use ibac_model::WorkloadId;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::auth::Caller;
use crate::control::{Control, Registration};
use crate::topology::{Protocol, Topology, WorkloadSpec, substitute};

/// A port nobody listens on now (the kernel's pick).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Everything needed to start one workload.
#[derive(Clone, Debug)]
pub struct Planned {
    /// `name.namespace`.
    pub id: WorkloadId,
    /// The app's port.
    pub app_port: u16,
    /// The proxy's inbound port.
    pub proxy_port: u16,
    /// The proxy's outbound HTTP proxy port.
    pub outbound_port: u16,
    /// TCP targets: (as written, workload, local port).
    pub tcp: Vec<(String, WorkloadId, u16)>,
    /// The spec.
    pub spec: WorkloadSpec,
}

/// Chooses ports for every workload.
pub fn plan(topology: &Topology) -> anyhow::Result<Vec<Planned>> {
    topology
        .workloads
        .iter()
        .map(|spec| {
            let id = spec.id()?;
            let tcp = spec
                .tcp_targets()?
                .into_iter()
                .map(|(name, target)| Ok((name, target, free_port()?)))
                .collect::<anyhow::Result<_>>()?;
            Ok(Planned {
                id,
                app_port: match spec.port {
                    Some(p) => p,
                    None => free_port()?,
                },
                proxy_port: free_port()?,
                outbound_port: free_port()?,
                tcp,
                spec: spec.clone(),
            })
        })
        .collect()
}

/// Runs workloads until `stop` turns true.
pub struct Supervisor {
    control: Arc<Control>,
    exe: PathBuf,
    url: String,
    stop: watch::Receiver<bool>,
    log_level: String,
}

impl Supervisor {
    /// Starts processes with `exe` (the `ibac` binary) for the control plane
    /// at `url`.
    pub fn new(control: Arc<Control>, exe: PathBuf, url: String, stop: watch::Receiver<bool>) -> Self {
        Supervisor {
            control,
            exe,
            url,
            stop,
            log_level: "info".into(),
        }
    }

    /// Registers every workload and runs it; returns once all are stopped.
    pub async fn run(self, planned: Vec<Planned>) -> anyhow::Result<()> {
        let data_dir = self.control.data_dir().to_path_buf();
        std::fs::create_dir_all(data_dir.join("logs"))?;
        let admin = Caller::Admin {
            name: "ibac up".into(),
        };
        let pids: Arc<std::sync::Mutex<HashMap<u32, WorkloadId>>> = Arc::default();
        let mut tasks = Vec::new();
        for p in planned {
            let reg = self
                .control
                .add_workload(
                    &admin,
                    &Registration {
                        id: p.id.to_string(),
                        address: Some(SocketAddr::from(([127, 0, 0, 1], p.proxy_port))),
                        app_port: Some(p.app_port),
                        port: Some(p.app_port),
                        token_ttl_seconds: Some(3600),
                    },
                )
                .await
                .map_err(|e| anyhow!("cannot register {}: {e}", p.id))?;
            let ctx = Arc::new(Context_ {
                control: self.control.clone(),
                exe: self.exe.clone(),
                url: self.url.clone(),
                data_dir: data_dir.clone(),
                log_level: self.log_level.clone(),
                pids: pids.clone(),
            });
            let proxy = ctx.proxy_command(&p, &reg.token)?;
            let app = ctx.app_command(&p)?;
            tasks.push(tokio::spawn(keep_running(ctx.clone(), p.id.clone(), "proxy", proxy, self.stop.clone())));
            // The app starts once its proxy listens, so that its first calls go through.
            let ready = SocketAddr::from(([127, 0, 0, 1], p.outbound_port));
            let stop = self.stop.clone();
            let id = p.id.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    if tokio::net::TcpStream::connect(ready).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                keep_running(ctx, id, "app", app, stop).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// What every supervised process shares.
struct Context_ {
    control: Arc<Control>,
    exe: PathBuf,
    url: String,
    data_dir: PathBuf,
    log_level: String,
    pids: Arc<std::sync::Mutex<HashMap<u32, WorkloadId>>>,
}

/// A command to (re)start.
#[derive(Clone, Debug)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Context_ {
    fn proxy_command(&self, p: &Planned, token: &str) -> anyhow::Result<Launch> {
        let identity = self.data_dir.join("workloads").join(p.id.as_str());
        let mut args = vec![
            "proxy".to_string(),
            "--control".into(),
            self.url.clone(),
            "--identity-dir".into(),
            identity.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", p.proxy_port),
            "--app".into(),
            format!("127.0.0.1:{}", p.app_port),
            "--port".into(),
            p.app_port.to_string(),
            "--protocol".into(),
            match p.spec.protocol {
                Protocol::Http => "http".into(),
                Protocol::Tcp => "tcp".into(),
            },
            "--outbound-http".into(),
            format!("127.0.0.1:{}", p.outbound_port),
            "--report-interval".into(),
            "1s".into(),
        ];
        for (_, target, port) in &p.tcp {
            args.push("--outbound-tcp".into());
            args.push(format!("{target}=127.0.0.1:{port}"));
        }
        let env = [
            ("IBAC_JOIN_TOKEN".to_string(), token.to_string()),
            ("IBAC_LOG".to_string(), self.log_level.clone()),
        ]
        .into();
        Ok(Launch {
            program: self.exe.clone(),
            args,
            env,
        })
    }

    fn app_command(&self, p: &Planned) -> anyhow::Result<Launch> {
        let proxy = format!("http://127.0.0.1:{}", p.outbound_port);
        let tcp: BTreeMap<String, String> = p
            .tcp
            .iter()
            .flat_map(|(name, target, port)| {
                let addr = format!("127.0.0.1:{port}");
                [(name.clone(), addr.clone()), (target.to_string(), addr)]
            })
            .collect();
        let mut words = p
            .spec
            .command
            .iter()
            .map(|a| substitute(a, p.app_port, &proxy, &tcp))
            .collect::<Result<Vec<_>, _>>()?;
        let program = words.remove(0);
        let program = if program == "ibac" { self.exe.clone() } else { PathBuf::from(program) };
        let mut env = p.spec.env.clone();
        env.insert("PORT".into(), p.app_port.to_string());
        env.insert("HTTP_PROXY".into(), proxy.clone());
        env.insert("http_proxy".into(), proxy);
        env.insert("NO_PROXY".into(), String::new());
        env.insert("IBAC_WORKLOAD".into(), p.id.to_string());
        Ok(Launch {
            program,
            args: words,
            env,
        })
    }

    fn log_file(&self, id: &WorkloadId, role: &str) -> anyhow::Result<std::fs::File> {
        let path = self.data_dir.join("logs").join(format!("{id}.{role}.log"));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))
    }

    fn spawn(&self, id: &WorkloadId, role: &str, launch: &Launch) -> anyhow::Result<Child> {
        let log = self.log_file(id, role)?;
        let err = log.try_clone()?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .envs(&launch.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {} for {id}", launch.program.display()))?;
        if let (Some(pid), Ok(mut pids)) = (child.id(), self.pids.lock()) {
            pids.insert(pid, id.clone());
            self.control.set_pids(pids.clone());
        }
        Ok(child)
    }

    fn forget(&self, pid: Option<u32>) {
        if let (Some(pid), Ok(mut pids)) = (pid, self.pids.lock()) {
            pids.remove(&pid);
            self.control.set_pids(pids.clone());
        }
    }
}

/// Asks a child to stop, then makes it.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn keep_running(ctx: Arc<Context_>, id: WorkloadId, role: &'static str, launch: Launch, mut stop: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        let mut child = match ctx.spawn(&id, role, &launch) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(workload = %id, role, error = %e, "cannot start");
                return;
            }
        };
        let pid = child.id();
        tracing::info!(workload = %id, role, pid, "started");
        let started = std::time::Instant::now();
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(status) = exited else {
            terminate(&mut child).await;
            ctx.forget(pid);
            return;
        };
        ctx.forget(pid);
        tracing::warn!(workload = %id, role, status = ?status.ok(), "exited; starting it again in {pause:?}");
        if started.elapsed() > Duration::from_secs(30) {
            pause = Duration::from_millis(500);
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// Where a workload's logs go.
pub fn log_path(data_dir: &Path, id: &WorkloadId, role: &str) -> PathBuf {
    data_dir.join("logs").join(format!("{id}.{role}.log"))
}
