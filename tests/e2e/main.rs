//! End-to-end tests: the real crimg binary against a private containerd per test.

mod support;

mod connect;
mod content;
mod export;
mod harness;
mod hostile;
mod import;
mod json;
mod list;
mod pin;
mod prune;
mod run;
