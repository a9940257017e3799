//! End-to-end tests: the real crimg binary against a private containerd per test.

mod support;

mod check;
mod complete;
mod concurrency;
mod connect;
mod content;
mod daemonset;
mod export;
mod faults;
mod harness;
mod hostile;
mod import;
mod inspect;
mod interop;
mod json;
mod list;
mod options;
mod pin;
mod prune;
mod pull;
mod references;
mod registry_security;
mod run;
mod runtimes;
mod schema;
mod tour;
mod unattended;
mod watch;
mod watch_promises;
