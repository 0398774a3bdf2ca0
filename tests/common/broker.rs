//! A broker of the test's own that can be stopped and started again on the
//! same data directory and port, for the broker half of the fault matrix
//! (issue 9): "broker restarted during backup / restore", "broker refuses
//! connections for a while".
//!
//! Why not a TCP proxy in front of the broker: a Kafka client connects to the
//! bootstrap address once, then to the addresses the metadata answer
//! advertises, and noida-db advertises the address it binds (`--host`,
//! `--kafka-port`; it has no advertised-listener setting). A proxy would only
//! see the bootstrap connection. Stopping the broker itself (`noida-db down`,
//! which saves its state, then `up` on the same directory and port) drops
//! every connection and refuses new ones until it is back.
//!
//! The broker of the test ground is shared by every test running at the
//! same time, so it is never restarted: each test that needs outages starts
//! its own here (about 0.1 s), exactly as `scripts/services` starts the
//! shared one.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A private noida-db broker; stopped and deleted when dropped.
pub struct Broker {
    /// `127.0.0.1:<port>`, unchanged across restarts.
    pub bootstrap: String,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// `noida-db`, beside the Python of the test ground's virtualenv (`KB_PYTHON`).
fn noida_bin() -> PathBuf {
    let python = PathBuf::from(super::ground("KB_PYTHON"));
    let bin = python.with_file_name("noida-db");
    assert!(
        bin.exists(),
        "`{}` is missing: run scripts/setup --tests",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    /// Starts a fresh broker on a free port.
    pub fn start() -> Self {
        let port = free_port();
        let broker = Self {
            port,
            bootstrap: format!("127.0.0.1:{port}"),
            dir: tempfile::tempdir().unwrap(),
            bin: noida_bin(),
        };
        broker.up();
        broker
    }

    /// The data directory (noida-db keeps the broker's state in `kafka.json` there).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn noida(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .args(args)
            .args(["--data-dir", self.dir.path().to_str().unwrap()])
            .output()
            .unwrap_or_else(|e| panic!("running `{}`: {e}", self.bin.display()))
    }

    /// Starts the broker on its data directory and port; returns once the
    /// port accepts connections.
    pub fn up(&self) {
        let port = self.port.to_string();
        // the port may linger for a moment after `down`
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.noida(&[
                "up",
                "--only",
                "kafka",
                "--host",
                "127.0.0.1",
                "--kafka-port",
                &port,
            ]);
            if out.status.success() && self.answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not come up on {}:\n{}{}",
                self.bootstrap,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the broker (its state is saved): every connection drops, new
    /// ones are refused until [`Self::up`].
    pub fn down(&self) {
        let out = self.noida(&["down"]);
        assert!(
            out.status.success(),
            "stopping the broker: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.answers() {
            assert!(Instant::now() < deadline, "the broker does not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Self::down`], `outage`, then [`Self::up`].
    pub fn restart(&self, outage: Duration) {
        self.down();
        std::thread::sleep(outage);
        self.up();
    }

    /// Whether the port accepts a connection.
    pub fn answers(&self) -> bool {
        std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", self.port).parse().unwrap(),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    /// A client configuration for this broker.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c.set("receive.message.max.bytes", "2147483647");
        c
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.noida(&["down"]);
    }
}
