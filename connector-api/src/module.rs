//! The root module a plugin exports: its manifest and its constructor.

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RStr};
use abi_stable::{declare_root_module_statics, StableAbi};

use crate::connector::ConnectorBox;
use crate::host::HostBox;
use crate::types::{ConnectorError, Manifest};

/// Version of this interface. A plugin loads when its major version equals the engine's (for 0.x,
/// the minor too) and its minor version is not newer than the engine's.
#[cfg(not(any(feature = "foreign-interface-version", feature = "newer-interface-version")))]
pub const INTERFACE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Version of this interface, replaced by a newer minor version for loader tests.
#[cfg(all(feature = "newer-interface-version", not(feature = "foreign-interface-version")))]
pub const INTERFACE_VERSION: &str = "0.99.0";

/// Version of this interface, replaced by a foreign major version for loader tests.
#[cfg(feature = "foreign-interface-version")]
pub const INTERFACE_VERSION: &str = "99.0.0";

/// Root module of a connector plugin.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ConnectorModuleRef)))]
#[sabi(missing_field(panic))]
pub struct ConnectorModule {
    /// Describes the plugin; must not fail.
    pub manifest: extern "C" fn() -> Manifest,

    /// Creates a connector instance from its `settings` (JSON text) and the engine's host handle.
    #[sabi(last_prefix_field)]
    pub create: extern "C" fn(settings: RStr<'_>, host: HostBox) -> RResult<ConnectorBox, ConnectorError>,
}

impl RootModule for ConnectorModuleRef {
    declare_root_module_statics! {ConnectorModuleRef}

    const BASE_NAME: &'static str = "uig_connector";
    const NAME: &'static str = "uig connector";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(INTERFACE_VERSION);
}
