//! airlock's integration tests: one binary, one module per feature, all driving the real
//! `airlock` binary against the real Docker engine and the real age format.

mod harness;

mod attacks;
mod cache;
mod concurrency;
mod egress;
mod encodings;
mod env_check;
mod env_network;
mod everyday;
mod exhaust;
mod faults;
mod git_objects;
mod images;
mod network;
mod proxy;
mod run;
mod schedule;
mod secrets;
mod sweep;
mod trusted;
