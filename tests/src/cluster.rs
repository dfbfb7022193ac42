//! A cluster of real `holdfast` processes, each with its own data directory and ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// How long a node may take to start answering, or a cluster to elect a leader.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request timeout of the test client; requests to a dead node fail fast.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One node process and its addresses.
pub struct NodeHandle {
    /// The node's Raft id (`--id`): 1, 2, ... in the order the cluster made the nodes.
    pub id: u64,
    /// The HTTP API's `127.0.0.1:port`.
    pub http_addr: String,
    /// The peer address the other nodes dial (a delay proxy's, with
    /// [`Launch::peer_delay`]).
    pub raft_addr: String,
    /// The peer address the node listens on.
    pub listen_raft_addr: String,
    /// The node's `--data-dir`, `node-<id>`. Its log sits beside it as `node-<id>.log`
    /// (and with peer TLS its certificate and key as `node-<id>.crt` and `.key`).
    pub data_dir: PathBuf,
    /// `--region`, and the region it is a member in.
    pub region: String,
    child: Option<Child>,
}

impl NodeHandle {
    /// The URL of `path` (which starts with `/`) on the node's HTTP API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http_addr, path)
    }

    /// Whether this harness started the process and has not seen it end (a process that
    /// crashed on its own counts as running until [`ProcessCluster::exit_status`] sees it).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn member_json(&self) -> Value {
        json!({"id": self.id, "raft_addr": self.raft_addr, "http_addr": self.http_addr, "region": self.region})
    }
}

/// An HTTP answer: status, the headers the tests look at, and the JSON body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body parsed as JSON; `Value::Null` when it was empty or not JSON.
    pub body: Value,
    /// Every header of the answer.
    pub headers: reqwest::header::HeaderMap,
}

impl Response {
    /// The error code of an error answer, or `""`.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The value of header `name` (case-insensitive), if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The node's applied index when it answered (`X-Holdfast-Applied-Index`), if given.
    pub fn applied_index(&self) -> Option<u64> {
        self.header("x-holdfast-applied-index")
            .and_then(|value| value.parse().ok())
    }
}

/// Real processes on 127.0.0.1. Dropping the cluster kills every process it started.
pub struct ProcessCluster {
    /// Every node ever made, running or not; a node's index here is its *position*, which
    /// the methods take (node id = position + 1).
    pub nodes: Vec<NodeHandle>,
    /// The HTTP client of the helpers: a 15 s timeout per request.
    pub client: reqwest::Client,
    root: tempfile::TempDir,
    binary: PathBuf,
    next_id: u64,
    launch: Launch,
    /// The cluster's throwaway CA, when the nodes run peer TLS.
    ca: Option<TestCa>,
    /// Delay proxies in front of the peer ports ([`Launch::peer_delay`]).
    proxies: Vec<crate::delay::DelayProxy>,
}

/// How node processes are started.
#[derive(Clone, Debug)]
pub struct Launch {
    /// `RUST_LOG` of the nodes.
    pub log_filter: String,
    /// Turns the test-only fault switch (`/debug/faults`) on.
    pub test_faults: bool,
    /// More environment for every node (`HOLDFAST_*` settings).
    pub env: Vec<(String, String)>,
    /// Where the data directories go (a temporary directory inside it).
    pub root_in: Option<PathBuf>,
    /// Mutual TLS on the peer ports, with a CA made for this cluster (on by default, as
    /// a cluster should run).
    pub peer_tls: bool,
    /// Node `id`'s region is `regions[id - 1]` (`local` beyond the list).
    pub regions: Vec<String>,
    /// A delay proxy in front of every node's peer port, delaying each direction by the
    /// first duration plus up to the second (see [`crate::delay`]).
    pub peer_delay: Option<(Duration, Duration)>,
    /// More environment for one node: `(node id, name, value)`.
    pub node_env: Vec<(u64, String, String)>,
    /// The host name in the Raft addresses nodes advertise (`127.0.0.1` when `None`), so
    /// that peers dial a name, as pods dial their DNS names.
    pub advertise_host: Option<String>,
}

impl Default for Launch {
    /// What the black-box tests use: info logs, the fault switch on, a fast expiry check.
    fn default() -> Self {
        Launch {
            log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            test_faults: true,
            env: vec![("HOLDFAST_EXPIRY_CHECK_INTERVAL_MS".into(), "200".into())],
            root_in: None,
            peer_tls: true,
            regions: Vec::new(),
            peer_delay: None,
            node_env: Vec::new(),
            advertise_host: None,
        }
    }
}

/// The `holdfast` binary: `HOLDFAST_BIN`, else the one in the test executable's target
/// directory, brought up to date with cargo once per test process (so a test never runs
/// a stale node).
pub fn holdfast_binary() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_holdfast().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(|error| anyhow!(error))
}

fn build_holdfast() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("HOLDFAST_BIN") {
        return Ok(PathBuf::from(path));
    }
    let executable = std::env::current_exe()?;
    // A binary of this crate (holdfast-bench) sits next to `holdfast` in target/<profile>/.
    if let Some(sibling) = executable.parent().map(|dir| dir.join("holdfast")) {
        if sibling.is_file()
            && executable.parent().and_then(Path::file_name) != Some("deps".as_ref())
        {
            return Ok(sibling);
        }
    }
    // target/<profile>/deps/<test> → target/<profile>/holdfast
    let profile_dir = executable.parent().and_then(Path::parent).ok_or_else(|| {
        anyhow!(
            "cannot locate the target directory from {}",
            executable.display()
        )
    })?;
    let release = profile_dir
        .file_name()
        .is_some_and(|name| name == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    // The same selection as `cargo test --workspace` (every package, test targets and so
    // dev-dependencies): selecting one package or one binary resolves the dependencies'
    // features differently and would build a second copy of everything, RocksDB's C++
    // included, instead of finding the binary that the test build already made.
    build.args(["build", "--quiet", "--workspace", "--tests"]);
    // Without the variables `cargo test` sets for this test process: build scripts that
    // watch one of them (ring's watches CARGO_MANIFEST_DIR) would otherwise see it change
    // and rebuild, and with them everything above (rustls, tonic, the node): about two
    // minutes inside the first process test of every suite, and again in the next build.
    for (name, _) in std::env::vars_os() {
        if is_set_by_cargo_for_tests(&name.to_string_lossy()) {
            build.env_remove(&name);
        }
    }
    if release {
        build.arg("--release");
    }
    let status = build.status().context("building holdfast")?;
    if !status.success() {
        bail!("cargo build of holdfast failed");
    }
    Ok(profile_dir.join("holdfast"))
}

/// Whether `cargo test` sets the environment variable `name` for the test binaries it runs
/// (the "Environment variables Cargo sets for crates" of Cargo's book), as opposed to what
/// the caller set (CARGO_TARGET_DIR, CARGO_HOME, CARGO_INCREMENTAL...), which a nested
/// build must keep.
fn is_set_by_cargo_for_tests(name: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
        "CARGO_MANIFEST_",
    ];
    const NAMES: [&str; 4] = [
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    PREFIXES.iter().any(|prefix| name.starts_with(prefix)) || NAMES.contains(&name)
}

/// `holdfastctl`, built next to `holdfast` by the same workspace build.
pub fn holdfastctl_binary() -> PathBuf {
    let holdfast = holdfast_binary().expect("holdfast binary");
    let path = holdfast.with_file_name("holdfastctl");
    assert!(path.is_file(), "{} is not built", path.display());
    path
}

/// What a `holdfastctl` run printed and how it exited.
pub struct CtlRun {
    /// The exit code; -1 when a signal ended the process.
    pub code: i32,
    /// Everything it printed on stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything it printed on stderr (lossy UTF-8).
    pub stderr: String,
}

impl CtlRun {
    /// stdout as JSON (panics, showing it, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.stdout))
    }
}

/// Runs `holdfastctl --endpoints ENDPOINTS --timeout 20 ARGS...` on a blocking thread,
/// with no endpoints or key from the test's environment.
pub async fn holdfastctl(endpoints: &str, args: &[&str]) -> CtlRun {
    let mut command = Command::new(holdfastctl_binary());
    command
        .args(["--endpoints", endpoints, "--timeout", "20"])
        .args(args)
        .env_remove("HOLDFAST_ENDPOINTS")
        .env_remove("HOLDFAST_KEY")
        .env("NO_COLOR", "1");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking thread runs")
        .expect("run holdfastctl");
    CtlRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A port for a test node to listen on, handed out once in this process.
///
/// A port from `bind(0)` is released before the node binds it, and the kernel may give it to
/// the next `bind(0)` meanwhile — another node of a cluster that a test running in parallel
/// starts — so one node would fail to bind and its cluster would talk to the other's node.
/// Ports here come from a counter instead, below the kernel's ephemeral range (32768 and
/// up, where `bind(0)` and outgoing connections draw from), starting at an offset drawn
/// from the process id, and are checked free before they are handed out.
pub fn free_port() -> Result<u16> {
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let port = FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(port).expect("below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// A throwaway certificate authority for a test cluster (the nodes get certificates named
/// `holdfast-node-<id>`, as `holdfast serve` expects).
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn generate(name: &str) -> Result<TestCa> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate()?;
        let ca_pem = params.self_signed(&key)?.pem();
        Ok(TestCa {
            issuer: rcgen::Issuer::new(params, key),
            ca_pem,
        })
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A certificate and key (PEM) with `names` as DNS names, for servers and clients.
    pub fn issue(&self, names: &[String]) -> Result<(String, String)> {
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }
}

impl ProcessCluster {
    /// The cluster's CA, when the nodes run peer TLS (a test can issue certificates from
    /// it, as an operator would for a new member).
    pub fn peer_ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// Starts `count` nodes, initialises them as one cluster and waits for a leader.
    pub async fn start(count: usize) -> Result<ProcessCluster> {
        ProcessCluster::start_with(count, Launch::default()).await
    }

    /// [`ProcessCluster::start`] with nodes started as `launch` says.
    pub async fn start_with(count: usize, launch: Launch) -> Result<ProcessCluster> {
        let mut cluster = ProcessCluster::new(launch)?;
        for _ in 0..count {
            cluster.spawn_new_node()?;
        }
        for node in 0..count {
            cluster.wait_healthy(node).await?;
        }
        let members: Vec<Value> = cluster.nodes.iter().map(NodeHandle::member_json).collect();
        let init = cluster
            .post(0, "/cluster/init", json!({ "members": members }), None)
            .await?;
        if init.status != 200 && init.status != 201 {
            bail!("cluster init failed: {} {}", init.status, init.body);
        }
        cluster.wait_for_leader().await?;
        Ok(cluster)
    }

    /// Starts `count` nodes that form their cluster by themselves, from a
    /// `--bootstrap-members` file listing all of them (no `POST /cluster/init`), and waits
    /// for a leader. Nodes spawned later get the same file, so they join.
    pub async fn start_bootstrapped(count: usize, launch: Launch) -> Result<ProcessCluster> {
        let mut cluster = ProcessCluster::new(launch)?;
        for _ in 0..count {
            cluster.add_node()?;
        }
        let members: Vec<Value> = cluster.nodes.iter().map(NodeHandle::member_json).collect();
        let file = cluster.root.path().join("members.json");
        std::fs::write(&file, json!({ "members": members }).to_string())?;
        cluster.launch.env.push((
            "HOLDFAST_BOOTSTRAP_MEMBERS".into(),
            file.display().to_string(),
        ));
        for position in 0..count {
            cluster.launch(position)?;
        }
        cluster.wait_for_leader().await?;
        Ok(cluster)
    }

    /// Removes a stopped node's data directory, as a lost disk would.
    pub fn wipe(&mut self, position: usize) -> Result<()> {
        let node = &self.nodes[position];
        if node.child.is_some() {
            bail!("node {} is running", node.id);
        }
        std::fs::remove_dir_all(&node.data_dir)?;
        std::fs::create_dir_all(&node.data_dir)?;
        Ok(())
    }

    fn new(launch: Launch) -> Result<ProcessCluster> {
        let root = match &launch.root_in {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                tempfile::tempdir_in(dir)?
            }
            None => tempfile::tempdir()?,
        };
        let ca = if launch.peer_tls {
            let ca = TestCa::generate("holdfast test cluster CA")?;
            std::fs::write(root.path().join("peer-ca.pem"), ca.ca_pem())?;
            Some(ca)
        } else {
            None
        };
        Ok(ProcessCluster {
            nodes: Vec::new(),
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()?,
            root,
            binary: holdfast_binary()?,
            next_id: 1,
            launch,
            ca,
            proxies: Vec::new(),
        })
    }

    /// Starts a fresh node process that is not yet a member; returns its position.
    pub fn spawn_new_node(&mut self) -> Result<usize> {
        let position = self.add_node()?;
        self.launch(position)?;
        Ok(position)
    }

    /// A new node's id, ports and directory, not started yet; returns its position.
    fn add_node(&mut self) -> Result<usize> {
        let id = self.next_id;
        self.next_id += 1;
        let data_dir = self.root.path().join(format!("node-{id}"));
        std::fs::create_dir_all(&data_dir)?;
        let raft_port = free_port()?;
        let listen_raft_addr = format!("127.0.0.1:{raft_port}");
        let raft_addr = match self.launch.peer_delay {
            Some((delay, jitter)) => {
                let proxy = crate::delay::start(listen_raft_addr.clone(), delay, jitter)?;
                let addr = proxy.addr.clone();
                self.proxies.push(proxy);
                addr
            }
            None => match &self.launch.advertise_host {
                Some(host) => format!("{host}:{raft_port}"),
                None => listen_raft_addr.clone(),
            },
        };
        self.nodes.push(NodeHandle {
            id,
            http_addr: format!("127.0.0.1:{}", free_port()?),
            raft_addr,
            listen_raft_addr,
            data_dir,
            region: self
                .launch
                .regions
                .get(id as usize - 1)
                .cloned()
                .unwrap_or_else(|| "local".into()),
            child: None,
        });
        Ok(self.nodes.len() - 1)
    }

    fn launch(&mut self, position: usize) -> Result<()> {
        let node = &mut self.nodes[position];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.data_dir.with_extension("log"))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .args(["--id", &node.id.to_string()])
            .args(["--http-addr", &node.http_addr])
            .args(["--raft-addr", &node.listen_raft_addr])
            .args(["--advertise-raft-addr", &node.raft_addr])
            .args(["--region", &node.region])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .env("RUST_LOG", &self.launch.log_filter)
            // Test clusters take the sandbox's test tokens (a launch may choose another
            // provider through its environment).
            .env("HOLDFAST_ALLOW_SANDBOX_PAYMENTS", "true")
            .envs(self.launch.env.iter().map(|(name, value)| (name, value)))
            .envs(
                self.launch
                    .node_env
                    .iter()
                    .filter(|(id, _, _)| *id == node.id)
                    .map(|(_, name, value)| (name, value)),
            );
        if self.launch.test_faults {
            command.env("HOLDFAST_TEST_FAULTS", "1");
        }
        if let Some(ca) = &self.ca {
            let cert = node.data_dir.with_extension("crt");
            let key = node.data_dir.with_extension("key");
            if !cert.exists() {
                let (cert_pem, key_pem) = ca.issue(&[format!("holdfast-node-{}", node.id)])?;
                std::fs::write(&cert, cert_pem)?;
                std::fs::write(&key, key_pem)?;
            }
            command
                .arg("--peer-ca")
                .arg(self.root.path().join("peer-ca.pem"))
                .arg("--peer-cert")
                .arg(&cert)
                .arg("--peer-key")
                .arg(&key);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// Everything a node logged.
    pub fn log(&self, position: usize) -> String {
        let path = self.nodes[position].data_dir.with_extension("log");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The last lines a node logged, for failure messages.
    pub fn log_tail(&self, position: usize) -> String {
        let text = self.log(position);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until the node answers `GET /healthz` with `200`, polling every 100 ms. Fails
    /// after 60 s, with the node's last log lines.
    pub async fn wait_healthy(&self, position: usize) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(response) = self.get(position, "/healthz").await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} never became healthy:\n{}",
                    self.nodes[position].id,
                    self.log_tail(position)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running node names the same leader; returns its position.
    pub async fn wait_for_leader(&self) -> Result<usize> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(leader) = self.agreed_leader().await {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                bail!(
                    "no agreed leader within {STARTUP_TIMEOUT:?}:\n{}",
                    self.log_tail(0)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        let mut leader = None;
        for (position, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let status = self.get(position, "/cluster/status").await.ok()?;
            let id = status.body["leader_id"].as_u64()?;
            if leader.is_some_and(|known| known != id) {
                return None;
            }
            leader = Some(id);
        }
        let id = leader?;
        let position = self.nodes.iter().position(|node| node.id == id)?;
        self.nodes[position].is_running().then_some(position)
    }

    /// The process id of a running node.
    pub fn pid(&self, position: usize) -> Option<u32> {
        self.nodes[position].child.as_ref().map(Child::id)
    }

    /// How a node's process ended, once it has (it is then no longer running).
    pub fn exit_status(&mut self, position: usize) -> Option<std::process::ExitStatus> {
        let node = &mut self.nodes[position];
        let status = node.child.as_mut()?.try_wait().ok()??;
        node.child = None;
        Some(status)
    }

    /// Kills a node with SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self, position: usize) {
        if let Some(mut child) = self.nodes[position].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops a node with SIGTERM and waits for it to exit.
    pub fn stop(&mut self, position: usize) -> Result<()> {
        if let Some(mut child) = self.nodes[position].child.take() {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    bail!("node {} ignored SIGTERM for 30 s", self.nodes[position].id);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Starts a stopped or killed node again on the same data directory and ports.
    pub async fn restart(&mut self, position: usize) -> Result<()> {
        self.launch(position)?;
        self.wait_healthy(position).await
    }

    /// A node's `/metrics` text.
    pub async fn metrics(&self, position: usize) -> Result<String> {
        let request = self.client.get(self.nodes[position].url("/metrics"));
        Ok(request.send().await?.text().await?)
    }

    /// `GET path` on node `position`. Any status is an `Ok` answer; `Err` means no answer
    /// (connection refused, or 15 s passed).
    pub async fn get(&self, position: usize, path: &str) -> Result<Response> {
        let request = self.client.get(self.nodes[position].url(path));
        send(request).await
    }

    /// [`ProcessCluster::get`] with extra request `headers` (name, value).
    pub async fn get_with(
        &self,
        position: usize,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let mut request = self.client.get(self.nodes[position].url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    /// `POST path` with the JSON `body` and, when given, an `Idempotency-Key`; answers as
    /// [`ProcessCluster::get`].
    pub async fn post(
        &self,
        position: usize,
        path: &str,
        body: Value,
        key: Option<&str>,
    ) -> Result<Response> {
        let mut request = self.client.post(self.nodes[position].url(path)).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        send(request).await
    }

    /// `POST path` with `body` sent as it is (labelled `application/json`), for malformed
    /// and oversized requests; answers as [`ProcessCluster::get`].
    pub async fn post_raw(&self, position: usize, path: &str, body: Vec<u8>) -> Result<Response> {
        let request = self
            .client
            .post(self.nodes[position].url(path))
            .header("content-type", "application/json")
            .body(body);
        send(request).await
    }

    /// Positions of the nodes that are running.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&position| self.nodes[position].is_running())
            .collect()
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Response> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Ok(Response {
        status,
        body,
        headers,
    })
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for position in 0..self.nodes.len() {
            self.kill(position);
        }
    }
}

impl ProcessCluster {
    /// Creates an event through `POST /admin/events` and requires `201 Created`.
    pub async fn create_event(&self, position: usize, body: serde_json::Value) -> Result<()> {
        let created = self.post(position, "/admin/events", body, None).await?;
        if created.status != 201 {
            bail!(
                "event creation answered {}: {}",
                created.status,
                created.body
            );
        }
        Ok(())
    }

    /// Cuts a node off from its peers (or reconnects it) through its test-only fault
    /// switch; its HTTP API keeps answering.
    pub async fn set_isolated(&self, position: usize, isolated: bool) -> Result<()> {
        let answer = self
            .post(
                position,
                "/debug/faults",
                serde_json::json!({ "isolated": isolated }),
                None,
            )
            .await?;
        if answer.status != 200 {
            bail!("fault switch refused: {} {}", answer.status, answer.body);
        }
        Ok(())
    }

    /// Waits until the running nodes other than `except` agree on a leader that is not
    /// `except`; returns its position.
    pub async fn wait_for_leader_without(&self, except: usize) -> Result<usize> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let mut leaders = Vec::new();
            for position in self
                .running()
                .into_iter()
                .filter(|&position| position != except)
            {
                if let Ok(status) = self.get(position, "/cluster/status").await {
                    leaders.push(status.body["leader_id"].as_u64());
                }
            }
            if let Some(Some(id)) = leaders.first().copied() {
                let agreed = leaders.iter().all(|leader| *leader == Some(id));
                let position = self.nodes.iter().position(|node| node.id == id);
                if let (true, Some(position)) = (agreed, position) {
                    if position != except {
                        return Ok(position);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("the other nodes elected no new leader within {STARTUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_set_by_cargo_for_tests;

    #[test]
    fn a_nested_build_drops_what_cargo_test_set_and_keeps_what_the_caller_set() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_BIN_EXE_holdfast",
            "CARGO_CRATE_NAME",
            "CARGO_TARGET_TMPDIR",
        ] {
            assert!(is_set_by_cargo_for_tests(name), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO_INCREMENTAL",
            "CARGO_TERM_COLOR",
            "PATH",
        ] {
            assert!(!is_set_by_cargo_for_tests(name), "{name}");
        }
    }
}
