//! The Holdfast node: the HTTP API of API.md over a replication seam.
//!
//! - [`replica`]: the seam ([`Replica`]) between the HTTP edge and replication, plus the
//!   cluster clock and the request-index table an implementation needs.
//! - [`local`]: [`LocalReplica`], one in-process state machine (single-node dev mode and
//!   tests; not replicated, not durable).
//! - [`payment`]: the [`PaymentProvider`] seam and the [`SandboxProvider`];
//!   [`payment_http`]: the [`HttpPaymentProvider`]; [`refunds`]: the leader's refund worker.
//! - [`service`]: the typed service layer every edge calls: booking writes and the batch
//!   call, reads, admin inventory and cluster operations. The HTTP handlers and the gRPC
//!   services ([`grpc`]) are thin siblings over it; neither calls the other.
//! - [`app`]: the router, middleware and serving loop; handlers live in [`reads`],
//!   [`booking`], [`admin`] and [`cluster`]; JSON shapes in [`wire`]; edge validation in
//!   [`validate`]; error mapping in [`error`].
//! - [`search`]: `GET /events` and `GET /events/{event_id}` (and their gRPC calls, with
//!   [`grpc_search`]'s conversions);
//!   [`events`]: the admin listing update and event cancellation.
//! - [`backup`]: consistent backups of the replicated state and restores into an empty
//!   cluster (HTTP and gRPC over one service layer).
//! - [`expiry`]: the leader's hold-expiry ticker. [`metrics`]: Prometheus. [`auth`]: bearer
//!   keys by role.
//! - [`ui`]: the dashboard at `/ui` (static pages over the JSON API).
//!
//! Serving the API over a replica (here the single-node one):
//!
//! ```no_run
//! use std::sync::Arc;
//! use holdfast_node::{router, run_http, shutdown_signal, AppState, HttpConfig};
//! use holdfast_node::{LocalReplica, LocalReplicaConfig, SandboxProvider};
//!
//! # async fn serve() -> std::io::Result<()> {
//! let replica = LocalReplica::shared(LocalReplicaConfig::default());
//! let state = AppState::new(replica, Arc::new(SandboxProvider::default()), HttpConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7001").await?;
//! run_http(router(state), listener, shutdown_signal()).await
//! # }
//! ```
//!
//! **Invariant:** handlers never touch a state machine directly: reads go through
//! [`replica::read`], writes through [`Replica::propose`].
//! **Invariant:** input refused at the edge (400, 413) is never proposed, so it stores
//! nothing, not even an idempotency record.

#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod backup;
pub mod booking;
pub mod changes;
pub mod charges;
pub mod cluster;
pub mod demo;
pub mod error;
pub mod events;
pub mod expiry;
pub mod extract;
pub mod faults;
pub mod grpc;
pub mod grpc_search;
pub mod local;
pub mod metrics;
pub mod notifier;
pub mod openapi;
pub mod payment;
pub mod payment_http;
pub mod peer;
pub mod periodic;
pub mod raft_replica;
pub mod rate;
pub mod reads;
pub mod refunds;
pub mod replica;
pub mod runtime;
pub mod search;
pub mod service;
pub mod ui;
pub mod validate;
pub mod webhooks;
pub mod wire;

pub use app::{router, run_http, shutdown_signal, AppState, HttpConfig, ShutdownSignal};
pub use error::ApiError;
pub use local::{LocalReplica, LocalReplicaConfig};
pub use payment::{PaymentProvider, SandboxProvider};
pub use payment_http::{HttpPaymentProvider, HttpProviderConfig};
pub use replica::{NodeError, Replica};
