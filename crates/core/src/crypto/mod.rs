//! Cryptographic material as policies and signatures carry it: PEM blocks with line-precise
//! errors ([`pem`]), public and private keys and cosign's encrypted key files ([`key`]), X.509
//! certificates ([`cert`]) and code-signing chains checked at the signing time ([`chain`]).

pub mod cert;
pub mod chain;
pub mod key;
pub mod pem;
