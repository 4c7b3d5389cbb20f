//! ABI-stable interface between the UIG engine and its connector plugins.
//!
//! This crate is the only one in UIG that names `abi_stable`. A connector plugin is a `cdylib` that
//! exports a [`ConnectorModuleRef`] root module. The engine loads it with [`load_connector_module`],
//! which checks the abi_stable header, this crate's interface version and the layout of every type
//! that crosses the boundary.
//!
//! Evolution rules:
//! - Kinds and capabilities ([`ErrorKind`], [`Capabilities`], [`RemoteState`]) are open integer
//!   newtypes, not enums, so a new value changes no layout and never breaks an old reader.
//! - A new field of [`ConnectorModule`] or of a struct that crosses the boundary, or a new method
//!   of [`Connector`] or [`Host`], changes a layout. abi_stable's check then rejects plugins built
//!   before the change ("too many fields"), although the module is a prefix type, so such a change
//!   needs a new interface minor version.

// The sabi_trait macro generates impl blocks inside a const item.
#![allow(non_local_definitions)]

mod connector;
mod host;
mod loader;
mod module;
mod types;

#[cfg(feature = "sdk")]
pub mod sdk;

pub use connector::{Connector, ConnectorBox, Connector_TO};
pub use host::{Host, HostBox, Host_TO};
pub use loader::{load_connector_module, LoadError};
pub use module::{ConnectorModule, ConnectorModuleRef, INTERFACE_VERSION};
pub use types::*;

/// Name of the symbol through which abi_stable finds a plugin's root module.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Re-exports used by the SDK macro and by the engine; connector authors need not name them.
#[doc(hidden)]
pub mod reexports {
    pub use abi_stable;
    pub use async_ffi;
    pub use abi_stable::sabi_trait::TD_Opaque;
    pub use abi_stable::std_types::{RArc, RBox, ROption, RResult, RStr, RString, RVec, Tuple2};
}
