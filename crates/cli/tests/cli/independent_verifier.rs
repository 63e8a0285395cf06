//! Our verdict on Sigstore bundles beside an independent verifier's (sigstore-python), on the
//! upstream fixtures and on copies with one byte changed.
