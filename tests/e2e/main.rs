//! End-to-end tests: the real crimg binary against a private containerd per test.

mod support;

mod concurrency;
mod connect;
mod content;
mod daemonset;
mod export;
mod faults;
mod harness;
mod hostile;
mod import;
mod json;
mod list;
mod pin;
mod prune;
mod run;
mod unattended;
