//! The CPU time a database server on this machine spends, read from `/proc`.
//!
//! PostgreSQL and MariaDB report no CPU counter of their own (Redis has `INFO cpu`),
//! but on loopback the server is a local process: the one listening on the URL's
//! port, plus its children (PostgreSQL serves each connection from a child process;
//! MariaDB from threads of the one process). Summing their threads' on-CPU time
//! before and after a run gives the server's CPU per operation. Other users of the
//! same server add to it, as they do to Redis's figure.

use std::fs;
use std::sync::Arc;

use crate::backends::RunFn;
use crate::harness::{Op, ServerStats};

/// The processes of a server listening on a local TCP port.
#[derive(Debug, Clone, Copy)]
pub struct ServerProcesses {
    listener: u32,
}

impl ServerProcesses {
    /// The server listening on 127.0.0.1 / `::` / 0.0.0.0 `port`, if this process
    /// can see it (the same user or root); `None` otherwise, and the report then
    /// leaves the server's CPU out.
    pub fn find(port: u16) -> Option<Self> {
        let inodes = listening_inodes(port);
        if inodes.is_empty() {
            return None;
        }
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        pids().into_iter().find_map(|pid| {
            let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
            fds.flatten()
                .filter_map(|fd| fs::read_link(fd.path()).ok())
                .any(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
                .then_some(Self { listener: pid })
        })
    }

    /// Nanoseconds on CPU so far of the listener and its children, all threads.
    /// Threads and processes that exited are no longer counted, so only differences
    /// over a window in which the server's connections stay open mean anything.
    pub fn cpu_ns(&self) -> u64 {
        let mut total = process_cpu_ns(self.listener);
        for pid in pids() {
            if parent(pid) == Some(self.listener) {
                total += process_cpu_ns(pid);
            }
        }
        total
    }
}

/// Wraps `run` so every run but a create (whose cleanup would count) also reports
/// the server's CPU per operation.
pub fn probed(run: RunFn, server: ServerProcesses) -> RunFn {
    Arc::new(move |op, spec, seed| {
        let run = run.clone();
        Box::pin(async move {
            if op == Op::Create {
                return run(op, spec, seed).await;
            }
            let before = server.cpu_ns();
            let mut sample = run(op, spec, seed).await?;
            let spent = server.cpu_ns().saturating_sub(before);
            sample.server = Some(ServerStats {
                cpu_us: spent as f64 / 1e3 / sample.total_ops.max(1) as f64,
                commands: None,
            });
            Ok(sample)
        })
    })
}

/// The port of a `scheme://user:password@host:port/db?…` URL.
pub fn url_port(url: &str) -> Option<u16> {
    let authority = url.split_once("://")?.1.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// Socket inodes in state LISTEN on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listening = *state == "0A";
            let on_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if let (true, true, Ok(inode)) = (listening, on_port, inode.parse()) {
                inodes.push(inode);
            }
        }
    }
    inodes
}

fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The parent pid, from `/proc/<pid>/stat` (the field after the parenthesised name,
/// which may itself hold spaces and parentheses).
fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// On-CPU nanoseconds of every thread of `pid` (`schedstat`'s first field).
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let s = fs::read_to_string(t.path().join("schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_authority() {
        assert_eq!(
            url_port("postgres://sess:sess@127.0.0.1:15432/sess"),
            Some(15432)
        );
        assert_eq!(
            url_port("mysql://u:p@x@127.0.0.1:13306/db?ssl-mode=disabled"),
            Some(13306)
        );
        assert_eq!(url_port("mysql://127.0.0.1:3306"), Some(3306));
        assert_eq!(url_port("mysql://127.0.0.1/db"), None);
        assert_eq!(url_port("not a url"), None);
    }

    #[test]
    fn finds_a_listener_of_this_process_and_counts_its_cpu() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = ServerProcesses::find(port).expect("this process listens there");
        assert_eq!(found.listener, std::process::id());
        let before = found.cpu_ns();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(found.cpu_ns() > before, "{x}");
        drop(listener);
        assert!(ServerProcesses::find(port).is_none());
    }
}
