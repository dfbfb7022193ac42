//! The names of the storage stages' histograms, recorded through the `metrics` facade (the
//! node installs the Prometheus recorder and describes them; without a recorder, as in
//! tests, recording does nothing). They are what an operator reads when writes get slow:
//! the disk (an append's synced write), apply (how long it held the state), or a snapshot.

/// Seconds to write one append of Raft log entries and fsync it, on every node (etcd's
/// `etcd_disk_wal_fsync_duration_seconds` answers the same question).
pub const LOG_APPEND_SECONDS: &str = "holdfast_log_append_seconds";

/// Seconds apply held the state for one batch of committed entries: what reads and the
/// answers of those entries waited for.
pub const APPLY_SECONDS: &str = "holdfast_apply_seconds";

/// Seconds a snapshot's freeze held the state (waiting for its lock included): how long
/// apply and reads stopped for it.
pub const SNAPSHOT_FREEZE_SECONDS: &str = "holdfast_snapshot_freeze_seconds";

/// Seconds to encode a frozen state as a snapshot, off apply's path.
pub const SNAPSHOT_ENCODE_SECONDS: &str = "holdfast_snapshot_encode_seconds";
