//! The peer port accepts only members of the cluster: a client without a certificate from
//! the cluster's CA is refused at the TLS handshake and can neither propose, nor append
//! entries, nor change the membership; a member's certificate names its node, and every
//! request must match the cluster, the addressee and the sender's certificate; a forged
//! length prefix is refused with an error and leaves the node serving.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use holdfast_proto::booking::peer_service_client::PeerServiceClient;
use holdfast_proto::booking::{ChangeMembershipRequest, ProposeRequest, ProposedCommand};
use holdfast_proto::raft::raft_service_client::RaftServiceClient;
use holdfast_proto::raft::RaftRequest;
use holdfast_proto::{PROPOSE_WIRE_FORMAT_VERSION, RAFT_WIRE_FORMAT_VERSION};
use holdfast_tests::{event_body, hold_body, ProcessCluster, TestCa};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// bincode bytes that start with a string length of 2^40 (the marker 253, then a u64):
/// decoded without a limit, an allocation of a terabyte.
fn forged_length_prefix() -> Vec<u8> {
    let mut bytes = vec![0, 253];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bytes.extend_from_slice(b"and a few bytes");
    bytes
}

/// How a test client dials the peer port.
enum Dial<'a> {
    /// Plain HTTP/2, no TLS at all.
    Plain,
    /// TLS that checks the node against the cluster CA, without a client certificate.
    NoClientCertificate,
    /// TLS with a client certificate and key.
    Certificate { cert: &'a str, key: &'a str },
}

async fn channel(address: &str, target: u64, ca: &TestCa, dial: Dial<'_>) -> Result<Channel> {
    let endpoint = match dial {
        Dial::Plain => Endpoint::from_shared(format!("http://{address}"))?,
        Dial::NoClientCertificate | Dial::Certificate { .. } => {
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca.ca_pem()))
                .domain_name(format!("holdfast-node-{target}"));
            if let Dial::Certificate { cert, key } = dial {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            Endpoint::from_shared(format!("https://{address}"))?.tls_config(tls)?
        }
    };
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await?)
}

/// Who a member is to its peers: its cluster's id (random, from `POST /cluster/init`) and
/// its data directory's incarnation.
#[derive(Clone)]
struct Sender {
    cluster_id: String,
    incarnation: u64,
}

/// The identity of member `id`, as node `position`'s status gives it.
async fn identity(cluster: &ProcessCluster, position: usize, id: u64) -> Result<Sender> {
    let status = cluster.get(position, "/cluster/status").await?.body;
    let cluster_id = status["cluster_id"]
        .as_str()
        .context("no cluster id in the status")?
        .to_owned();
    let incarnation = status["members"]
        .as_array()
        .context("no members in the status")?
        .iter()
        .find(|member| member["id"] == id)
        .and_then(|member| member["incarnation"].as_str())
        .context("no incarnation for the member")?;
    Ok(Sender {
        cluster_id,
        incarnation: u64::from_str_radix(incarnation, 16)?,
    })
}

fn raft_request(sender: &Sender, from: u64, to: u64, payload: Vec<u8>) -> RaftRequest {
    RaftRequest {
        format_version: RAFT_WIRE_FORMAT_VERSION,
        cluster_id: sender.cluster_id.clone(),
        from_node_id: from,
        to_node_id: to,
        payload,
        from_incarnation: sender.incarnation,
        to_incarnation: 0,
    }
}

/// A peer-service request with the envelope a member would send.
fn enveloped<T>(message: T, cluster_id: &str, from: u64, to: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert_bin(
        "holdfast-cluster-id-bin",
        BinaryMetadataValue::from_bytes(cluster_id.as_bytes()),
    );
    metadata.insert("holdfast-from-node", AsciiMetadataValue::from(from));
    metadata.insert("holdfast-to-node", AsciiMetadataValue::from(to));
    request
}

fn propose_request(command: Vec<u8>) -> ProposeRequest {
    ProposeRequest {
        format_version: PROPOSE_WIRE_FORMAT_VERSION,
        commands: vec![ProposedCommand {
            request_id: None,
            command,
        }],
    }
}

/// Tries to propose, append entries and change the membership over `channel`; answers
/// what succeeded (nothing may).
async fn attempts(channel: Channel, leader_id: u64, sender: &Sender) -> Vec<&'static str> {
    let mut succeeded = Vec::new();
    let mut raft = RaftServiceClient::new(channel.clone());
    let mut peer = PeerServiceClient::new(channel);
    let other = if leader_id == 1 { 2 } else { 1 };
    if peer
        .propose(enveloped(
            propose_request(vec![0]),
            &sender.cluster_id,
            other,
            leader_id,
        ))
        .await
        .is_ok()
    {
        succeeded.push("propose");
    }
    if raft
        .append_entries(raft_request(sender, other, leader_id, Vec::new()))
        .await
        .is_ok()
    {
        succeeded.push("append entries");
    }
    let voters = ChangeMembershipRequest {
        voters: vec![leader_id],
    };
    if peer
        .change_membership(enveloped(voters, &sender.cluster_id, other, leader_id))
        .await
        .is_ok()
    {
        succeeded.push("change membership");
    }
    succeeded
}

async fn leader_id(cluster: &ProcessCluster) -> Result<(usize, u64)> {
    let leader = cluster.wait_for_leader().await?;
    Ok((leader, cluster.nodes[leader].id))
}

async fn voters(cluster: &ProcessCluster, position: usize) -> Result<usize> {
    let status = cluster.get(position, "/cluster/status").await?;
    let members = status.body["members"]
        .as_array()
        .context("no members in the status")?;
    Ok(members
        .iter()
        .filter(|member| member["voter"] == true)
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_are_refused_at_the_handshake() -> Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    // The cluster works over mutual TLS: a write commits.
    cluster
        .create_event(0, event_body("tls", 1, 10, 10))
        .await?;
    let (leader, leader_id) = leader_id(&cluster).await?;
    let address = cluster.nodes[leader].raft_addr.clone();
    let ca = cluster.peer_ca().context("the cluster runs peer TLS")?;
    let other_ca = TestCa::generate("another CA")?;
    let other = if leader_id == 1 { 2 } else { 1 };
    let sender = identity(&cluster, leader, other).await?;
    let (foreign_cert, foreign_key) = other_ca.issue(&["holdfast-node-2".into()])?;

    // Without TLS, or without a client certificate: nothing gets through.
    for (what, dial) in [
        ("plain", Dial::Plain),
        ("no client certificate", Dial::NoClientCertificate),
    ] {
        if let Ok(channel) = channel(&address, leader_id, ca, dial).await {
            let succeeded = attempts(channel, leader_id, &sender).await;
            assert!(succeeded.is_empty(), "{what}: {succeeded:?} got through");
        }
    }
    // A certificate of another CA, with a member's name: the handshake itself fails, or
    // the first call on it (TLS 1.3 reports the server's refusal of a client certificate
    // after the client finished its side).
    let dial = Dial::Certificate {
        cert: &foreign_cert,
        key: &foreign_key,
    };
    if let Ok(channel) = channel(&address, leader_id, ca, dial).await {
        let succeeded = attempts(channel, leader_id, &sender).await;
        assert!(
            succeeded.is_empty(),
            "another CA: {succeeded:?} got through"
        );
    }
    // A node that is not the one dialled cannot stand in for it: the client refuses a
    // server certificate that does not name the node it meant to reach.
    let (member_cert, member_key) = ca.issue(&["holdfast-node-2".into()])?;
    let wrong_target = if leader_id == 3 { 1 } else { 3 };
    let dial = Dial::Certificate {
        cert: &member_cert,
        key: &member_key,
    };
    assert!(
        channel(&address, wrong_target, ca, dial).await.is_err(),
        "a server certificate of node {leader_id} was accepted as node {wrong_target}"
    );

    // Nothing changed: three voters, and writes still commit.
    assert_eq!(voters(&cluster, leader).await?, 3);
    let hold = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body("tls", "c1", &["A-1-1"], 60),
            None,
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_checked_and_forged_lengths_are_refused() -> Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("forged", 1, 10, 10))
        .await?;
    let (leader, leader_id) = leader_id(&cluster).await?;
    let address = cluster.nodes[leader].raft_addr.clone();
    let ca = cluster.peer_ca().context("the cluster runs peer TLS")?;
    let other = if leader_id == 1 { 2 } else { 1 };
    let sender = identity(&cluster, leader, other).await?;
    let cluster_id = sender.cluster_id.as_str();
    let (cert, key) = ca.issue(&[format!("holdfast-node-{other}")])?;
    let member = || Dial::Certificate {
        cert: &cert,
        key: &key,
    };
    let mut raft = RaftServiceClient::new(channel(&address, leader_id, ca, member()).await?);
    let mut peer = PeerServiceClient::new(channel(&address, leader_id, ca, member()).await?);

    // A member's certificate gets through TLS; the envelope is still checked. The sender
    // must be the node the certificate names.
    let status = raft
        .append_entries(raft_request(&sender, 99, leader_id, Vec::new()))
        .await
        .expect_err("a request from another node than the certificate's");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("PEER_IDENTITY_MISMATCH"),
        "{status:?}"
    );
    // Refused Raft RPCs are counted like refused peer calls.
    let metrics = cluster.metrics(leader).await?;
    assert!(
        metrics.contains("holdfast_peer_refusals_total{reason=\"PEER_IDENTITY_MISMATCH\"} 1"),
        "the refused Raft RPC is not counted in:\n{metrics}"
    );
    // Forwarded proposals carry the envelope too: another cluster, another addressee, or
    // none at all are refused.
    for (envelope_cluster, to, code) in [
        ("another-cluster", leader_id, "CLUSTER_MISMATCH"),
        (cluster_id, leader_id + 100, "NODE_MISMATCH"),
    ] {
        let status = peer
            .propose(enveloped(
                propose_request(vec![0]),
                envelope_cluster,
                other,
                to,
            ))
            .await
            .expect_err("a mismatched envelope");
        assert!(status.message().contains(code), "{status:?}");
    }
    let status = peer
        .propose(tonic::Request::new(propose_request(vec![0])))
        .await
        .expect_err("a proposal without an envelope");
    assert!(status.message().contains("CLUSTER_MISMATCH"), "{status:?}");
    // The refusals are counted by reason, for operators.
    let metrics = cluster.metrics(leader).await?;
    for reason in ["CLUSTER_MISMATCH", "NODE_MISMATCH"] {
        assert!(
            metrics.contains(&format!(
                "holdfast_peer_refusals_total{{reason=\"{reason}\"}}"
            )),
            "no {reason} refusals counted in:\n{metrics}"
        );
    }

    // A length prefix of 2^40 bytes, in a Raft payload and in a forwarded command: an
    // error, and the node keeps serving.
    let status = raft
        .append_entries(raft_request(
            &sender,
            other,
            leader_id,
            forged_length_prefix(),
        ))
        .await
        .expect_err("a forged Raft payload");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("CORRUPT_DATA"), "{status:?}");
    let answer = peer
        .propose(enveloped(
            propose_request(forged_length_prefix()),
            cluster_id,
            other,
            leader_id,
        ))
        .await;
    let Err(status) = answer else {
        bail!("a forged command was accepted: {answer:?}");
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Node 42 has a certificate from the CA (say, issued for a node not yet added) but
    // is no member: it may not forward writes or change the membership.
    let (cert_42, key_42) = ca.issue(&["holdfast-node-42".into()])?;
    let dial = Dial::Certificate {
        cert: &cert_42,
        key: &key_42,
    };
    let mut outsider = PeerServiceClient::new(channel(&address, leader_id, ca, dial).await?);
    let status = outsider
        .propose(enveloped(
            propose_request(vec![0]),
            cluster_id,
            42,
            leader_id,
        ))
        .await
        .expect_err("a proposal from a non-member");
    assert!(status.message().contains("NOT_A_MEMBER"), "{status:?}");
    let voters_request = ChangeMembershipRequest {
        voters: vec![leader_id],
    };
    let status = outsider
        .change_membership(enveloped(voters_request, cluster_id, 42, leader_id))
        .await
        .expect_err("a membership change from a non-member");
    assert!(status.message().contains("NOT_A_MEMBER"), "{status:?}");
    assert_eq!(voters(&cluster, leader).await?, 3);

    let health = cluster.get(leader, "/healthz").await?;
    assert_eq!(health.status, 200);
    assert_eq!(leader_id_now(&cluster, leader).await?, Some(leader_id));
    let hold = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body("forged", "c1", &["A-1-1"], 60),
            None,
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    Ok(())
}

async fn leader_id_now(cluster: &ProcessCluster, position: usize) -> Result<Option<u64>> {
    let status = cluster.get(position, "/cluster/status").await?;
    Ok(status.body["leader_id"].as_u64())
}
