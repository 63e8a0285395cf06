//! sealgate's admission webhook: Kubernetes AdmissionReviews over HTTPS, decided by the core
//! engine with registry evidence fetched under a deadline, cached and shared between requests,
//! every decision written to an audit trail, and Prometheus metrics.

pub mod audit;
