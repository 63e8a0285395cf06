//! Kyverno conditions (`preconditions`, attestation `conditions`): `any`/`all` blocks of
//! `key`/`operator`/`value` statements over variables.
