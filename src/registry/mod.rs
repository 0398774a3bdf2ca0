//! The Schema Registry adapter: filled in by the registry adapter work.
