//! End-to-end tests: the real crimg binary against a private containerd per test.

mod support;

mod check;
mod concurrency;
mod connect;
mod content;
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
mod registry_security;
mod run;
mod watch;
mod watch_promises;
