//! ipfail: a floating-IP failover agent speaking CARP v2.
//!
//! The library holds everything the `ipfail` binary is made of, so that the
//! protocol logic can be tested without sockets (`carp::fsm`, `carp::packet`,
//! `config`) and end to end in network namespaces (`tests/`).
pub mod carp;
pub mod cli;
pub mod config;
pub mod conflict;
pub mod control;
pub mod daemon;
pub mod health;
pub mod hook;
pub mod ipmgr;
pub mod ipplan;
pub mod ipwork;
pub mod lockfile;
pub mod logging;
pub mod lograte;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod state;
pub mod status;
pub mod sys;
