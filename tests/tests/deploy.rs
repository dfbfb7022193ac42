//! The files in `deploy/`: every Kubernetes manifest validates against the Kubernetes
//! schemas (offline, `kubernetes-validate --strict`), the systemd unit passes
//! `systemd-analyze verify`, and every flag, `HOLDFAST_*` variable, config key, port and
//! probe path they use is one that `holdfast serve` accepts or answers. The StatefulSet's
//! own command line is run for real (its shell, its flags, its environment).
//!
//! `./scripts/setup.sh --test-tools` installs the tools (`HOLDFAST_KUBERNETES_VALIDATE`
//! names another kubernetes-validate).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use holdfast_tests::cluster::{free_port, holdfast_binary};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable deploy directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn kubernetes_validate() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("HOLDFAST_KUBERNETES_VALIDATE") {
        return Ok(PathBuf::from(path));
    }
    let venv =
        std::env::var("HOLDFAST_TOOLS_DIR").unwrap_or_else(|_| "/var/tmp/holdfast-tools".into());
    let installed = Path::new(&venv).join("k8s-validate/bin/kubernetes-validate");
    if installed.is_file() {
        return Ok(installed);
    }
    bail!("kubernetes-validate is missing: run ./scripts/setup.sh --test-tools")
}

/// The YAML documents of `path` as JSON, read by the Python beside kubernetes-validate
/// (it brings PyYAML).
fn yaml_documents(path: &Path) -> Result<Vec<Value>> {
    let python = kubernetes_validate()?.with_file_name("python");
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
        ])
        .arg(path)
        .output()?;
    ensure!(
        output.status.success(),
        "{} is not YAML: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name == "kustomization.yaml")
}

fn manifests() -> Vec<PathBuf> {
    files_under(&deploy_dir().join("kubernetes"))
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml") && !is_kustomization(path))
        .collect()
}

#[test]
fn every_kubernetes_manifest_validates_against_the_schemas() -> Result<()> {
    let manifests = manifests();
    ensure!(
        manifests.len() >= 4,
        "expected the manifests under deploy/kubernetes"
    );
    let output = Command::new(kubernetes_validate()?)
        .arg("--strict")
        .args(&manifests)
        .output()?;
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "kubernetes-validate refused:\n{report}"
    );
    ensure!(
        !report.contains("WARN"),
        "kubernetes-validate warned:\n{report}"
    );
    let kinds: BTreeSet<String> = manifests
        .iter()
        .map(|path| yaml_documents(path))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .filter_map(|document| document["kind"].as_str().map(str::to_string))
        .collect();
    for kind in [
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        ensure!(kinds.contains(kind), "no {kind} in deploy/kubernetes");
    }
    Ok(())
}

#[test]
fn every_kustomization_names_files_that_exist() -> Result<()> {
    let kustomizations: Vec<PathBuf> = files_under(&deploy_dir().join("kubernetes"))
        .into_iter()
        .filter(|path| is_kustomization(path))
        .collect();
    ensure!(kustomizations.len() >= 4);
    for path in kustomizations {
        let dir = path.parent().expect("in a directory");
        for document in yaml_documents(&path)? {
            let mut named: Vec<&str> = Vec::new();
            for resource in document["resources"].as_array().into_iter().flatten() {
                named.push(resource.as_str().ok_or_else(|| anyhow!("resource name"))?);
            }
            for generator in document["configMapGenerator"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for file in generator["files"].as_array().into_iter().flatten() {
                    named.push(file.as_str().ok_or_else(|| anyhow!("file name"))?);
                }
            }
            for name in named {
                let target = dir.join(name);
                ensure!(
                    target.is_file() || target.join("kustomization.yaml").is_file(),
                    "{} names {name}, which does not exist",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// The members each overlay initialises are the pods its StatefulSets make: pod N of a set
/// with ID_BASE B is node B + N + 1 at `<pod>.holdfast-peers`.
#[test]
fn the_bootstrap_members_are_the_pods_of_the_overlays() -> Result<()> {
    let overlays = deploy_dir().join("kubernetes/overlays");
    for (overlay, sets) in [
        ("one-region", vec![("holdfast", 0, 3, "eu-west-1")]),
        (
            "three-regions",
            vec![
                ("holdfast-a", 0, 2, "eu-west-1"),
                ("holdfast-b", 100, 2, "eu-central-1"),
                ("holdfast-c", 200, 1, "eu-north-1"),
            ],
        ),
    ] {
        let text = std::fs::read_to_string(overlays.join(overlay).join("members.json"))?;
        let document: Value = serde_json::from_str(&text)?;
        let members = document["members"]
            .as_array()
            .cloned()
            .ok_or_else(|| anyhow!("{overlay}/members.json has no members"))?;
        let mut expected = Vec::new();
        for (set, id_base, replicas, region) in sets {
            for ordinal in 0..replicas {
                let pod = format!("{set}-{ordinal}.holdfast-peers");
                expected.push(serde_json::json!({
                    "id": id_base + ordinal + 1,
                    "raft_addr": format!("{pod}:7101"),
                    "http_addr": format!("{pod}:7001"),
                    "region": region,
                }));
            }
        }
        assert_eq!(members, expected, "{overlay}/members.json");
    }
    // The three-region sets carry the ID_BASE and region the members say.
    for (set, id_base, region) in [
        ("a", "0", "eu-west-1"),
        ("b", "100", "eu-central-1"),
        ("c", "200", "eu-north-1"),
    ] {
        let text = std::fs::read_to_string(
            overlays.join(format!("three-regions/region-{set}/kustomization.yaml")),
        )?;
        assert!(text.contains(&format!("nameSuffix: -{set}")));
        assert!(
            text.contains(&format!("value: \"{id_base}\"")),
            "region-{set}"
        );
        assert!(text.contains(&format!("value: {region}")), "region-{set}");
    }
    Ok(())
}

#[test]
fn the_systemd_unit_verifies() -> Result<()> {
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/holdfast.service"))?;
    for option in [
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
        "CapabilityBoundingSet=",
    ] {
        ensure!(
            unit.lines().any(|line| line == option),
            "the unit lacks {option}"
        );
    }
    // systemd-analyze checks that ExecStart's binary exists: point it at the built one.
    let binary = holdfast_binary()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("holdfast.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/holdfast", &binary.display().to_string()),
    )?;
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .context("systemd-analyze is missing: run ./scripts/setup.sh --test-tools")?;
    let report = String::from_utf8_lossy(&output.stderr).to_string();
    ensure!(
        output.status.success(),
        "systemd-analyze verify failed:\n{report}"
    );
    ensure!(
        !report.contains("holdfast.service"),
        "systemd-analyze complained about the unit:\n{report}"
    );
    Ok(())
}

/// The flags and environment variables `holdfast serve --help` lists.
fn serve_accepts() -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let output = Command::new(holdfast_binary()?)
        .args(["serve", "--help"])
        .output()?;
    ensure!(output.status.success());
    let help = String::from_utf8(output.stdout)?;
    Ok((tokens(&help, "--"), tokens(&help, "HOLDFAST_")))
}

/// Every token that starts with `prefix` and continues with letters, digits, `-` or `_`.
fn tokens(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (position, _) in text.match_indices(prefix) {
        let before = text[..position].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            continue;
        }
        let rest = &text[position + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            found.insert(format!("{prefix}{}", &rest[..end]));
        }
    }
    found
}

/// The flags given to `holdfast serve` in `text`: the tokens on its line and on the lines
/// that continue it (after a trailing `\`, or lines that start with a flag).
fn serve_flags(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let Some(start) = line.find("holdfast serve") else {
            continue;
        };
        flags.extend(tokens(&line[start..], "--"));
        let mut continued = line.trim_end().ends_with('\\');
        for next in &lines[index + 1..] {
            if !(continued || next.trim_start().starts_with("--")) {
                break;
            }
            flags.extend(tokens(next, "--"));
            continued = next.trim_end().ends_with('\\');
        }
    }
    flags
}

#[test]
fn deploy_uses_only_flags_and_variables_that_holdfast_serve_accepts() -> Result<()> {
    let (flags, variables) = serve_accepts()?;
    ensure!(
        flags.contains("--http-addr") && variables.contains("HOLDFAST_HTTP_ADDR"),
        "help: {flags:?}"
    );
    let mut checked_flags = 0;
    for path in files_under(&deploy_dir()) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for variable in tokens(&text, "HOLDFAST_") {
            assert!(
                variables.contains(&variable),
                "{} uses {variable}, which holdfast serve does not read",
                path.display()
            );
        }
        for flag in serve_flags(&text) {
            checked_flags += 1;
            assert!(
                flags.contains(&flag),
                "{} passes {flag}, which holdfast serve does not take",
                path.display()
            );
        }
        if path
            .extension()
            .is_some_and(|ext| ext == "toml" || ext == "example")
        {
            for line in text.lines() {
                let line = line.trim_start_matches(['#', ' ']);
                if let Some((key, _)) = line.split_once(" = ") {
                    let flag = format!("--{}", key.trim().replace('_', "-"));
                    assert!(
                        flags.contains(&flag),
                        "{} sets {key}, which holdfast serve does not take",
                        path.display()
                    );
                }
            }
        }
    }
    ensure!(
        checked_flags >= 5,
        "found only {checked_flags} flags to check"
    );
    Ok(())
}

/// A port number after `key` on a line (`containerPort: 7001`, `- 7001:7001`, ...).
fn ports_in(text: &str) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        for key in ["containerPort:", "port:", "targetPort:", "EXPOSE"] {
            if let Some(rest) = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("- {key}")))
            {
                ports.extend(
                    rest.split_whitespace()
                        .filter_map(|word| word.parse::<u16>().ok()),
                );
            }
        }
        // docker-compose "HOST:CONTAINER": the container side.
        if let Some(rest) = line.strip_prefix("ports: [\"") {
            if let Some(container) = rest.split(['"', ':']).nth(1) {
                ports.extend(container.parse::<u16>().ok());
            }
        }
    }
    ports
}

/// The ports and probe paths of deploy/ against a node started with the StatefulSet's own
/// command line, shell and `HOLDFAST_*` environment (addresses moved to loopback ports and
/// paths to a temporary directory, which is all a test can change).
#[tokio::test]
async fn the_statefulsets_command_starts_a_node_that_answers_the_probes() -> Result<()> {
    let statefulset = deploy_dir().join("kubernetes/nodeset/statefulset.yaml");
    let documents = yaml_documents(&statefulset)?;
    let container = &documents[0]["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .ok_or_else(|| anyhow!("no env"))?
        .iter()
        .filter_map(|entry| {
            Some((
                entry["name"].as_str()?.to_string(),
                entry["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let value = |name: &str, env: &[(String, String)]| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    // Every port the manifests, the image and compose use is the HTTP or the Raft port.
    let http_port: u16 = value("HOLDFAST_HTTP_ADDR", &env)
        .rsplit(':')
        .next()
        .unwrap_or("")
        .parse()?;
    let raft_port: u16 = value("HOLDFAST_RAFT_ADDR", &env)
        .rsplit(':')
        .next()
        .unwrap_or("")
        .parse()?;
    for path in files_under(&deploy_dir()) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for port in ports_in(&text) {
            assert!(
                port == http_port || port == raft_port,
                "{} uses port {port}, which is neither the HTTP ({http_port}) nor the Raft port ({raft_port})",
                path.display()
            );
        }
    }
    // The data directory and the keys file are on volumes.
    let mounts: Vec<String> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|mount| mount["mountPath"].as_str().map(str::to_string))
        .collect();
    assert!(
        mounts.contains(&value("HOLDFAST_DATA_DIR", &env)),
        "the data directory is not a volume"
    );
    let keys = value("HOLDFAST_AUTH_KEYS", &env);
    assert!(
        mounts
            .iter()
            .any(|mount| keys.starts_with(&format!("{mount}/"))),
        "the keys file is not on a volume"
    );

    // Run the container's command as the pods holdfast-0, -1 and -2 would: the same
    // shell, flags and environment, with the addresses moved to loopback ports, the
    // volumes to a temporary directory, a members file naming the three pods and the peer
    // certificates `holdfast certs` makes, as the Secret would hold them. They must form
    // their cluster by themselves, over mutual TLS.
    let dir = tempfile::tempdir()?;
    let keys_file = dir.path().join("keys");
    std::fs::write(&keys_file, "operator ops-key-0123456789\n")?;
    let peer_dir = dir.path().join("peer");
    let certs = Command::new(holdfast_binary()?)
        .args(["certs", "--ids", "1-3", "--out"])
        .arg(&peer_dir)
        .output()?;
    ensure!(
        certs.status.success(),
        "holdfast certs failed: {}",
        String::from_utf8_lossy(&certs.stderr)
    );
    let again = Command::new(holdfast_binary()?)
        .args(["certs", "--ids", "1", "--out"])
        .arg(&peer_dir)
        .output()?;
    ensure!(!again.status.success(), "holdfast certs overwrote a CA");
    let pods: Vec<(String, String)> = (0..3)
        .map(|_| -> Result<(String, String)> {
            Ok((
                format!("127.0.0.1:{}", free_port()?),
                format!("127.0.0.1:{}", free_port()?),
            ))
        })
        .collect::<Result<_>>()?;
    let mut members = Vec::new();
    for (ordinal, (http_addr, raft_addr)) in pods.iter().enumerate() {
        let id = ordinal + 1;
        members.push(serde_json::json!({
            "id": id, "raft_addr": raft_addr, "http_addr": http_addr, "region": "eu-west-1"
        }));
    }
    let members_file = dir.path().join("members.json");
    std::fs::write(
        &members_file,
        serde_json::json!({ "members": members }).to_string(),
    )?;
    let command: Vec<String> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["args"].as_array().into_iter().flatten())
        .filter_map(|part| part.as_str().map(str::to_string))
        .collect();
    ensure!(
        command.len() >= 3 && command[0] == "/bin/sh",
        "expected a shell command: {command:?}"
    );
    let binary_dir = holdfast_binary()?
        .parent()
        .expect("in a directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut children = Vec::new();
    for (ordinal, (http_addr, raft_addr)) in pods.iter().enumerate() {
        let data = dir.path().join(format!("data-{ordinal}"));
        std::fs::create_dir_all(&data)?;
        let mut pod_env = env.clone();
        for (name, value) in pod_env.iter_mut() {
            match name.as_str() {
                "HOLDFAST_HTTP_ADDR" => *value = http_addr.clone(),
                "HOLDFAST_RAFT_ADDR" => *value = raft_addr.clone(),
                "HOLDFAST_DATA_DIR" => *value = data.display().to_string(),
                "HOLDFAST_AUTH_KEYS" => *value = keys_file.display().to_string(),
                "HOLDFAST_PEER_CA" => *value = peer_dir.join("ca.crt").display().to_string(),
                "PEER_TLS_DIR" => *value = peer_dir.display().to_string(),
                "HOLDFAST_BOOTSTRAP_MEMBERS" => *value = members_file.display().to_string(),
                _ => {}
            }
        }
        let log = std::fs::File::create(dir.path().join(format!("pod-{ordinal}.log")))?;
        children.push(
            Command::new(&command[0])
                .args(&command[1..])
                .env_clear()
                .env("PATH", &path)
                .env("HOSTNAME", format!("holdfast-{ordinal}"))
                .envs(pod_env)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
    }
    let http_addr = pods[1].0.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = |http_addr: &str, path: &str| format!("http://{http_addr}{path}");
    let logs = |ordinal: usize| {
        std::fs::read_to_string(dir.path().join(format!("pod-{ordinal}.log"))).unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let answer = client
            .get(url(&http_addr, "/cluster/status"))
            .bearer_auth("ops-key-0123456789")
            .send()
            .await;
        if let Ok(answer) = answer {
            break answer.json::<Value>().await?;
        }
        if let Some(exit) = children[1].try_wait()? {
            bail!("the node exited ({exit}):\n{}", logs(1));
        }
        ensure!(Instant::now() < deadline, "the node never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // holdfast-1 with ID_BASE 0 is node 2; the keys file is in force.
    assert_eq!(status["node_id"], 2, "{status}");
    let unauthenticated = client
        .get(url(&http_addr, "/cluster/status"))
        .send()
        .await?;
    assert_eq!(unauthenticated.status(), 401);
    // The probes' paths answer without a key (readiness: 503 until the cluster has a
    // leader, which is what keeps the pod out of the client service).
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = container[probe]["httpGet"]["path"]
            .as_str()
            .ok_or_else(|| anyhow!("{probe}"))?;
        let answer = client.get(url(&http_addr, path)).send().await?;
        let expected: &[u16] = if probe == "readinessProbe" {
            &[200, 503]
        } else {
            &[200]
        };
        assert!(
            expected.contains(&answer.status().as_u16()),
            "{probe} {path}: {}",
            answer.status()
        );
    }
    // The three pods form one cluster by themselves: each turns ready and lists the
    // three voters.
    let readiness = container["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .ok_or_else(|| anyhow!("readinessProbe"))?;
    for (ordinal, (http_addr, _)) in pods.iter().enumerate() {
        loop {
            let ready = client.get(url(http_addr, readiness)).send().await;
            let status = client
                .get(url(http_addr, "/cluster/status"))
                .bearer_auth("ops-key-0123456789")
                .send()
                .await;
            if let (Ok(ready), Ok(status)) = (ready, status) {
                let status: Value = status.json().await?;
                let voters = status["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|member| member["voter"] == true)
                    .count();
                if ready.status() == 200 && voters == 3 {
                    break;
                }
            }
            ensure!(
                Instant::now() < deadline,
                "holdfast-{ordinal} never joined a ready three-voter cluster:\n{}",
                logs(ordinal)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}
