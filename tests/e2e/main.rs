//! End-to-end tests: the whole suite on free ports against a fresh database
//! per test, spoken to only through the gateway with generated clients (and,
//! where a test is about what a backend accepts, directly to that backend).

mod bench;
mod budgets;
mod cart;
mod catalog;
mod checkout;
mod connect;
mod costs;
mod databases;
mod edge;
mod events;
mod garbage;
mod gateway;
mod harness;
mod hostile;
mod identity;
mod inventory;
mod metrics;
mod orders;
mod pictures;
mod policy;
mod processes;
mod reporting;
mod rest;
mod restore;
mod search_box;
mod search_index;
mod seed;
mod tokens;
mod traces;
mod walkthrough;
