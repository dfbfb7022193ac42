//! A node's data directory.
//!
//! ```text
//! <data dir>/holdfast.meta      JSON: format version, cluster id, node id, incarnation
//! <data dir>/raft-log/          RocksDB: vote, committed id, last purged id, log entries
//! <data dir>/snapshots/current.snapshot   the last durable snapshot (see state_store)
//! ```
//!
//! **Invariant:** a data directory belongs to one node of one cluster, for ever. The meta
//! file is written once, atomically, at first start; every later start checks it.
//!
//! **Cluster id.** A node given no cluster id on a fresh directory belongs to no cluster
//! yet: its meta file records an empty id until the node learns one, either by generating a
//! random one when it initialises a cluster (`POST /cluster/init`) or by taking the id of
//! the first cluster whose Raft calls reach it (see [`ClusterId::adopt`]). Once recorded,
//! the id never changes.
//!
//! **Incarnation.** The meta file also holds a random, non-zero incarnation drawn when the
//! directory is created. The membership records each member's incarnation, and Raft RPCs
//! carry the sender's and the addressee's, so that a node whose directory was wiped (it
//! has forgotten its votes and the entries it acknowledged) is refused under its old id
//! instead of voting again: see `server.rs`. A directory written before incarnations
//! existed gets one at its next start.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::types::NodeId;

/// Version of the data directory layout.
pub const DATA_DIR_FORMAT_VERSION: u32 = 1;

const META_FILE_NAME: &str = "holdfast.meta";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct MetaFile {
    format_version: u32,
    cluster_id: String,
    node_id: NodeId,
    /// Zero in a meta file written before incarnations existed.
    #[serde(default)]
    incarnation: u64,
}

/// An opened and checked data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
    cluster: ClusterId,
    node_id: NodeId,
    incarnation: u64,
    /// The meta file was written by this open (a new directory, or one whose meta file
    /// was lost).
    created: bool,
}

/// The id of the cluster a node belongs to: fixed once known, and until then (a node
/// started without one on a fresh directory) learned once and recorded in the data
/// directory. Clones share it.
#[derive(Clone, Debug)]
pub struct ClusterId {
    inner: Arc<ClusterIdInner>,
}

#[derive(Debug)]
struct ClusterIdInner {
    current: RwLock<Option<Arc<str>>>,
    /// Set when the id was taken from a peer's call in this process: such a node was
    /// reached by a cluster, and initialising another one on it is refused.
    learned_from_peer: std::sync::atomic::AtomicBool,
    /// Held while an id is checked, recorded and assigned.
    adopting: std::sync::Mutex<()>,
    /// The meta file an adopted id is recorded in, and what else it holds; none in a
    /// simulation, which keeps no directory.
    record: Option<(PathBuf, MetaFile)>,
}

/// The most bytes of a cluster id.
pub const CLUSTER_ID_BYTES_MAX: usize = 64;

/// Whether `id` can name a cluster: 1 to [`CLUSTER_ID_BYTES_MAX`] letters, digits, `.`,
/// `_` or `-`.
pub fn cluster_id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= CLUSTER_ID_BYTES_MAX
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// [`cluster_id_is_valid`] as the error a configuration or a peer's id gets.
fn check_cluster_id(id: &str) -> Result<(), Error> {
    if cluster_id_is_valid(id) {
        return Ok(());
    }
    Err(Error::InvalidConfig {
        message: format!(
            "cluster id {id:?}: must be 1 to {CLUSTER_ID_BYTES_MAX} letters, digits, '.', '_' or '-'"
        ),
    })
}

/// Writes `meta` to the meta file at `meta_path`, atomically and durably.
fn write_meta(meta_path: &Path, meta: &MetaFile) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(meta).expect("meta serialises");
    write_file_atomically(meta_path, text.as_bytes())
}

impl ClusterId {
    /// An id known from the start (or none, `""`), recorded nowhere when adopted later.
    pub fn fixed(id: &str) -> ClusterId {
        ClusterId::new(id, None)
    }

    /// `id` (none while `""`), recorded in `record`'s meta file when adopted later.
    fn new(id: &str, record: Option<(PathBuf, MetaFile)>) -> ClusterId {
        ClusterId {
            inner: Arc::new(ClusterIdInner {
                current: RwLock::new((!id.is_empty()).then(|| Arc::from(id))),
                learned_from_peer: Default::default(),
                adopting: Default::default(),
                record,
            }),
        }
    }

    /// A new random id, as `POST /cluster/init` gives a cluster: `hf-` and 16 hex digits.
    pub fn generate() -> String {
        format!("hf-{:016x}", rand::random::<u64>())
    }

    /// The id, or `None` while this node belongs to no cluster yet.
    pub fn get(&self) -> Option<Arc<str>> {
        self.inner
            .current
            .read()
            .expect("cluster id lock poisoned")
            .clone()
    }

    /// The id, or `""` while this node belongs to no cluster yet (what its calls carry).
    pub fn to_wire(&self) -> String {
        self.get().map(|id| id.to_string()).unwrap_or_default()
    }

    /// [`ClusterId::adopt`] for an id a peer's call carries; remembered, so that
    /// [`ClusterId::generate_unless_known`] does not start another cluster on this node.
    pub fn adopt_from_peer(&self, id: &str) -> Result<bool, Error> {
        let adopted = self.adopt(id)?;
        if adopted {
            self.inner
                .learned_from_peer
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(adopted)
    }

    /// For a node initialising a new cluster: when it has no id yet, a new random one,
    /// recorded before anyone hears of it. Refused (`Ok(false)`) when this node was
    /// reached by a cluster meanwhile, whose id it took: it belongs to that one.
    pub fn generate_unless_known(&self) -> Result<bool, Error> {
        if self
            .inner
            .learned_from_peer
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(false);
        }
        if self.get().is_some() {
            return Ok(true);
        }
        let adopted = self.adopt(&ClusterId::generate())?;
        Ok(adopted
            && !self
                .inner
                .learned_from_peer
                .load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Takes `id` as this node's cluster when it has none yet, recording it in the data
    /// directory (durably) before anyone sees it. Answers whether `id` is this node's
    /// cluster now: `false` when it belongs to another; an error when `id` is not a valid id
    /// or it cannot be recorded.
    pub fn adopt(&self, id: &str) -> Result<bool, Error> {
        // Adopters take turns; readers wait only for the assignment, never for the disk.
        let _adopting = self
            .inner
            .adopting
            .lock()
            .expect("cluster id adoption lock poisoned");
        if let Some(known) = self.get() {
            return Ok(*known == *id);
        }
        check_cluster_id(id)?;
        if let Some((meta_path, meta)) = &self.inner.record {
            let meta = MetaFile {
                cluster_id: id.to_owned(),
                ..meta.clone()
            };
            write_meta(meta_path, &meta)?;
        }
        *self
            .inner
            .current
            .write()
            .expect("cluster id lock poisoned") = Some(Arc::from(id));
        tracing::info!(cluster_id = id, "this node now belongs to cluster {id}");
        Ok(true)
    }
}

/// A random incarnation: never zero (zero means "not known" in a membership).
fn new_incarnation() -> u64 {
    loop {
        let incarnation = rand::random::<u64>();
        if incarnation != 0 {
            return incarnation;
        }
    }
}

impl DataDir {
    /// Opens `path` for `node_id` of `cluster_id`, creating it on first start. An empty
    /// `cluster_id` takes the one the directory records, if any; else the node belongs to
    /// no cluster until it learns one ([`ClusterId::adopt`]).
    ///
    /// Fails with [`Error::NodeIdMismatch`], [`Error::ClusterIdMismatch`] or
    /// [`Error::UnsupportedFormat`] when the directory belongs to someone else or was
    /// written by a build with another layout.
    pub fn open(path: &Path, cluster_id: &str, node_id: NodeId) -> Result<DataDir, Error> {
        if !cluster_id.is_empty() {
            check_cluster_id(cluster_id)?;
        }
        fs::create_dir_all(path).map_err(|error| Error::storage(path, error))?;
        let meta_path = path.join(META_FILE_NAME);
        let found = read_meta(&meta_path)?;
        if let Some(meta) = &found {
            check_meta(path, meta, cluster_id, node_id)?;
        }
        let created = found.is_none();
        let meta = match found {
            // Recorded, with an incarnation, and nothing to learn: as it is.
            Some(meta)
                if meta.incarnation != 0
                    && (!meta.cluster_id.is_empty() || cluster_id.is_empty()) =>
            {
                meta
            }
            found => {
                let meta = MetaFile {
                    format_version: DATA_DIR_FORMAT_VERSION,
                    cluster_id: match &found {
                        Some(meta) if !meta.cluster_id.is_empty() => meta.cluster_id.clone(),
                        _ => cluster_id.to_owned(),
                    },
                    node_id,
                    incarnation: found
                        .as_ref()
                        .map(|meta| meta.incarnation)
                        .filter(|incarnation| *incarnation != 0)
                        .unwrap_or_else(new_incarnation),
                };
                write_meta(&meta_path, &meta)?;
                meta
            }
        };
        fs::create_dir_all(path.join("snapshots")).map_err(|error| Error::storage(path, error))?;
        let cluster = ClusterId::new(&meta.cluster_id, Some((meta_path, meta.clone())));
        Ok(DataDir {
            path: path.to_owned(),
            cluster,
            node_id,
            incarnation: meta.incarnation,
            created,
        })
    }

    /// Checks the incarnation against the one the Raft log records, so that a directory
    /// whose log was wiped or replaced while its meta file survived is another incarnation
    /// too (it has forgotten its votes as surely as a wiped directory):
    /// - the log records this incarnation: nothing to do;
    /// - the log records another and the meta file is new (it was lost, the log was not):
    ///   the log's incarnation is the directory's;
    /// - the log records another, or it is empty while the meta file is not new: a new
    ///   incarnation, recorded in both;
    /// - the log records none but holds something (written before incarnations), or the
    ///   directory is new: this incarnation is recorded in the log.
    pub fn confirm_incarnation(&mut self, log: &crate::log_store::LogStore) -> Result<(), Error> {
        let renew = match log.incarnation()? {
            Some(recorded) if recorded == self.incarnation => return Ok(()),
            Some(recorded) if self.created => {
                self.rewrite_meta(recorded)?;
                return Ok(());
            }
            Some(_) => true,
            None => !self.created && log.is_empty()?,
        };
        if renew {
            let incarnation = new_incarnation();
            tracing::warn!(
                path = %self.path.display(),
                old = format!("{:016x}", self.incarnation),
                new = format!("{incarnation:016x}"),
                "the Raft log of this data directory was wiped or replaced: it becomes a new \
                 incarnation, which the cluster refuses under this node's old id"
            );
            self.rewrite_meta(incarnation)?;
        }
        log.record_incarnation(self.incarnation)
    }

    /// Rewrites the meta file with `incarnation` (before anyone else holds this directory's
    /// cluster id handle).
    fn rewrite_meta(&mut self, incarnation: u64) -> Result<(), Error> {
        let meta_path = self.path.join(META_FILE_NAME);
        let meta = MetaFile {
            format_version: DATA_DIR_FORMAT_VERSION,
            cluster_id: self.cluster.to_wire(),
            node_id: self.node_id,
            incarnation,
        };
        write_meta(&meta_path, &meta)?;
        self.cluster = ClusterId::new(&meta.cluster_id.clone(), Some((meta_path, meta)));
        self.incarnation = incarnation;
        Ok(())
    }

    /// The cluster id recorded in the directory at `path`, if it was ever opened and
    /// belongs to a cluster (so a node restarted without `--cluster-id` resumes its own
    /// cluster). Errors as [`DataDir::open`] for a meta file it cannot read.
    pub fn recorded_cluster_id(path: &Path) -> Result<Option<String>, Error> {
        Ok(read_meta(&path.join(META_FILE_NAME))?
            .map(|meta| meta.cluster_id)
            .filter(|id| !id.is_empty()))
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cluster this directory belongs to (shared: an id learned later shows here).
    pub fn cluster(&self) -> &ClusterId {
        &self.cluster
    }

    /// The node this directory belongs to (checked against its meta file by `open`).
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The directory's random incarnation, drawn when it was created (never zero).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The RocksDB directory of the log store.
    pub fn log_path(&self) -> PathBuf {
        self.path.join("raft-log")
    }

    /// The directory of snapshot files.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.path.join("snapshots")
    }
}

/// The meta file at `meta_path`, or `None` when the directory was never opened.
fn read_meta(meta_path: &Path) -> Result<Option<MetaFile>, Error> {
    if !meta_path.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(meta_path).map_err(|error| Error::storage(meta_path, error))?;
    parse_meta(meta_path, &text).map(Some)
}

fn parse_meta(meta_path: &Path, text: &str) -> Result<MetaFile, Error> {
    // Read the version first so a future layout with other fields still gets a clear
    // "unsupported format" rather than a parse error.
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| Error::Corrupt {
        what: meta_path.display().to_string(),
        message: error.to_string(),
    })?;
    let found = value
        .get("format_version")
        .and_then(|version| version.as_u64())
        .unwrap_or(0);
    if found != u64::from(DATA_DIR_FORMAT_VERSION) {
        return Err(Error::UnsupportedFormat {
            what: format!("data directory ({})", meta_path.display()),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: DATA_DIR_FORMAT_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|error| Error::Corrupt {
        what: meta_path.display().to_string(),
        message: error.to_string(),
    })
}

fn check_meta(
    path: &Path,
    meta: &MetaFile,
    cluster_id: &str,
    node_id: NodeId,
) -> Result<(), Error> {
    // An empty id on either side is not known yet: the given one is learned, the recorded
    // one resumed.
    if !meta.cluster_id.is_empty() && !cluster_id.is_empty() && meta.cluster_id != cluster_id {
        return Err(Error::ClusterIdMismatch {
            path: path.to_owned(),
            expected: cluster_id.to_owned(),
            found: meta.cluster_id.clone(),
        });
    }
    if meta.node_id != node_id {
        return Err(Error::NodeIdMismatch {
            path: path.to_owned(),
            expected: node_id,
            found: meta.node_id,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one:
/// write a temporary file, fsync it, rename it over `path`, fsync the directory.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let temporary = path.with_extension("tmp");
    let mut file =
        fs::File::create(&temporary).map_err(|error| Error::storage(&temporary, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| Error::storage(&temporary, error))?;
    drop(file);
    fs::rename(&temporary, path).map_err(|error| Error::storage(path, error))?;
    sync_parent_dir(path)
}

/// Fsyncs the directory holding `path`, so a rename into it is durable.
pub fn sync_parent_dir(path: &Path) -> Result<(), Error> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::File::open(parent)
        .and_then(|directory| directory.sync_all())
        .map_err(|error| Error::storage(parent, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_belongs_to_one_node_of_one_cluster() {
        let directory = tempfile::tempdir().unwrap();
        DataDir::open(directory.path(), "alpha", 1).unwrap();
        DataDir::open(directory.path(), "alpha", 1).unwrap();
        let other_node = DataDir::open(directory.path(), "alpha", 2).unwrap_err();
        assert_eq!(other_node.code(), "DATA_DIR_NODE_MISMATCH");
        let other_cluster = DataDir::open(directory.path(), "beta", 1).unwrap_err();
        assert_eq!(other_cluster.code(), "DATA_DIR_CLUSTER_MISMATCH");
    }

    #[test]
    fn a_directory_keeps_its_incarnation_and_a_new_one_gets_another() {
        let first = tempfile::tempdir().unwrap();
        let opened = DataDir::open(first.path(), "alpha", 1).unwrap();
        assert_ne!(opened.incarnation(), 0);
        let reopened = DataDir::open(first.path(), "alpha", 1).unwrap();
        assert_eq!(reopened.incarnation(), opened.incarnation());
        // The same node id on a wiped (new) directory is another incarnation.
        let second = tempfile::tempdir().unwrap();
        let wiped = DataDir::open(second.path(), "alpha", 1).unwrap();
        assert_ne!(wiped.incarnation(), opened.incarnation());
    }

    #[test]
    fn a_directory_from_before_incarnations_gets_one_once() {
        let directory = tempfile::tempdir().unwrap();
        fs::write(
            directory.path().join(META_FILE_NAME),
            r#"{"format_version": 1, "cluster_id": "alpha", "node_id": 1}"#,
        )
        .unwrap();
        let upgraded = DataDir::open(directory.path(), "alpha", 1).unwrap();
        assert_ne!(upgraded.incarnation(), 0);
        let again = DataDir::open(directory.path(), "alpha", 1).unwrap();
        assert_eq!(again.incarnation(), upgraded.incarnation());
        // The old directory's owner is still checked before it is upgraded.
        let other = tempfile::tempdir().unwrap();
        fs::write(
            other.path().join(META_FILE_NAME),
            r#"{"format_version": 1, "cluster_id": "beta", "node_id": 1}"#,
        )
        .unwrap();
        let error = DataDir::open(other.path(), "alpha", 1).unwrap_err();
        assert_eq!(error.code(), "DATA_DIR_CLUSTER_MISMATCH");
    }

    #[test]
    fn a_node_without_a_cluster_id_learns_one_once_and_resumes_it() {
        let directory = tempfile::tempdir().unwrap();
        let opened = DataDir::open(directory.path(), "", 1).unwrap();
        assert_eq!(opened.cluster().get(), None);
        assert_eq!(
            DataDir::recorded_cluster_id(directory.path()).unwrap(),
            None
        );
        assert!(opened.cluster().adopt("hf-0123").unwrap());
        // Learned once: another cluster's id is not taken afterwards.
        assert!(!opened.cluster().adopt("hf-4567").unwrap());
        assert_eq!(opened.cluster().get().as_deref(), Some("hf-0123"));
        // Recorded durably, with the incarnation unchanged.
        let reopened = DataDir::open(directory.path(), "", 1).unwrap();
        assert_eq!(reopened.cluster().get().as_deref(), Some("hf-0123"));
        assert_eq!(reopened.incarnation(), opened.incarnation());
        assert_eq!(
            DataDir::recorded_cluster_id(directory.path())
                .unwrap()
                .as_deref(),
            Some("hf-0123")
        );
        let other = DataDir::open(directory.path(), "hf-4567", 1).unwrap_err();
        assert_eq!(other.code(), "DATA_DIR_CLUSTER_MISMATCH");
        // An id that is not one is refused, and a node given its id up front has it.
        let fresh = tempfile::tempdir().unwrap();
        let unassigned = DataDir::open(fresh.path(), "", 2).unwrap();
        assert!(unassigned.cluster().adopt("not an id").is_err());
        assert_eq!(unassigned.cluster().get(), None);
        let given = DataDir::open(fresh.path(), "alpha", 2).unwrap();
        assert_eq!(given.cluster().get().as_deref(), Some("alpha"));
        assert_eq!(given.incarnation(), unassigned.incarnation());
        // A node a cluster reached does not initialise another one; a node given its id
        // up front, or one with none, does (with a new random id in the second case).
        let reached = ClusterId::fixed("");
        assert!(reached.adopt_from_peer("hf-0123").unwrap());
        assert!(!reached.generate_unless_known().unwrap());
        assert_eq!(reached.get().as_deref(), Some("hf-0123"));
        assert!(ClusterId::fixed("alpha").generate_unless_known().unwrap());
        let fresh_id = ClusterId::fixed("");
        assert!(fresh_id.generate_unless_known().unwrap());
        assert!(fresh_id.get().is_some_and(|id| id.starts_with("hf-")));
        assert!(ClusterId::generate().starts_with("hf-"));
        assert_ne!(ClusterId::generate(), ClusterId::generate());
    }

    #[test]
    fn a_directory_whose_raft_log_was_wiped_is_another_incarnation() {
        let directory = tempfile::tempdir().unwrap();
        let mut first = DataDir::open(directory.path(), "alpha", 1).unwrap();
        let log = crate::log_store::LogStore::open(&first.log_path()).unwrap();
        first.confirm_incarnation(&log).unwrap();
        assert_eq!(log.incarnation().unwrap(), Some(first.incarnation()));
        drop(log);

        // Restarted as it was: the same incarnation.
        let mut again = DataDir::open(directory.path(), "alpha", 1).unwrap();
        let log = crate::log_store::LogStore::open(&again.log_path()).unwrap();
        again.confirm_incarnation(&log).unwrap();
        assert_eq!(again.incarnation(), first.incarnation());
        drop(log);

        // The meta file lost, the log kept: the log's incarnation is the directory's.
        fs::remove_file(directory.path().join(META_FILE_NAME)).unwrap();
        let mut lost_meta = DataDir::open(directory.path(), "alpha", 1).unwrap();
        let log = crate::log_store::LogStore::open(&lost_meta.log_path()).unwrap();
        lost_meta.confirm_incarnation(&log).unwrap();
        assert_eq!(lost_meta.incarnation(), first.incarnation());
        drop(log);
        let reread = DataDir::open(directory.path(), "alpha", 1).unwrap();
        assert_eq!(reread.incarnation(), first.incarnation());

        // The log wiped, the meta file kept: a new incarnation, in both.
        fs::remove_dir_all(first.log_path()).unwrap();
        let mut wiped = DataDir::open(directory.path(), "alpha", 1).unwrap();
        let log = crate::log_store::LogStore::open(&wiped.log_path()).unwrap();
        wiped.confirm_incarnation(&log).unwrap();
        assert_ne!(wiped.incarnation(), first.incarnation());
        assert_eq!(log.incarnation().unwrap(), Some(wiped.incarnation()));
        drop(log);
        let reread = DataDir::open(directory.path(), "alpha", 1).unwrap();
        assert_eq!(reread.incarnation(), wiped.incarnation());
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        fs::write(
            directory.path().join(META_FILE_NAME),
            r#"{"format_version": 99, "cluster_id": "alpha", "node_id": 1}"#,
        )
        .unwrap();
        let error = DataDir::open(directory.path(), "alpha", 1).unwrap_err();
        assert_eq!(error.code(), "UNSUPPORTED_FORMAT");
        assert!(error.to_string().contains("99"), "{error}");
    }
}
