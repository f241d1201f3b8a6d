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

use crate::topology::{Protocol, Topology, WorkloadSpec, substitute};
use ibac_api::Registration;
use ibac_control::Control;
use ibac_control::auth::Caller;

/// Ports nobody listens on now (the kernel's picks). Each stays bound until
/// the whole plan is made: a port let go at once could be the kernel's next
/// pick, and two workloads would be given the same port.
#[derive(Default)]
struct FreePorts(Vec<std::net::TcpListener>);

impl FreePorts {
    fn take(&mut self) -> anyhow::Result<u16> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
        let port = listener.local_addr()?.port();
        self.0.push(listener);
        Ok(port)
    }
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
    let mut ports = FreePorts::default();
    topology
        .workloads
        .iter()
        .map(|spec| {
            let id = spec.id()?;
            let tcp = spec
                .tcp_targets()?
                .into_iter()
                .map(|(name, target)| Ok((name, target, ports.take()?)))
                .collect::<anyhow::Result<_>>()?;
            Ok(Planned {
                id,
                app_port: match spec.port {
                    Some(p) => p,
                    None => ports.take()?,
                },
                proxy_port: ports.take()?,
                outbound_port: ports.take()?,
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
    pub fn new(
        control: Arc<Control>,
        exe: PathBuf,
        url: String,
        stop: watch::Receiver<bool>,
    ) -> Self {
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
        reap_stale(&data_dir.join(PID_FILE));
        let admin = Caller::Admin {
            name: "ibac up".into(),
        };
        let pids: Arc<std::sync::Mutex<HashMap<u32, WorkloadId>>> = Arc::default();
        let ctx = Arc::new(Context_ {
            control: self.control.clone(),
            exe: self.exe.clone(),
            url: self.url.clone(),
            data_dir: data_dir.clone(),
            log_level: self.log_level.clone(),
            pids,
        });
        // Register every workload first, so that every proxy's first state
        // already says where all the others are.
        let mut launches = Vec::new();
        for p in &planned {
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
            launches.push((
                p.id.clone(),
                ctx.proxy_command(p, &reg.token)?,
                ctx.app_command(p)?,
            ));
        }
        let mut tasks = Vec::new();
        for (id, proxy, _) in &launches {
            tasks.push(tokio::spawn(keep_running(
                ctx.clone(),
                id.clone(),
                "proxy",
                proxy.clone(),
                self.stop.clone(),
            )));
        }
        // Apps start once every proxy listens, so that their first calls
        // find the proxies they go through.
        for p in &planned {
            for port in [p.proxy_port, p.outbound_port] {
                for _ in 0..600 {
                    if *self.stop.borrow()
                        || tokio::net::TcpStream::connect(("127.0.0.1", port))
                            .await
                            .is_ok()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        for (id, _, app) in launches {
            tasks.push(tokio::spawn(keep_running(
                ctx.clone(),
                id,
                "app",
                app,
                self.stop.clone(),
            )));
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
            (
                "IBAC_PARENT_PID".to_string(),
                std::process::id().to_string(),
            ),
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
        let program = if program == "ibac" {
            self.exe.clone()
        } else {
            PathBuf::from(program)
        };
        let mut env = p.spec.env.clone();
        env.insert("PORT".into(), p.app_port.to_string());
        env.insert("HTTP_PROXY".into(), proxy.clone());
        env.insert("http_proxy".into(), proxy);
        env.insert("NO_PROXY".into(), String::new());
        env.insert("IBAC_WORKLOAD".into(), p.id.to_string());
        env.insert("IBAC_PARENT_PID".into(), std::process::id().to_string());
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
            write_pids(&self.data_dir.join(PID_FILE), &pids);
        }
        Ok(child)
    }

    fn forget(&self, pid: Option<u32>) {
        if let (Some(pid), Ok(mut pids)) = (pid, self.pids.lock()) {
            pids.remove(&pid);
            self.control.set_pids(pids.clone());
            write_pids(&self.data_dir.join(PID_FILE), &pids);
        }
    }
}

/// Asks a child to stop, then makes it.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn keep_running(
    ctx: Arc<Context_>,
    id: WorkloadId,
    role: &'static str,
    launch: Launch,
    mut stop: watch::Receiver<bool>,
) {
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

/// The processes started, so that a control plane killed with SIGKILL
/// (which cannot stop its children) stops them when it starts again.
const PID_FILE: &str = "supervised.pids";

/// When a process started, in clock ticks since boot: with the pid, it
/// names one process, even after the pid is reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn write_pids(path: &Path, pids: &HashMap<u32, WorkloadId>) {
    let text: String = pids
        .keys()
        .filter_map(|pid| start_time(*pid).map(|t| format!("{pid} {t}\n")))
        .collect();
    let tmp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!(error = %e, "cannot record supervised processes");
    }
}

/// Stops processes a previous run left behind.
fn reap_stale(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(Ok(pid)), Some(Ok(started))) = (
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if start_time(pid) == Some(started)
            && let Ok(raw) = i32::try_from(pid)
        {
            tracing::warn!(pid, "stopping a process left behind by an earlier run");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_planned_port_is_different() {
        for _ in 0..20 {
            let planned = plan(&crate::demo::topology()).unwrap();
            let mut ports: Vec<u16> = planned
                .iter()
                .flat_map(|p| {
                    [p.app_port, p.proxy_port, p.outbound_port]
                        .into_iter()
                        .chain(p.tcp.iter().map(|t| t.2))
                })
                .collect();
            let n = ports.len();
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), n);
        }
    }
}
