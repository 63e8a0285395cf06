//! (placeholder: filled by the commit that adds its tests)
