//! The test server. With `CAAS_TEST_MONGODB_URI` set, tests use that server (a real
//! mongod). Otherwise the first test to ask starts SecantusDB on a free port (installing
//! it into `.venv` if needed) and every test in the binary shares it. A small shell
//! watchdog stops the server when the test process exits, however it exits.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mongodb::options::ClientOptions;
use mongodb::Client;

static URI: OnceLock<String> = OnceLock::new();

/// The connection string of the test server, starting it on first use.
pub fn uri() -> String {
    URI.get_or_init(|| match std::env::var("CAAS_TEST_MONGODB_URI") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => start_secantus(),
    })
    .clone()
}

/// A client for the test server. A new one per call: each test may run in its own runtime.
pub async fn client() -> Client {
    let mut opts = ClientOptions::parse(uri()).await.expect("test uri parses");
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    Client::with_options(opts).expect("client")
}

static AUTH_URI: OnceLock<String> = OnceLock::new();

/// A server with authentication on, and a root user: `CAAS_TEST_MONGODB_AUTH_URI` (with
/// root credentials), or a second SecantusDB started with `--auth`.
pub fn auth_uri() -> String {
    AUTH_URI
        .get_or_init(|| match std::env::var("CAAS_TEST_MONGODB_AUTH_URI") {
            Ok(u) if !u.trim().is_empty() => u,
            _ => start_secantus_with_auth(),
        })
        .clone()
}

fn python() -> std::path::PathBuf {
    let root = super::root();
    let status = Command::new(root.join("scripts/install-test-server.sh"))
        .status()
        .expect("run scripts/install-test-server.sh");
    assert!(
        status.success(),
        "installing SecantusDB failed; see the output above"
    );
    let venv = std::env::var("CAAS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv"));
    venv.join("bin/python")
}

fn wait_for_port(port: u16, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "SecantusDB did not listen on port {port} within 60 s; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SecantusDB has no localhost exception: create the root user on a storage folder without
/// `--auth`, stop the server, and start it again on the same folder with `--auth`.
fn start_secantus_with_auth() -> String {
    let python = python();
    let dir = std::env::temp_dir().join(format!("caas-test-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("auth storage dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let log = dir.join("server.log");
    let mut boot = Command::new(&python)
        .args([
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--storage-path",
        ])
        .arg(dir.join("data"))
        .args(["--log-level", "WARNING"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start SecantusDB for bootstrap");
    wait_for_port(port, &log);
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
            let c = Client::with_uri_str(&uri).await.expect("client");
            c.database("admin")
                .run_command(bson::doc! { "createUser": "root", "pwd": "root-pw", "roles": ["root"], "mechanisms": ["SCRAM-SHA-256"] })
                .await
                .expect("create the root user");
        })
    })
    .join()
    .expect("bootstrap thread");
    let _ = Command::new("kill")
        .args(["-TERM", &boot.id().to_string()])
        .status();
    let _ = boot.wait();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let script = format!(
        "'{py}' -m secantus --host 127.0.0.1 --port {port} --storage-path '{data}' --auth --log-level WARNING >'{log}' 2>&1 & s=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.5; done; kill $s 2>/dev/null; rm -rf '{dir}'",
        py = python.display(),
        data = dir.join("data").display(),
        log = log.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    // The watchdog outlives this call by design, so it is not waited on.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start SecantusDB --auth");
    wait_for_port(port, &log);
    format!("mongodb://root:root-pw@127.0.0.1:{port}/?directConnection=true&authSource=admin")
}

fn start_secantus() -> String {
    let root = super::root();
    let status = Command::new(root.join("scripts/install-test-server.sh"))
        .status()
        .expect("run scripts/install-test-server.sh");
    assert!(
        status.success(),
        "installing SecantusDB failed; see the output above"
    );
    let venv = std::env::var("CAAS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv"));
    let python = venv.join("bin/python");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let log = std::env::temp_dir().join(format!("caas-test-secantus-{port}.log"));
    // Test commands: `configureFailPoint` cuts a command off where a test needs it.
    let script = format!(
        "'{py}' -m secantus --host 127.0.0.1 --port {port} --storage-path :memory: --enable-test-commands --log-level WARNING >'{log}' 2>&1 & s=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.5; done; kill $s 2>/dev/null",
        py = python.display(),
        log = log.display(),
        parent = std::process::id(),
    );
    // The watchdog outlives this call by design (it stops the server when we exit), so it is
    // not waited on.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start SecantusDB");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "SecantusDB did not listen on port {port} within 60 s; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("mongodb://127.0.0.1:{port}/?directConnection=true")
}

/// A SecantusDB of one test's own, on a storage folder, that the test can stop and start
/// (to fail the server in the middle of a run). Always SecantusDB, even with
/// `CAAS_TEST_MONGODB_URI` set: a shared mongod cannot be stopped by a test.
pub struct PrivateServer {
    pub port: u16,
    storage: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl PrivateServer {
    pub fn start() -> PrivateServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let mut s = PrivateServer {
            port,
            storage: tempfile::tempdir().expect("storage"),
            child: None,
        };
        s.restart();
        s
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Stop the server the way an operator would (SIGTERM) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self) {
        let log = self.storage.path().join("server.log");
        let child = Command::new(python())
            .args([
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--storage-path",
            ])
            .arg(self.storage.path().join("data"))
            .args(["--log-level", "WARNING"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .spawn()
            .expect("start a private SecantusDB");
        self.child = Some(child);
        wait_for_port(self.port, &log);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
