//! The audit trail: every decision, stored in SQLite in the data directory.
