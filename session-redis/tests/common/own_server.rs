//! A private `redis-server` child process on a port of the test's own, for the tests
//! that stop, pause, kill or reconfigure a server (never the shared ones).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Server;

/// A `redis-server` child on `port` with extra arguments; killed when dropped.
pub struct OwnServer {
    port: u16,
    extra: Vec<String>,
    child: Option<Child>,
}

impl OwnServer {
    /// Starts one. `None` (the test skips) without the standalone variable — the
    /// machine has no Redis for the tests — or without `redis-server` on the PATH.
    pub fn start(port: u16, extra: &[&str]) -> Option<Self> {
        Server::Standalone.urls()?;
        let mut s = Self {
            port,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        if !s.spawn() {
            println!("skipped: redis-server is not on the PATH");
            return None;
        }
        Some(s)
    }

    /// Starts the process (again, after [`kill`](Self::kill)) and waits until it
    /// accepts connections; `false` if `redis-server` cannot be run.
    pub fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A raw connection to it, for inspection.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        super::raw_standalone(&self.url()).await
    }

    /// SIGKILLs the process (resuming it first, should it be stopped).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` (`"-STOP"`, `"-CONT"`, …) to the running process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}
