//! The socket scanner: connections between local processes that no proxy
//! carried.
//!
//! Proxies report what they carry; a process that calls another's app port
//! directly bypasses them, and only the kernel knows. The scanner reads the
//! kernel's socket tables (`/proc/net/tcp` and `tcp6`), keeps established
//! connections to a registered workload's app port, finds the process that
//! owns the client end (`/proc/<pid>/fd`), and walks up its parents to a
//! registered workload. Such calls are marked as seen by a socket scan.
//!
//! Parsing is pure ([`parse_table`]); [`HostScanner`] does the reading, from
//! a configurable root so that tests can give it a fake `/proc`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ibac_model::WorkloadId;

use crate::calls::{CallKey, Observation, Source};

/// TCP states as the kernel numbers them.
const ESTABLISHED: u8 = 0x01;

/// One row of a socket table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketRow {
    /// This end.
    pub local: SocketAddr,
    /// The other end.
    pub remote: SocketAddr,
    /// The TCP state.
    pub state: u8,
    /// The owner's uid.
    pub uid: u32,
    /// The socket's inode, which links it to a process's file descriptors.
    pub inode: u64,
}

fn parse_v4(hex: &str) -> Option<Ipv4Addr> {
    if hex.len() != 8 {
        return None;
    }
    let word = u32::from_str_radix(hex, 16).ok()?;
    // The kernel prints the address as it lies in memory, one 32-bit word
    // in host byte order.
    Some(Ipv4Addr::from(word.to_ne_bytes()))
}

fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..4 {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(parse_v4(ip)?),
        32 => {
            let v6 = parse_v6(ip)?;
            // An IPv4 peer of a dual-stack socket.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6`. Rows that do not parse are
/// skipped: the format is the kernel's, and a scanner must not stop on a
/// column it does not know.
pub fn parse_table(text: &str) -> Vec<SocketRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            Some(SocketRow {
                local: parse_addr(f[1])?,
                remote: parse_addr(f[2])?,
                state: u8::from_str_radix(f[3], 16).ok()?,
                uid: f[7].parse().ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// What the scanner needs to know about registered workloads.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// App ports on this host: port → the workload and the port intents name.
    pub app_ports: HashMap<u16, (WorkloadId, u16)>,
    /// Processes started for a workload (its app and its proxy).
    pub pids: HashMap<u32, WorkloadId>,
}

/// Reads the host's socket tables and processes.
#[derive(Debug)]
pub struct HostScanner {
    proc_root: PathBuf,
    seen: HashSet<(SocketAddr, SocketAddr)>,
}

impl Default for HostScanner {
    fn default() -> Self {
        HostScanner::new("/proc")
    }
}

impl HostScanner {
    /// A scanner of the `/proc` at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostScanner {
            proc_root: root.into(),
            seen: HashSet::new(),
        }
    }

    /// One scan at `now` (unix seconds). A connection counts once, when first
    /// seen; while it stays open, later scans only move its last-seen time.
    pub fn scan(&mut self, registry: &Registry, now: i64) -> std::io::Result<Vec<Observation>> {
        let mut rows = Vec::new();
        for table in ["net/tcp", "net/tcp6"] {
            match std::fs::read_to_string(self.proc_root.join(table)) {
                Ok(text) => rows.extend(parse_table(&text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let candidates: Vec<&SocketRow> = rows
            .iter()
            .filter(|r| {
                r.state == ESTABLISHED
                    && r.remote.ip().is_loopback()
                    && registry.app_ports.contains_key(&r.remote.port())
            })
            .collect();
        let wanted: HashSet<u64> = candidates.iter().map(|r| r.inode).collect();
        let owners = if wanted.is_empty() {
            HashMap::new()
        } else {
            socket_owners(&self.proc_root, &wanted)
        };
        let mut live = HashSet::new();
        let mut out = Vec::new();
        for row in candidates {
            let Some((server, port)) = registry.app_ports.get(&row.remote.port()) else {
                continue;
            };
            let Some(client) = owners
                .get(&row.inode)
                .and_then(|pid| workload_of(&self.proc_root, *pid, &registry.pids))
            else {
                continue;
            };
            if &client == server {
                continue; // a workload's own proxy talking to its app
            }
            let conn = (row.local, row.remote);
            let new = !self.seen.contains(&conn);
            live.insert(conn);
            out.push(Observation {
                key: CallKey::tcp(client, server.clone(), *port),
                verdict: None,
                count: u64::from(new),
                first_seen: now,
                last_seen: now,
                source: Source::SocketScan,
            });
        }
        self.seen = live;
        Ok(out)
    }
}

/// Which process holds each of the `wanted` socket inodes.
fn socket_owners(root: &Path, wanted: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    let Ok(procs) = std::fs::read_dir(root) else {
        return owners;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // gone, or not ours to read
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(inode) = inode
                && wanted.contains(&inode)
            {
                owners.insert(inode, pid);
            }
        }
        if owners.len() == wanted.len() {
            break;
        }
    }
    owners
}

/// The parent of a process, from `/proc/<pid>/stat` (the field after the
/// command name, which may itself hold spaces and parentheses).
fn parent_of(root: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(root.join(pid.to_string()).join("stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The registered workload a process belongs to: its own, or its nearest
/// registered ancestor's.
fn workload_of(root: &Path, pid: u32, pids: &HashMap<u32, WorkloadId>) -> Option<WorkloadId> {
    let mut current = pid;
    for _ in 0..64 {
        if let Some(w) = pids.get(&current) {
            return Some(w.clone());
        }
        current = parent_of(root, current)?;
        if current <= 1 {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2222 1 0000000000000000 20 4 30 10 -1
   2: garbage
";

    #[test]
    fn rows_parse_with_addresses_in_host_order() {
        let rows = parse_table(TCP);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(rows[0].state, 0x0A);
        assert_eq!(rows[1].remote, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(rows[1].local.port(), 0xA2C4);
        assert_eq!((rows[1].uid, rows[1].inode), (1000, 2222));
    }

    #[test]
    fn ipv6_rows_parse_and_mapped_ipv4_peers_read_as_ipv4() {
        let text = "header\n   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:C000 01 0:0 0:0 0 7 0 99 1\n";
        let rows = parse_table(text);
        assert_eq!(rows[0].local, "[::1]:8080".parse().unwrap());
        assert_eq!(rows[0].remote, "127.0.0.1:49152".parse().unwrap());
    }

    #[test]
    fn hostile_rows_are_skipped() {
        let text = "h\n 0: 0100007F:FFFFF 0:0 01 0 0 0 0 0 1\n 1: ZZ:1 0:0\n 2: \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}:0 0:0 01 0 0 0 0 0 1\n";
        assert!(parse_table(text).is_empty());
    }

    /// A fake `/proc`: the server's app on 8080, a client process (a child of
    /// the registered pid 100) holding socket 2222.
    fn fake_proc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("net")).unwrap();
        std::fs::write(root.join("net/tcp"), TCP).unwrap();
        for (pid, ppid) in [(100u32, 1u32), (101, 100)] {
            let p = root.join(pid.to_string());
            std::fs::create_dir_all(p.join("fd")).unwrap();
            std::fs::write(
                p.join("stat"),
                format!("{pid} (a (weird) name) S {ppid} 0 0"),
            )
            .unwrap();
        }
        std::os::unix::fs::symlink("socket:[2222]", root.join("101/fd/3")).unwrap();
        dir
    }

    fn registry() -> Registry {
        let w = |s: &str| WorkloadId::parse(s).unwrap();
        Registry {
            app_ports: [(8080, (w("api.shop"), 80))].into(),
            pids: [(100, w("web.shop"))].into(),
        }
    }

    #[test]
    fn connections_to_app_ports_are_attributed_through_parent_processes() {
        let proc_root = fake_proc();
        let mut scanner = HostScanner::new(proc_root.path());
        let found = scanner.scan(&registry(), 10).unwrap();
        assert_eq!(found.len(), 1);
        let o = &found[0];
        assert_eq!(
            (o.key.client.as_str(), o.key.server.as_str(), o.key.port),
            ("web.shop", "api.shop", 80)
        );
        assert_eq!(
            (o.count, o.source, o.verdict),
            (1, Source::SocketScan, None)
        );
        // Still open at the next scan: seen again, not counted again.
        let again = scanner.scan(&registry(), 20).unwrap();
        assert_eq!((again[0].count, again[0].last_seen), (0, 20));
    }

    #[test]
    fn a_workloads_own_processes_are_not_calls() {
        let proc_root = fake_proc();
        let mut reg = registry();
        reg.pids.insert(100, WorkloadId::parse("api.shop").unwrap());
        assert!(
            HostScanner::new(proc_root.path())
                .scan(&reg, 0)
                .unwrap()
                .is_empty()
        );
    }

    /// The real kernel: this test process connects to a listener it opened,
    /// and the scan of the real `/proc` finds it.
    #[test]
    fn a_real_connection_is_found_in_the_real_proc() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _server = listener.accept().unwrap();
        let w = |s: &str| WorkloadId::parse(s).unwrap();
        let registry = Registry {
            app_ports: [(port, (w("api.shop"), port))].into(),
            pids: [(std::process::id(), w("web.shop"))].into(),
        };
        let found = HostScanner::default().scan(&registry, 0).unwrap();
        assert!(
            found
                .iter()
                .any(|o| o.key.client.as_str() == "web.shop" && o.count == 1),
            "{found:?}"
        );
    }
}
