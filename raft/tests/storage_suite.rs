//! openraft's own storage conformance suite against the RocksDB log store and the state
//! machine store, each build in a fresh temporary directory.

use holdfast_raft::{LogStore, StateMachineStore, TypeConfig};
use holdfast_statemachine::StateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let log_store =
            LogStore::open(&directory.path().join("raft-log")).expect("log store opens");
        let state =
            StateMachineStore::open(&directory.path().join("snapshots"), StateMachine::default())
                .expect("state machine store opens");
        Ok((directory, log_store, state))
    }
}

#[test]
fn rocksdb_stores_pass_the_openraft_suite() {
    Suite::test_all(RocksBuilder).expect("storage suite");
}
