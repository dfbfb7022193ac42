//! Mutual TLS on the peer port: only members of this cluster may talk to it.
//!
//! Every node holds a certificate signed by the cluster's CA and its private key. Both
//! ends of every peer connection present their certificate and check the other's against
//! the CA, so a process without a certificate of this cluster is refused during the TLS
//! handshake, before a single gRPC byte is read.
//!
//! A certificate also names the node it belongs to: node `N`'s certificate carries the DNS
//! name `holdfast-node-N` ([`peer_name`]) among its subject alternative names. A node
//! dialling node `N` accepts only a server certificate with that name (so a member cannot
//! stand in for another), and a server accepts a request that says it comes from node `N`
//! only over a connection whose client certificate has that name
//! ([`check_peer_identity`]). The name is an identity, not a host name: peers are dialled
//! by address, and the certificate needs no IP address or host name of the machine.
//!
//! [`ClusterCa`] makes a throwaway CA and node certificates (with `rcgen`) for
//! `holdfast dev` and the tests; production clusters bring their own from files
//! ([`PeerTls::load`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::error::Error;
use crate::types::NodeId;

/// The prefix of the name a node's certificate carries: `holdfast-node-<id>`.
pub const PEER_NAME_PREFIX: &str = "holdfast-node-";

/// How long a TLS handshake on the peer port may take before the connection is dropped
/// (a client that opens connections and never finishes the handshake holds nothing longer).
pub const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest PEM file read (a certificate chain or a key is a few KiB).
const PEM_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// The name in node `node_id`'s certificate: `holdfast-node-<id>`.
pub fn peer_name(node_id: NodeId) -> String {
    format!("{PEER_NAME_PREFIX}{node_id}")
}

/// The cluster CA and this node's certificate and key, as PEM. Cloning shares the bytes.
#[derive(Clone)]
pub struct PeerTls {
    ca_pem: Arc<[u8]>,
    cert_pem: Arc<[u8]>,
    key_pem: Arc<[u8]>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        formatter
            .debug_struct("PeerTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("cert_pem_bytes", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

fn tls_error(message: impl Into<String>) -> Error {
    Error::PeerTls {
        message: message.into(),
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| tls_error(format!("{what}: {error}")))?;
    if certificates.is_empty() {
        return Err(tls_error(format!("{what} holds no PEM certificate")));
    }
    Ok(certificates)
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(path).map_err(|error| {
        tls_error(format!(
            "cannot open the {what} {}: {error}",
            path.display()
        ))
    })?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, PEM_FILE_BYTES_MAX + 1),
        &mut bytes,
    )
    .map_err(|error| {
        tls_error(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })?;
    if bytes.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(tls_error(format!(
            "the {what} {} is larger than {PEM_FILE_BYTES_MAX} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

impl PeerTls {
    /// Checks and keeps the PEM text of the cluster CA's certificate(s), this node's
    /// certificate (chain) and its private key.
    pub fn from_pem(
        ca_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Result<PeerTls, Error> {
        certificates(&ca_pem, "the peer CA file")?;
        let chain = certificates(&cert_pem, "the peer certificate file")?;
        webpki::EndEntityCert::try_from(&chain[0])
            .map_err(|error| tls_error(format!("the peer certificate does not parse: {error}")))?;
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
            tls_error(format!("the peer key file holds no private key: {error}"))
        })?;
        Ok(PeerTls {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        })
    }

    /// Reads the three PEM files (`--peer-ca`, `--peer-cert`, `--peer-key`).
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, Error> {
        PeerTls::from_pem(
            read_pem(ca, "peer CA file")?,
            read_pem(cert, "peer certificate file")?,
            read_pem(key, "peer key file")?,
        )
    }

    /// Fails unless this node's certificate names node `node_id` ([`peer_name`]): a node
    /// started with another node's certificate would be refused by every peer.
    pub fn check_names_node(&self, node_id: NodeId) -> Result<(), Error> {
        let chain = certificates(&self.cert_pem, "the peer certificate file")?;
        if certificate_names(&chain[0], node_id) {
            Ok(())
        } else {
            Err(tls_error(format!(
                "the peer certificate does not carry the name {} (a DNS subject alternative name) of node {node_id}",
                peer_name(node_id)
            )))
        }
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&*self.cert_pem, &*self.key_pem)
    }

    fn ca(&self) -> Certificate {
        Certificate::from_pem(&*self.ca_pem)
    }

    /// The listener's side: present this node's certificate, require a client certificate
    /// signed by the cluster CA, drop handshakes that take longer than
    /// [`PEER_HANDSHAKE_TIMEOUT`].
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(self.ca())
            .client_auth_optional(false)
            .timeout(PEER_HANDSHAKE_TIMEOUT)
    }

    /// The dialling side towards node `target`: present this node's certificate and accept
    /// only a server certificate from the cluster CA that names `target`.
    pub fn client_config(&self, target: NodeId) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca())
            .identity(self.identity())
            .domain_name(peer_name(target))
            .timeout(PEER_HANDSHAKE_TIMEOUT)
    }
}

/// The endpoint of node `target`'s peer listener at `address`: `https` with mutual TLS
/// when `tls` is given, plain `http` otherwise (a node without peer TLS, or a simulation).
pub fn peer_endpoint(
    tls: Option<&PeerTls>,
    address: &str,
    target: NodeId,
) -> Result<Endpoint, tonic::transport::Error> {
    match tls {
        Some(tls) => Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(tls.client_config(target)),
        None => Endpoint::from_shared(format!("http://{address}")),
    }
}

fn certificate_names(certificate: &CertificateDer<'_>, node_id: NodeId) -> bool {
    let Ok(name) = ServerName::try_from(peer_name(node_id)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(certificate)
        .is_ok_and(|parsed| parsed.verify_is_valid_for_subject_name(&name).is_ok())
}

/// Checks that a request which says it comes from node `from` arrived over a connection
/// whose client certificate names that node. Over a connection without TLS (a node that
/// runs without peer TLS, or a simulation) there is nothing to check, unless
/// `tls_required`, which refuses it.
#[allow(clippy::result_large_err)]
pub fn check_peer_identity<T>(
    request: &tonic::Request<T>,
    from: NodeId,
    tls_required: bool,
) -> Result<(), tonic::Status> {
    match request.peer_certs() {
        Some(chain) => match chain.first() {
            Some(certificate) if certificate_names(certificate, from) => Ok(()),
            _ => Err(tonic::Status::permission_denied(format!(
                "PEER_IDENTITY_MISMATCH: the client certificate does not name node {from} ({})",
                peer_name(from)
            ))),
        },
        None if tls_required => Err(tonic::Status::permission_denied(
            "PEER_IDENTITY_MISMATCH: no client certificate on a peer connection",
        )),
        None => Ok(()),
    }
}

/// A throwaway certificate authority for one cluster, kept in memory: `holdfast dev` and
/// the tests make one per run and issue each node's certificate from it.
pub struct ClusterCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
}

fn rcgen_error(error: rcgen::Error) -> Error {
    tls_error(format!("cannot make a certificate: {error}"))
}

impl ClusterCa {
    /// A new CA named `name` with a fresh key.
    pub fn generate(name: &str) -> Result<ClusterCa, Error> {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
        let certificate = params.self_signed(&key).map_err(rcgen_error)?;
        Ok(ClusterCa {
            issuer: rcgen::Issuer::new(params, key),
            ca_pem: certificate.pem(),
        })
    }

    /// The CA certificate, PEM (what `--peer-ca` names).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A certificate and key (PEM) for any set of DNS names, usable on both ends of a
    /// connection.
    pub fn issue_for_names(&self, names: Vec<String>) -> Result<(String, String), Error> {
        let mut params = rcgen::CertificateParams::new(names.clone()).map_err(rcgen_error)?;
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, first.as_str());
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
        let certificate = params.signed_by(&key, &self.issuer).map_err(rcgen_error)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }

    /// Node `node_id`'s certificate and key (PEM), naming it [`peer_name`].
    pub fn issue(&self, node_id: NodeId) -> Result<(String, String), Error> {
        self.issue_for_names(vec![peer_name(node_id)])
    }

    /// Node `node_id`'s [`PeerTls`].
    pub fn peer_tls(&self, node_id: NodeId) -> Result<PeerTls, Error> {
        let (cert, key) = self.issue(node_id)?;
        PeerTls::from_pem(
            self.ca_pem.clone().into_bytes(),
            cert.into_bytes(),
            key.into_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_names_its_node_only() {
        let ca = ClusterCa::generate("test").unwrap();
        let tls = ca.peer_tls(3).unwrap();
        tls.check_names_node(3).unwrap();
        let error = tls.check_names_node(4).unwrap_err();
        assert_eq!(error.code(), "PEER_TLS_INVALID");
        assert!(error.to_string().contains("holdfast-node-4"), "{error}");
    }

    #[test]
    fn files_without_pem_are_refused() {
        let ca = ClusterCa::generate("test").unwrap();
        let (cert, key) = ca.issue(1).unwrap();
        let ca_pem = ca.ca_pem().as_bytes().to_vec();
        for (ca_pem, cert, key) in [
            (
                b"nothing".to_vec(),
                cert.clone().into_bytes(),
                key.clone().into_bytes(),
            ),
            (
                ca_pem.clone(),
                b"nothing".to_vec(),
                key.clone().into_bytes(),
            ),
            (
                ca_pem.clone(),
                cert.clone().into_bytes(),
                b"nothing".to_vec(),
            ),
        ] {
            let error = PeerTls::from_pem(ca_pem, cert, key).unwrap_err();
            assert_eq!(error.code(), "PEER_TLS_INVALID");
        }
        let debug = format!("{:?}", ca.peer_tls(1).unwrap());
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }
}
