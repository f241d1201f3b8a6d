//! Starting the components so that they never outlive the test run.
//!
//! Every component runs in one process group whose leader is a small shell
//! watchdog. The watchdog polls the *owner* (the test process, or under
//! cargo-nextest the nextest runner, since nextest runs each test in a process
//! of its own) and, once the owner is gone, stops the group and removes the
//! data directory. A panic, an abort or a SIGKILL of the owner all end the same
//! way, and a test that times out under nextest does not take the shared
//! control plane down with it.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

const WATCHDOG: &str = r#"
trap '' TERM INT HUP
while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -TERM -- -$$ 2>/dev/null
sleep 2
rm -rf -- "$2"
kill -KILL -- -$$
"#;

/// The process group the components run in, led by the watchdog.
pub(crate) struct Group {
    leader: i32,
}

impl Group {
    /// Starts the watchdog for `owner`; it removes `dir` when it stops the group.
    pub(crate) fn start(owner: u32, dir: &Path) -> Result<Group, Error> {
        // bash, not sh: dash's `kill` cannot signal a process group.
        let child = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("ibac-k8s-watchdog")
            .arg(owner.to_string())
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(Error::io("cannot start the watchdog shell `bash`"))?;
        // A pid always fits; 0 would only give the component a group of its own.
        let leader = i32::try_from(child.id()).unwrap_or(0);
        Ok(Group { leader })
    }

    /// Starts `program` in the group with stdin closed and its output in `log`.
    /// Its output never goes to the test's own stdout or stderr, which nextest
    /// waits on.
    pub(crate) fn spawn(
        &self,
        component: &'static str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Component, Error> {
        let out =
            File::create(log).map_err(Error::io(format!("cannot create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("cannot open {}", log.display())))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(self.leader)
            .spawn()
            .map_err(Error::io(format!("cannot start {}", program.display())))?;
        Ok(Component {
            name: component,
            child,
            log: log.to_owned(),
        })
    }
}

/// One running component.
pub(crate) struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Component {
    /// Fails if the component has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                component: self.name,
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail(&self.log),
            }),
            Err(e) => Err(Error::Io {
                what: format!("cannot check on {}", self.name),
                source: e,
            }),
        }
    }

    /// Polls `ready` until it holds, failing early if the component exits.
    pub(crate) fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> Result<(), String>,
    ) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            self.check_running()?;
            let last = match ready() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!("{} is ready", self.name),
                    after: timeout,
                    context: format!(
                        "; last answer: {last}; the end of {}:\n{}",
                        self.log.display(),
                        tail(&self.log)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(Error::io("cannot find a free port on 127.0.0.1"))?;
    let port = listener
        .local_addr()
        .map_err(Error::io("cannot find a free port on 127.0.0.1"))?
        .port();
    Ok(port)
}

/// A plain-HTTP GET on 127.0.0.1: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
