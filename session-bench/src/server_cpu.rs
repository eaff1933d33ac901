//! The CPU time a database server on this machine spends, read from `/proc`.
//!
//! PostgreSQL and MariaDB report no CPU counter of their own (Redis has `INFO cpu`),
//! but on loopback the server is a local process: the one listening on the URL's
//! port, plus its children (PostgreSQL serves each connection from a child process;
//! MariaDB from threads of the one process). The on-CPU time of each of their threads,
//! taken before and after a run, gives the server's CPU per operation. Other users of
//! the same server add to it, as they do to Redis's figure.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::backends::RunFn;
use crate::harness::{Op, ServerStats};
use crate::procfs;

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

    /// Nanoseconds on CPU so far of every thread of the listener and its children.
    pub fn snapshot(&self) -> CpuSnapshot {
        let mut threads = HashMap::new();
        add_threads(self.listener, &mut threads);
        for pid in pids() {
            if parent(pid) == Some(self.listener) {
                add_threads(pid, &mut threads);
            }
        }
        CpuSnapshot(threads)
    }
}

/// On-CPU nanoseconds per thread id at one instant.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot(HashMap<u32, u64>);

impl CpuSnapshot {
    /// CPU spent since `before`: per thread alive now, what it spent since then (all
    /// of it for a thread that started since). A thread that ended in between is
    /// missing from both ends rather than subtracted, so the figure can only be low
    /// by the window's share of an exiting thread, never go negative.
    pub fn since(&self, before: &CpuSnapshot) -> u64 {
        self.0
            .iter()
            .map(|(tid, now)| now.saturating_sub(before.0.get(tid).copied().unwrap_or(0)))
            .sum()
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
            let before = server.snapshot();
            let mut sample = run(op, spec, seed).await?;
            let spent = server.snapshot().since(&before);
            sample.server = Some(ServerStats {
                cpu_us: spent as f64 / 1e3 / sample.total_ops.max(1) as f64,
                commands: None,
            });
            Ok(sample)
        })
    })
}

/// The port of a `scheme://user:password@host:port/db?…` URL whose host is this
/// machine (`127.0.0.1`, `localhost`, `[::1]`); `None` for any other host, whose
/// server this machine's `/proc` cannot see.
pub fn local_url_port(url: &str) -> Option<u16> {
    let authority = url.split_once("://")?.1.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = host_port.rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        .then(|| port.parse().ok())
        .flatten()
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

/// The parent pid, from `/proc/<pid>/stat`.
fn parent(pid: u32) -> Option<u32> {
    procfs::stat_fields(Path::new(&format!("/proc/{pid}/stat")))?
        .get(1)?
        .parse()
        .ok()
}

/// Adds the on-CPU nanoseconds of every thread of `pid` to `threads`.
fn add_threads(pid: u32, threads: &mut HashMap<u32, u64>) {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        if let Some(ns) = thread_cpu_ns(&task.path()) {
            threads.insert(tid, ns);
        }
    }
}

/// A thread's on-CPU nanoseconds: `schedstat`'s first field, or — on kernels without
/// scheduler statistics — `utime + stime` from `stat` (clock ticks of 10 ms; coarse,
/// but a run spans hundreds of ticks).
fn thread_cpu_ns(task: &Path) -> Option<u64> {
    if let Ok(s) = fs::read_to_string(task.join("schedstat")) {
        return s.split_whitespace().next()?.parse().ok();
    }
    let ticks = procfs::cpu_ticks(&procfs::stat_fields(&task.join("stat"))?)?;
    Some(ticks * (1_000_000_000 / procfs::TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_local_urls_only() {
        assert_eq!(
            local_url_port("postgres://sess:sess@127.0.0.1:15432/sess"),
            Some(15432)
        );
        assert_eq!(
            local_url_port("mysql://u:p@x@localhost:13306/db?ssl-mode=disabled"),
            Some(13306)
        );
        assert_eq!(local_url_port("mysql://[::1]:3306"), Some(3306));
        assert_eq!(local_url_port("mysql://db.example:3306/db"), None);
        assert_eq!(local_url_port("mysql://127.0.0.1/db"), None);
        assert_eq!(local_url_port("not a url"), None);
    }

    #[test]
    fn a_thread_that_ended_is_not_subtracted() {
        let before = CpuSnapshot(HashMap::from([(1, 500), (2, 9_000)]));
        // Thread 2 ended, thread 3 started.
        let after = CpuSnapshot(HashMap::from([(1, 800), (3, 50)]));
        assert_eq!(after.since(&before), 300 + 50);
    }

    #[test]
    fn finds_a_listener_of_this_process_and_counts_its_cpu() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = ServerProcesses::find(port).expect("this process listens there");
        assert_eq!(found.listener, std::process::id());
        let before = found.snapshot();
        let mut x = 0u64;
        for i in 0..100_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(found.snapshot().since(&before) > 0, "{x}");
        drop(listener);
        assert!(ServerProcesses::find(port).is_none());
    }
}
