//! Loading a plugin library file and checking that it matches this interface.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::sabi_types::VersionStrings;

use crate::module::{ConnectorModuleRef, INTERFACE_VERSION};

/// A plugin file that could not be used, with one line of explanation naming the file and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The library file.
    pub path: PathBuf,
    /// One line: what is wrong and how to fix it.
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for LoadError {}

/// Loads the library at `path` and returns its root module after checking the abi_stable header,
/// the interface version and the layout of every type in the module.
///
/// The library stays loaded for the life of the process, as abi_stable requires.
pub fn load_connector_module(path: &Path) -> Result<ConnectorModuleRef, LoadError> {
    let failure = |reason: String| LoadError { path: path.to_path_buf(), reason };

    if !path.is_file() {
        return Err(failure(
            "file not found: build the plugin (cargo build --release) and check plugins_dir and library in the config"
                .to_string(),
        ));
    }

    let header = lib_header_from_path(path).map_err(|error| failure(describe(error)))?;
    // abi_stable 0.11 accepts a plugin of a newer 0.x minor (0.2 in an engine of 0.1) and leaves it
    // to the layout check. Such a plugin may rely on methods this engine lacks, so reject it here.
    let plugin = header.version_strings();
    if let (Ok(plugin), Ok(engine)) = (plugin.parsed(), VersionStrings::new(INTERFACE_VERSION).parsed()) {
        let newer_minor = plugin.major == engine.major && plugin.minor > engine.minor;
        if newer_minor {
            return Err(failure(format!(
                "was built against connector interface {}.{}.{}, newer than this engine's {INTERFACE_VERSION}: \
                 upgrade the engine or rebuild the plugin against uig-connector-api {INTERFACE_VERSION}",
                plugin.major, plugin.minor, plugin.patch
            )));
        }
    }
    header.init_root_module::<ConnectorModuleRef>().map_err(|error| failure(describe(error)))
}

/// Turns an abi_stable error into one line that names the versions and the fix.
fn describe(error: LibraryError) -> String {
    match error {
        LibraryError::OpenError { err, .. } => {
            format!("cannot be opened as a shared library ({err}): check that it is a plugin built for this platform")
        }
        LibraryError::GetSymbolError { .. } => {
            "is not a UIG connector plugin (no abi_stable root module): export one with uig_connector_api::export_connector!"
                .to_string()
        }
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => format!(
            "was built against connector interface {actual_version}, this engine provides {INTERFACE_VERSION}: \
             rebuild the plugin against uig-connector-api {INTERFACE_VERSION}"
        ),
        LibraryError::ParseVersionError(error) => {
            format!("has an unreadable interface version ({error}): rebuild the plugin against uig-connector-api {INTERFACE_VERSION}")
        }
        LibraryError::AbiInstability(error) => {
            let first_line = error.to_string().lines().next().unwrap_or_default().to_string();
            format!(
                "has types whose layout differs from connector interface {INTERFACE_VERSION} ({first_line}): \
                 rebuild the plugin against uig-connector-api {INTERFACE_VERSION}"
            )
        }
        LibraryError::InvalidAbiHeader(header) => format!(
            "was built with an incompatible abi_stable ({header:?}): rebuild the plugin against uig-connector-api {INTERFACE_VERSION}"
        ),
        LibraryError::InvalidCAbi { .. } => {
            "was built by a Rust compiler with another C ABI: rebuild the plugin with this engine's toolchain".to_string()
        }
        LibraryError::RootModule { err, .. } => format!("failed while exporting its root module: {err}"),
        LibraryError::Many(errors) => {
            errors.into_iter().map(describe).collect::<Vec<_>>().join("; ")
        }
    }
}
