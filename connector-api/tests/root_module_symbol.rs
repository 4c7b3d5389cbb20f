//! Pins the exported symbol name that `export_connector!` hard-codes to abi_stable's own.

#[test]
fn export_name_matches_abi_stable() {
    assert_eq!(
        uig_connector_api::reexports::abi_stable::library::ROOT_MODULE_LOADER_NAME,
        uig_connector_api::ROOT_MODULE_SYMBOL,
    );
}
