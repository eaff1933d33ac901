//! A private Redis Cluster of [`OwnServer`] masters (no replicas), for the tests that
//! move slots or lose a master — never the shared cluster.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::ConnectionLike;

use super::OwnServer;

/// The masters, in port order, and their node ids.
pub struct OwnCluster {
    pub nodes: Vec<OwnServer>,
    pub ids: Vec<String>,
    dir: PathBuf,
}

impl OwnCluster {
    /// Masters on `ports` (each also listens on port + 10000), the 16384 slots split
    /// evenly in port order, a node timeout of 1 s; returns once every node reports
    /// `cluster_state:ok`. `None` (the test skips) as for [`OwnServer::start`].
    pub async fn start(name: &str, ports: &[u16]) -> Option<Self> {
        Self::start_with(name, ports, |_| Vec::new(), |port| port).await
    }

    /// [`start`](Self::start), each node also given the arguments `extra(port)`, and
    /// known to the others by the port `cluster_port(port)` (with `tls-cluster yes`,
    /// its TLS port: the cluster bus listens on that port + 10000).
    pub async fn start_with(
        name: &str,
        ports: &[u16],
        extra: impl Fn(u16) -> Vec<String>,
        cluster_port: impl Fn(u16) -> u16,
    ) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("sr-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        for &port in ports {
            let conf = dir.join(format!("nodes-{port}.conf"));
            let _ = std::fs::remove_file(&conf);
            let mut args = vec![
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-node-timeout".to_owned(),
                "1000".to_owned(),
                "--cluster-config-file".to_owned(),
                conf.to_str().unwrap().to_owned(),
            ];
            args.extend(extra(port));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            nodes.push(OwnServer::start(port, &args)?);
        }
        let mut cluster = Self {
            nodes,
            ids: Vec::new(),
            dir,
        };
        for i in 0..ports.len() {
            let mut con = cluster.nodes[i].raw().await;
            let range = cluster.slots_of(i);
            let mut add = redis::cmd("CLUSTER");
            add.arg("ADDSLOTSRANGE").arg(range.start()).arg(range.end());
            query(&mut con, &add).await;
            if i > 0 {
                let mut meet = redis::cmd("CLUSTER");
                meet.arg("MEET")
                    .arg("127.0.0.1")
                    .arg(cluster_port(ports[0]));
                query(&mut con, &meet).await;
            }
            let id = string(query(&mut con, redis::cmd("CLUSTER").arg("MYID")).await);
            cluster.ids.push(id);
        }
        let all: Vec<usize> = (0..ports.len()).collect();
        cluster
            .wait_state(&all, "ok", Duration::from_secs(20))
            .await;
        Some(cluster)
    }

    /// The slots node `i` was given.
    pub fn slots_of(&self, i: usize) -> RangeInclusive<u16> {
        let n = self.nodes.len();
        let start = 16384 * i / n;
        let end = 16384 * (i + 1) / n - 1;
        (start as u16)..=(end as u16)
    }

    /// The node owning `slot`, as assigned at the start.
    pub fn owner(&self, slot: u16) -> usize {
        (0..self.nodes.len())
            .find(|&i| self.slots_of(i).contains(&slot))
            .unwrap()
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(OwnServer::url).collect()
    }

    /// Waits until each node in `nodes` reports `cluster_state:<state>` and knows every
    /// node; panics after `within`.
    pub async fn wait_state(&self, nodes: &[usize], state: &str, within: Duration) {
        let give_up = Instant::now() + within;
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        let known = self.nodes.len().to_string();
        for &i in nodes {
            let mut con = self.nodes[i].raw().await;
            while info_field(&mut con, &info, "cluster_state").await != state
                || info_field(&mut con, &info, "cluster_known_nodes").await != known
            {
                assert!(
                    Instant::now() < give_up,
                    "node {} did not reach cluster_state:{state}",
                    self.nodes[i].port()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster slot of `key` (`CLUSTER KEYSLOT`, asked of any node).
pub async fn keyslot(con: &mut impl ConnectionLike, key: &str) -> u16 {
    match query(con, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await {
        Value::Int(s) => u16::try_from(s).unwrap(),
        other => panic!("CLUSTER KEYSLOT: {other:?}"),
    }
}

/// Sends one raw command; panics on an error reply.
pub async fn query(con: &mut impl ConnectionLike, cmd: &redis::Cmd) -> Value {
    con.req_packed_command(cmd).await.expect("raw command")
}

/// Field `name` of an `INFO`-style reply to `cmd` (e.g. `cluster_state` of
/// `CLUSTER INFO`), or "" when absent.
pub async fn info_field(con: &mut impl ConnectionLike, cmd: &redis::Cmd, name: &str) -> String {
    let text = string(query(con, cmd).await);
    let prefix = format!("{name}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// A string reply as a `String`; panics on anything else.
pub fn string(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        Value::SimpleString(s) => s,
        Value::VerbatimString { text, .. } => text,
        other => panic!("not a string: {other:?}"),
    }
}
