//! A node's data directory.
//!
//! ```text
//! <data dir>/holdfast.meta      JSON: format version, cluster id, node id
//! <data dir>/raft-log/          RocksDB: vote, committed id, last purged id, log entries
//! <data dir>/snapshots/current.snapshot   the last durable snapshot (see state_store)
//! ```
//!
//! **Invariant:** a data directory belongs to one node of one cluster, for ever. The meta
//! file is written once, atomically, at first start; every later start checks it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::types::NodeId;

/// Version of the data directory layout.
pub const DATA_DIR_FORMAT_VERSION: u32 = 1;

const META_FILE_NAME: &str = "holdfast.meta";

#[derive(Debug, Serialize, Deserialize)]
struct MetaFile {
    format_version: u32,
    cluster_id: String,
    node_id: NodeId,
}

/// An opened and checked data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
    cluster_id: String,
    node_id: NodeId,
}

impl DataDir {
    /// Opens `path` for `node_id` of `cluster_id`, creating it on first start.
    ///
    /// Fails with [`Error::NodeIdMismatch`], [`Error::ClusterIdMismatch`] or
    /// [`Error::UnsupportedFormat`] when the directory belongs to someone else or was
    /// written by a build with another layout.
    pub fn open(path: &Path, cluster_id: &str, node_id: NodeId) -> Result<DataDir, Error> {
        if cluster_id.is_empty() {
            return Err(Error::InvalidConfig {
                message: "cluster id must not be empty".into(),
            });
        }
        fs::create_dir_all(path).map_err(|error| Error::storage(path, error))?;
        let meta_path = path.join(META_FILE_NAME);
        if let Some(meta) = read_meta(&meta_path)? {
            check_meta(path, &meta, cluster_id, node_id)?;
        } else {
            let meta = MetaFile {
                format_version: DATA_DIR_FORMAT_VERSION,
                cluster_id: cluster_id.to_owned(),
                node_id,
            };
            let text = serde_json::to_string_pretty(&meta).expect("meta serialises");
            write_file_atomically(&meta_path, text.as_bytes())?;
        }
        fs::create_dir_all(path.join("snapshots")).map_err(|error| Error::storage(path, error))?;
        Ok(DataDir {
            path: path.to_owned(),
            cluster_id: cluster_id.to_owned(),
            node_id,
        })
    }

    /// The cluster id recorded in the directory at `path`, if it was ever opened (so a node
    /// restarted without `--cluster-id` resumes its own cluster). Errors as [`DataDir::open`]
    /// for a meta file it cannot read.
    pub fn recorded_cluster_id(path: &Path) -> Result<Option<String>, Error> {
        Ok(read_meta(&path.join(META_FILE_NAME))?.map(|meta| meta.cluster_id))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
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
    if meta.cluster_id != cluster_id {
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
