//! Registry snapshot types: filled in by the registry adapter work.
