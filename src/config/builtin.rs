//! The plugins bundled in the binary, named in a config as `builtin:NAME`.

/// How a `[[plugins]] path` names a plugin bundled in the binary: `builtin:NAME`.
pub const BUILTIN_PLUGIN_PREFIX: &str = "builtin:";
/// The plugins bundled in the binary (the WAT examples of `plugins/examples/`), by name, so that a
/// config that uses them works wherever it is copied.
pub(super) const BUILTIN_PLUGINS: &[(&str, &str)] =
    &[("mask_selectors", include_str!("../../plugins/examples/mask_selectors.wat"))];
