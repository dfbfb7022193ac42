//! The `holdfast` binary: configured from the environment, serving, and stopping cleanly on
//! SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn serve_single_node_from_the_environment_and_stop_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("serve")
        .env("HOLDFAST_SINGLE_NODE", "true")
        .env("HOLDFAST_HTTP_ADDR", "127.0.0.1:0")
        .env("HOLDFAST_ID", "7")
        .env("HOLDFAST_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start holdfast");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let address = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no serving line"
        );
        let line = lines.next().expect("a log line").unwrap();
        if let Some(at) = line.find("http://127.0.0.1:") {
            let rest = &line[at + "http://".len()..];
            let end = rest
                .find(|c: char| c != '.' && c != ':' && !c.is_ascii_digit())
                .unwrap_or(rest.len());
            break rest[..end].to_string();
        }
    };

    let health = http_get(&address, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"node_id\":7"), "{health}");
    let status = http_get(&address, "/cluster/status");
    assert!(status.contains("\"role\":\"leader\""), "{status}");

    // A signal sent directly: a minimal Debian has no `kill` binary (procps).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "holdfast exited with {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|line| line.contains("stopped cleanly")),
        "{rest:?}"
    );
}

#[test]
fn serve_refuses_to_start_without_a_mode() {
    let output = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["serve", "--http-addr", "127.0.0.1:0"])
        .env_remove("HOLDFAST_SINGLE_NODE")
        .output()
        .expect("run holdfast");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--single-node"), "{stderr}");
}

#[test]
fn serve_refuses_the_sandbox_payment_provider_unless_asked() {
    let data = tempfile::tempdir().expect("a directory");
    let serve = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args([
                "serve",
                "--http-addr",
                "127.0.0.1:0",
                "--raft-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data.path())
            .args(extra)
            .env_remove("HOLDFAST_SINGLE_NODE")
            .env_remove("HOLDFAST_ALLOW_SANDBOX_PAYMENTS")
            .env_remove("HOLDFAST_PAYMENT_PROVIDER")
            .output()
            .expect("run holdfast")
    };
    for extra in [&[][..], &["--payment-provider", "sandbox"]] {
        let output = serve(extra);
        assert!(!output.status.success(), "{extra:?} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("sandbox") && stderr.contains("--allow-sandbox-payments"),
            "{stderr}"
        );
    }
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_none(),
        "nothing was opened before the refusal"
    );
}
