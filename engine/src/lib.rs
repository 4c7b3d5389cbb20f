//! UIG engine: the signed message API, the message ledger, the delivery and callback workers, and
//! the host of connector plugins.

pub mod api;
pub mod callbacks;
pub mod claims;
pub mod cli;
pub mod clients;
pub mod config;
pub mod crypto;
pub mod db;
pub mod delivery;
pub mod directory;
pub mod engine;
pub mod feeds;
pub mod finisher;
pub mod group_commit;
pub mod intake;
pub mod ledger;
pub mod limits;
pub mod params;
pub mod plugins;
pub mod retry;
pub mod scheduler;
pub mod server;
pub mod signature;
pub mod status;
pub mod timestamp;
pub mod worker;
