//! Public keys, cosign's encrypted private-key files, and signing.
//!
//! * [`PublicKey`]: a PKIX (`PUBLIC KEY`) ECDSA P-256/P-384, RSA or Ed25519 key, validated when
//!   parsed (an EC point must lie on its curve), verifying with ring.
//! * [`SigningKey`]: a private key, generated (P-256, as `cosign generate-key-pair`) or decrypted
//!   from a cosign key file ([`decrypt_key_file`], [`encrypt_key_file`]): PEM
//!   `ENCRYPTED SIGSTORE PRIVATE KEY` (or the older `ENCRYPTED COSIGN PRIVATE KEY`) around JSON
//!   holding scrypt parameters and a NaCl secretbox over PKCS#8.
//!
//! Randomness is always a parameter (`&dyn SecureRandom`), never fetched here.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use ring::rand::SecureRandom;
use ring::signature::{self, KeyPair};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::crypto::pem::{self, PemError};
use crate::image::digest::{Digest, hex_encode};

/// PEM label of private keys written by cosign v2.0.1 and later (and by sealgate).
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of private keys written by cosign before v2.0.1.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// PEM label of PKIX public keys.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";

/// The kind of a public or private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (cosign's default).
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyAlgorithm::Rsa(bits) => write!(f, "RSA-{bits}"),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// The hash a signature was made over (Kyverno's `signatureAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignatureHash {
    /// SHA-256, cosign's default.
    #[default]
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl SignatureHash {
    /// Parses Kyverno's `signatureAlgorithm` value (`""` means sha256). `sha224` and anything else
    /// are refused: ring offers no SHA-224 verification.
    pub fn from_kyverno(name: &str) -> Option<SignatureHash> {
        match name {
            "" | "sha256" => Some(SignatureHash::Sha256),
            "sha384" => Some(SignatureHash::Sha384),
            "sha512" => Some(SignatureHash::Sha512),
            _ => None,
        }
    }

    /// The name as policies write it.
    pub fn name(self) -> &'static str {
        match self {
            SignatureHash::Sha256 => "sha256",
            SignatureHash::Sha384 => "sha384",
            SignatureHash::Sha512 => "sha512",
        }
    }
}

/// Why a key could not be read, decrypted or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PEM text is broken.
    #[error("{0}")]
    Pem(#[from] PemError),
    /// The DER inside a `PUBLIC KEY` block is not a SubjectPublicKeyInfo.
    #[error("the public key is not a valid PKIX SubjectPublicKeyInfo: {0}")]
    BadSpki(String),
    /// A key algorithm sealgate does not verify with.
    #[error("unsupported public key algorithm {oid}: expected ECDSA P-256/P-384, RSA or Ed25519")]
    UnsupportedAlgorithm {
        /// The algorithm (or curve) OID.
        oid: String,
    },
    /// The EC point is not on the named curve (a corrupted or made-up key).
    #[error(
        "the key is not a valid {algorithm} point: its coordinates do not lie on the curve (the key is corrupted or was not generated for this curve)"
    )]
    PointNotOnCurve {
        /// The curve.
        algorithm: KeyAlgorithm,
    },
    /// An RSA key too small or too large for ring.
    #[error("RSA keys must have 2048 to 8192 bits, this one has {0}")]
    RsaSize(usize),
    /// The key cannot verify with this hash.
    #[error("{algorithm} keys cannot verify {hash} signatures")]
    UnsupportedHash {
        /// The key algorithm.
        algorithm: KeyAlgorithm,
        /// The requested hash.
        hash: &'static str,
    },
    /// Not a cosign private key file.
    #[error(
        "not a cosign private key: expected a PEM block labelled '{SIGSTORE_PRIVATE_KEY_LABEL}' or '{COSIGN_PRIVATE_KEY_LABEL}', found '{0}'"
    )]
    NotACosignKey(String),
    /// The JSON inside the private key PEM is malformed.
    #[error("the encrypted key is malformed: {0}")]
    MalformedKeyFile(String),
    /// KDF or cipher parameters outside what cosign accepts.
    #[error(
        "unsupported encryption parameters: {0} (cosign accepts scrypt with N of 32768, 65536 or 131072, r=8, p=1, and nacl/secretbox)"
    )]
    UnsupportedEncryption(String),
    /// secretbox authentication failed.
    #[error(
        "wrong password: the private key could not be decrypted (or the key file is corrupted)"
    )]
    WrongPassword,
    /// The decrypted PKCS#8 is not a key sealgate can sign with.
    #[error("the private key cannot be used for signing: {0}")]
    UnusablePrivateKey(String),
    /// The random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A public key that verifies signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    /// What ring wants: the EC point, PKCS#1 RSAPublicKey, or the raw Ed25519 key.
    key_bytes: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.algorithm, self.fingerprint())
    }
}

impl PublicKey {
    /// Parses the single `PUBLIC KEY` PEM block in `text`.
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let block = pem::parse_one(text, PUBLIC_KEY_LABEL)?;
        PublicKey::from_spki_der(&block.der)
    }

    /// Every `PUBLIC KEY` block in `text`, in order (Kyverno splits several keys in one
    /// `publicKeys` into separate entries).
    pub fn all_from_pem(text: &str) -> Result<Vec<PublicKey>, KeyError> {
        pem::parse_blocks(text)?
            .into_iter()
            .filter(|b| b.label == PUBLIC_KEY_LABEL)
            .map(|b| PublicKey::from_spki_der(&b.der))
            .collect()
    }

    /// The public key of the first `CERTIFICATE` in `text` (to check that a `--cert` belongs to
    /// the signing key).
    pub fn from_certificate_pem(text: &str) -> Result<PublicKey, KeyError> {
        let block = pem::parse_one(text, "CERTIFICATE")?;
        let (_, cert) = x509_parser::parse_x509_certificate(&block.der)
            .map_err(|e| KeyError::BadSpki(format!("the certificate is not valid DER: {e}")))?;
        PublicKey::from_spki_der(cert.tbs_certificate.subject_pki.raw)
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let (rest, spki) =
            SubjectPublicKeyInfo::from_der(der).map_err(|e| KeyError::BadSpki(e.to_string()))?;
        if !rest.is_empty() {
            return Err(KeyError::BadSpki(format!("{} trailing bytes", rest.len())));
        }
        let oid = spki.algorithm.algorithm.to_id_string();
        let key_bytes = spki.subject_public_key.data.to_vec();
        let algorithm = match oid.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                let algorithm = match curve.as_str() {
                    OID_P256 => KeyAlgorithm::EcdsaP256,
                    OID_P384 => KeyAlgorithm::EcdsaP384,
                    _ => {
                        return Err(KeyError::UnsupportedAlgorithm {
                            oid: format!("EC curve {curve}"),
                        });
                    }
                };
                if !uncompressed_point_on_curve(algorithm, &key_bytes) {
                    return Err(KeyError::PointNotOnCurve { algorithm });
                }
                algorithm
            }
            OID_RSA => {
                let bits = match spki.parsed() {
                    Ok(ParsedKey::RSA(rsa)) => rsa.key_size(),
                    _ => return Err(KeyError::BadSpki("malformed RSA public key".into())),
                };
                if !(2048..=8192).contains(&bits) {
                    return Err(KeyError::RsaSize(bits));
                }
                KeyAlgorithm::Rsa(bits)
            }
            OID_ED25519 => {
                if key_bytes.len() != 32 {
                    return Err(KeyError::BadSpki("an Ed25519 key has 32 bytes".into()));
                }
                KeyAlgorithm::Ed25519
            }
            _ => return Err(KeyError::UnsupportedAlgorithm { oid }),
        };
        Ok(PublicKey {
            algorithm,
            spki_der: der.to_vec(),
            key_bytes,
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key as a `PUBLIC KEY` PEM block, as cosign writes `cosign.pub`.
    pub fn to_pem(&self) -> String {
        pem::encode(PUBLIC_KEY_LABEL, &self.spki_der)
    }

    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: a stable name for the key in reports.
    pub fn fingerprint(&self) -> String {
        Digest::sha256_of(&self.spki_der).to_string()
    }

    /// Short form of the fingerprint for messages: the first 12 hex characters.
    pub fn short_fingerprint(&self) -> String {
        hex_encode(&Digest::sha256_of(&self.spki_der).bytes()[..6])
    }

    /// Verifies `signature` over `message` (ASN.1 DER for ECDSA, PKCS#1 v1.5 for RSA).
    pub fn verify(
        &self,
        hash: SignatureHash,
        message: &[u8],
        signature_bytes: &[u8],
    ) -> Result<bool, KeyError> {
        use SignatureHash::{Sha256, Sha384, Sha512};
        let alg: &dyn signature::VerificationAlgorithm = match (self.algorithm, hash) {
            (KeyAlgorithm::EcdsaP256, Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP256, Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP384, Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP384, Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyAlgorithm::Rsa(_), Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyAlgorithm::Rsa(_), Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyAlgorithm::Rsa(_), Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyAlgorithm::Ed25519, _) => &signature::ED25519,
            (algorithm, hash) => {
                return Err(KeyError::UnsupportedHash {
                    algorithm,
                    hash: hash.name(),
                });
            }
        };
        Ok(signature::UnparsedPublicKey::new(alg, &self.key_bytes)
            .verify(message, signature_bytes)
            .is_ok())
    }
}

/// A private key sealgate can sign with.
pub struct SigningKey {
    pair: SigningPair,
    pkcs8: Vec<u8>,
    public: PublicKey,
}

enum SigningPair {
    EcdsaP256(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?})", self.public)
    }
}

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32-byte key.
const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl SigningKey {
    /// A new ECDSA P-256 key, as `cosign generate-key-pair` makes.
    pub fn generate(rng: &dyn SecureRandom) -> Result<SigningKey, KeyError> {
        let doc = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            rng,
        )
        .map_err(|_| KeyError::Random)?;
        SigningKey::from_pkcs8(doc.as_ref(), rng)
    }

    /// Reads a PKCS#8 private key: ECDSA P-256, Ed25519 or RSA.
    pub fn from_pkcs8(der: &[u8], rng: &dyn SecureRandom) -> Result<SigningKey, KeyError> {
        if let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            der,
            rng,
        ) {
            let spki = [P256_SPKI_PREFIX, pair.public_key().as_ref()].concat();
            let public = PublicKey::from_spki_der(&spki)?;
            return Ok(SigningKey {
                pair: SigningPair::EcdsaP256(pair),
                pkcs8: der.to_vec(),
                public,
            });
        }
        if let Ok(pair) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let spki = [ED25519_SPKI_PREFIX, pair.public_key().as_ref()].concat();
            let public = PublicKey::from_spki_der(&spki)?;
            return Ok(SigningKey {
                pair: SigningPair::Ed25519(pair),
                pkcs8: der.to_vec(),
                public,
            });
        }
        if let Ok(pair) = signature::RsaKeyPair::from_pkcs8(der) {
            let pkcs1 = pair.public().as_ref().to_vec();
            let spki = rsa_spki(&pkcs1);
            let public = PublicKey::from_spki_der(&spki)?;
            return Ok(SigningKey {
                pair: SigningPair::Rsa(pair),
                pkcs8: der.to_vec(),
                public,
            });
        }
        if signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der, rng)
            .is_ok()
        {
            return Err(KeyError::UnusablePrivateKey(
                "ECDSA P-384 keys cannot sign cosign's SHA-256 signatures here; use a P-256 key"
                    .into(),
            ));
        }
        Err(KeyError::UnusablePrivateKey(
            "not a PKCS#8 ECDSA P-256, Ed25519 or RSA (2048-8192 bit) private key".into(),
        ))
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The PKCS#8 DER of the key.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs `message` as cosign does: ECDSA-SHA256 (ASN.1 DER), RSA PKCS#1 v1.5 SHA-256, or
    /// Ed25519 over the message itself.
    pub fn sign(&self, rng: &dyn SecureRandom, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            SigningPair::EcdsaP256(pair) => pair
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Random),
            SigningPair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            SigningPair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, rng, message, &mut sig)
                    .map_err(|_| KeyError::Random)?;
                Ok(sig)
            }
        }
    }
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo.
/// Whether `point` is an uncompressed SEC1 point (`04 ‖ x ‖ y`) on the curve of `algorithm`
/// (ring verifies only uncompressed points; RustCrypto does the field arithmetic).
fn uncompressed_point_on_curve(algorithm: KeyAlgorithm, point: &[u8]) -> bool {
    if point.first() != Some(&0x04) {
        return false;
    }
    match algorithm {
        KeyAlgorithm::EcdsaP256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
        KeyAlgorithm::EcdsaP384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
        _ => false,
    }
}

fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let alg: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(pkcs1);
    let bit_string = der_tlv(0x03, &bit_string);
    der_tlv(0x30, &[alg, &bit_string].concat())
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// scrypt work factor of a key file: cosign's three accepted values of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScryptCost {
    /// N = 2^15, cosign before v2.2 and containers/image.
    Legacy,
    /// N = 2^16, cosign v2.2 and later: the default.
    Standard,
    /// N = 2^17, the OWASP recommendation.
    Owasp,
}

impl ScryptCost {
    fn log_n(self) -> u8 {
        match self {
            ScryptCost::Legacy => 15,
            ScryptCost::Standard => 16,
            ScryptCost::Owasp => 17,
        }
    }

    fn from_n(n: u64) -> Option<ScryptCost> {
        match n {
            32_768 => Some(ScryptCost::Legacy),
            65_536 => Some(ScryptCost::Standard),
            131_072 => Some(ScryptCost::Owasp),
            _ => None,
        }
    }
}

/// The JSON inside a cosign private-key PEM (go-securesystemslib `encrypted`).
#[derive(serde::Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(serde::Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(serde::Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(serde::Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn scrypt_key(password: &[u8], salt: &[u8], cost: ScryptCost) -> Result<[u8; 32], KeyError> {
    let params = scrypt::Params::new(cost.log_n(), 8, 1, 32)
        .map_err(|e| KeyError::UnsupportedEncryption(e.to_string()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|e| KeyError::UnsupportedEncryption(e.to_string()))?;
    Ok(key)
}

/// A private-key file as found on disk: cosign's encrypted format, which needs a password, or a
/// plain PEM key from another tool (an enterprise PKI, `openssl`), which does not.
#[derive(Debug)]
pub enum PrivateKeyFile {
    /// `ENCRYPTED SIGSTORE PRIVATE KEY` or `ENCRYPTED COSIGN PRIVATE KEY`: decrypt with
    /// [`decrypt_key_file`].
    Encrypted,
    /// `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC 1, P-256) or `RSA PRIVATE KEY` (PKCS#1).
    Plain(Box<SigningKey>),
}

impl PrivateKeyFile {
    /// Reads the first PEM block of `text` and decides which kind of key file it is.
    pub fn parse(text: &str, rng: &dyn SecureRandom) -> Result<PrivateKeyFile, KeyError> {
        let blocks = pem::parse_blocks(text)?;
        let Some(block) = blocks.into_iter().next() else {
            return Err(KeyError::NotACosignKey("no PEM block".into()));
        };
        match block.label.as_str() {
            SIGSTORE_PRIVATE_KEY_LABEL | COSIGN_PRIVATE_KEY_LABEL => Ok(PrivateKeyFile::Encrypted),
            "PRIVATE KEY" => {
                SigningKey::from_pkcs8(&block.der, rng).map(|k| PrivateKeyFile::Plain(Box::new(k)))
            }
            "EC PRIVATE KEY" => SigningKey::from_pkcs8(&sec1_p256_to_pkcs8(&block.der), rng)
                .map(|k| PrivateKeyFile::Plain(Box::new(k))),
            "RSA PRIVATE KEY" => SigningKey::from_pkcs8(&rsa_pkcs1_to_pkcs8(&block.der), rng)
                .map(|k| PrivateKeyFile::Plain(Box::new(k))),
            other => Err(KeyError::NotACosignKey(other.to_string())),
        }
    }
}

/// Wraps a SEC 1 `ECPrivateKey` for P-256 in PKCS#8.
fn sec1_p256_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { id-ecPublicKey, prime256v1 }
    let alg: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    der_tlv(
        0x30,
        &[&[0x02, 0x01, 0x00][..], alg, &der_tlv(0x04, sec1)].concat(),
    )
}

/// Wraps a PKCS#1 `RSAPrivateKey` in PKCS#8.
fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let alg: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    der_tlv(
        0x30,
        &[&[0x02, 0x01, 0x00][..], alg, &der_tlv(0x04, pkcs1)].concat(),
    )
}

/// Decrypts a cosign private-key file (either label, N of 2^15, 2^16 or 2^17).
pub fn decrypt_key_file(
    text: &str,
    password: &[u8],
    rng: &dyn SecureRandom,
) -> Result<SigningKey, KeyError> {
    EncryptedKeyFile::parse(text)?.decrypt(password, rng)
}

/// A cosign encrypted key file, read and checked up to the point where only the password is
/// missing: the scrypt cost is one cosign writes, the salt, nonce and ciphertext are base64 and
/// the nonce has its 24 bytes.
#[derive(Debug)]
pub struct EncryptedKeyFile {
    cost: ScryptCost,
    salt: Vec<u8>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl EncryptedKeyFile {
    /// Reads the first PEM block of `text` as a cosign encrypted key (either label).
    pub fn parse(text: &str) -> Result<EncryptedKeyFile, KeyError> {
        let blocks = pem::parse_blocks(text)?;
        let Some(block) = blocks.into_iter().next() else {
            return Err(KeyError::NotACosignKey("no PEM block".into()));
        };
        if block.label != SIGSTORE_PRIVATE_KEY_LABEL && block.label != COSIGN_PRIVATE_KEY_LABEL {
            return Err(KeyError::NotACosignKey(block.label));
        }
        let ek: EncryptedKey = serde_json::from_slice(&block.der)
            .map_err(|e| KeyError::MalformedKeyFile(e.to_string()))?;
        if ek.kdf.name != "scrypt" {
            return Err(KeyError::UnsupportedEncryption(format!(
                "kdf '{}'",
                ek.kdf.name
            )));
        }
        if ek.cipher.name != "nacl/secretbox" {
            return Err(KeyError::UnsupportedEncryption(format!(
                "cipher '{}'",
                ek.cipher.name
            )));
        }
        let cost = match ScryptCost::from_n(ek.kdf.params.n) {
            Some(c) if ek.kdf.params.r == 8 && ek.kdf.params.p == 1 => c,
            _ => {
                return Err(KeyError::UnsupportedEncryption(format!(
                    "scrypt N={} r={} p={}",
                    ek.kdf.params.n, ek.kdf.params.r, ek.kdf.params.p
                )));
            }
        };
        let b64 = |field: &str, v: &str| {
            STANDARD
                .decode(v)
                .map_err(|e| KeyError::MalformedKeyFile(format!("{field} is not base64: {e}")))
        };
        let salt = b64("kdf.salt", &ek.kdf.salt)?;
        let nonce = b64("cipher.nonce", &ek.cipher.nonce)?;
        let ciphertext = b64("ciphertext", &ek.ciphertext)?;
        if nonce.len() != 24 {
            return Err(KeyError::MalformedKeyFile(format!(
                "the nonce has {} bytes, not 24",
                nonce.len()
            )));
        }
        Ok(EncryptedKeyFile {
            cost,
            salt,
            nonce,
            ciphertext,
        })
    }

    /// The scrypt cost the file was written with.
    pub fn cost(&self) -> ScryptCost {
        self.cost
    }

    /// Derives the key from `password` (scrypt: the slow part) and opens the secretbox.
    pub fn decrypt(&self, password: &[u8], rng: &dyn SecureRandom) -> Result<SigningKey, KeyError> {
        let key = scrypt_key(password, &self.salt, self.cost)?;
        let cipher = XSalsa20Poly1305::new((&key).into());
        let plain = cipher
            .decrypt(self.nonce.as_slice().into(), self.ciphertext.as_slice())
            .map_err(|_| KeyError::WrongPassword)?;
        SigningKey::from_pkcs8(&plain, rng)
    }
}

/// Encrypts `key` into a cosign key file: PEM `ENCRYPTED SIGSTORE PRIVATE KEY`, scrypt at `cost`,
/// NaCl secretbox, byte for byte the JSON layout cosign writes.
pub fn encrypt_key_file(
    key: &SigningKey,
    password: &[u8],
    cost: ScryptCost,
    rng: &dyn SecureRandom,
) -> Result<String, KeyError> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rng.fill(&mut salt).map_err(|_| KeyError::Random)?;
    rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let sym = scrypt_key(password, &salt, cost)?;
    let cipher = XSalsa20Poly1305::new((&sym).into());
    let ciphertext = cipher
        .encrypt((&nonce).into(), key.pkcs8_der())
        .map_err(|_| KeyError::UnusablePrivateKey("encryption failed".into()))?;
    let json = format!(
        r#"{{"kdf":{{"name":"scrypt","params":{{"N":{},"r":8,"p":1}},"salt":"{}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{}"}},"ciphertext":"{}"}}"#,
        1u64 << cost.log_n(),
        STANDARD.encode(salt),
        STANDARD.encode(nonce),
        STANDARD.encode(ciphertext)
    );
    Ok(pem::encode(SIGSTORE_PRIVATE_KEY_LABEL, json.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    const EMPTY_PW_KEY: &str =
        include_str!("../../testdata/keys/cosign_generated_encrypted_empty_private.key");
    const LEGACY_KEY: &str = include_str!("../../testdata/keys/ecdsa_encrypted_private.key");
    const SEED_PROD_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----";
    const SEED_DEV_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyctVd7iEcnessRQjU917hmKO6JWV\nGHpDguIyakZA8nXRh950IZbRj8Ra/N9sbqOPZrfM5/KAQN0/KjHcorm/J5==\n-----END PUBLIC KEY-----";

    #[test]
    fn cosign_generated_key_with_empty_password_loads() {
        let rng = SystemRandom::new();
        let key = decrypt_key_file(EMPTY_PW_KEY, b"", &rng).unwrap();
        assert_eq!(key.public_key().algorithm(), KeyAlgorithm::EcdsaP256);
        assert_eq!(
            decrypt_key_file(EMPTY_PW_KEY, b"x", &rng).unwrap_err(),
            KeyError::WrongPassword
        );
    }

    #[test]
    fn legacy_cosign_label_with_n_32768_loads() {
        let rng = SystemRandom::new();
        let key = decrypt_key_file(LEGACY_KEY, b"123", &rng).unwrap();
        let sig = key.sign(&rng, b"payload").unwrap();
        assert!(
            key.public_key()
                .verify(SignatureHash::Sha256, b"payload", &sig)
                .unwrap()
        );
        assert!(
            !key.public_key()
                .verify(SignatureHash::Sha256, b"payloaD", &sig)
                .unwrap()
        );
    }

    #[test]
    fn generate_encrypt_decrypt_round_trip_at_every_cost() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        for cost in [ScryptCost::Legacy, ScryptCost::Standard, ScryptCost::Owasp] {
            let file = encrypt_key_file(&key, b"pw", cost, &rng).unwrap();
            assert!(file.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
            let back = decrypt_key_file(&file, b"pw", &rng).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            assert_eq!(back.pkcs8_der().len(), 138, "P-256 PKCS#8 as Go writes it");
        }
    }

    #[test]
    fn key_file_json_has_cosigns_layout() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let file = encrypt_key_file(&key, b"", ScryptCost::Standard, &rng).unwrap();
        let block = pem::parse_one(&file, SIGSTORE_PRIVATE_KEY_LABEL).unwrap();
        let json = String::from_utf8(block.der).unwrap();
        assert!(
            json.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#
            ),
            "{json}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            STANDARD
                .decode(v["ciphertext"].as_str().unwrap())
                .unwrap()
                .len(),
            154
        );
    }

    #[test]
    fn edited_parameters_are_refused() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let file = encrypt_key_file(&key, b"", ScryptCost::Legacy, &rng).unwrap();
        let block = pem::parse_one(&file, SIGSTORE_PRIVATE_KEY_LABEL).unwrap();
        let json = String::from_utf8(block.der)
            .unwrap()
            .replace("\"N\":32768", "\"N\":1024");
        let edited = pem::encode(SIGSTORE_PRIVATE_KEY_LABEL, json.as_bytes());
        assert!(matches!(
            decrypt_key_file(&edited, b"", &rng),
            Err(KeyError::UnsupportedEncryption(_))
        ));
        let public = pem::encode("EC PRIVATE KEY", b"x");
        assert!(
            matches!(decrypt_key_file(&public, b"", &rng), Err(KeyError::NotACosignKey(l)) if l == "EC PRIVATE KEY")
        );
    }

    #[test]
    fn seed_keys_production_is_valid_development_is_not_a_point() {
        let k = PublicKey::from_pem(SEED_PROD_KEY).unwrap();
        assert_eq!(k.algorithm(), KeyAlgorithm::EcdsaP256);
        assert_eq!(PublicKey::from_pem(&k.to_pem()).unwrap(), k);
        let err = PublicKey::from_pem(SEED_DEV_KEY).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::PointNotOnCurve {
                    algorithm: KeyAlgorithm::EcdsaP256
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn ed25519_and_rsa_keys_sign_and_verify() {
        let rng = SystemRandom::new();
        let ed = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = SigningKey::from_pkcs8(ed.as_ref(), &rng).unwrap();
        assert_eq!(key.public_key().algorithm(), KeyAlgorithm::Ed25519);
        let sig = key.sign(&rng, b"m").unwrap();
        assert!(
            key.public_key()
                .verify(SignatureHash::Sha256, b"m", &sig)
                .unwrap()
        );
        let reparsed = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert!(reparsed.verify(SignatureHash::Sha256, b"m", &sig).unwrap());
    }

    #[test]
    fn plain_pem_private_keys_are_read_without_a_password() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let pkcs8 = pem::encode("PRIVATE KEY", key.pkcs8_der());
        let PrivateKeyFile::Plain(back) = PrivateKeyFile::parse(&pkcs8, &rng).unwrap() else {
            panic!()
        };
        assert_eq!(back.public_key(), key.public_key());
        // The SEC 1 key is the last 109 bytes of ring's 138-byte P-256 PKCS#8 document.
        let sec1 = &key.pkcs8_der()[key.pkcs8_der().len() - 0x6d..];
        assert_eq!(sec1[0], 0x30);
        let PrivateKeyFile::Plain(back) =
            PrivateKeyFile::parse(&pem::encode("EC PRIVATE KEY", sec1), &rng).unwrap()
        else {
            panic!()
        };
        assert_eq!(back.public_key(), key.public_key());
        assert!(matches!(
            PrivateKeyFile::parse(EMPTY_PW_KEY, &rng).unwrap(),
            PrivateKeyFile::Encrypted
        ));
        assert!(matches!(
            PrivateKeyFile::parse(&pem::encode("CERTIFICATE", b"x"), &rng),
            Err(KeyError::NotACosignKey(_))
        ));
    }

    #[test]
    fn unsupported_hash_is_an_error_not_a_failed_signature() {
        let k = PublicKey::from_pem(SEED_PROD_KEY).unwrap();
        assert!(matches!(
            k.verify(SignatureHash::Sha512, b"", b""),
            Err(KeyError::UnsupportedHash { .. })
        ));
        assert_eq!(SignatureHash::from_kyverno("sha224"), None);
        assert_eq!(SignatureHash::from_kyverno(""), Some(SignatureHash::Sha256));
    }
}

#[cfg(test)]
mod p384_tests {
    #![allow(clippy::unwrap_used)]

    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

    use super::*;

    /// An ECDSA P-384 public key (PKIX PEM, as `openssl ec -pubout` writes it) verifies a
    /// SHA-384 signature over the exact bytes, and nothing else.
    #[test]
    fn ecdsa_p384_public_keys_verify() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // SubjectPublicKeyInfo: id-ecPublicKey, secp384r1, the uncompressed point.
        let mut spki = vec![
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        let key = PublicKey::from_pem(&pem).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP384);
        let message = b"{\"critical\":{}}";
        let signature = pair.sign(&rng, message).unwrap();
        assert!(
            key.verify(SignatureHash::Sha384, message, signature.as_ref())
                .unwrap()
        );
        assert!(
            !key.verify(
                SignatureHash::Sha384,
                b"{\"critical\":{ }}",
                signature.as_ref()
            )
            .unwrap()
        );
    }
}

#[cfg(test)]
mod point_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const G256: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
    const G384: &str = "04aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab73617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f";

    fn hex(s: &str) -> Vec<u8> {
        crate::image::digest::hex_decode(s).unwrap()
    }

    #[test]
    fn generators_are_on_their_curves() {
        assert!(uncompressed_point_on_curve(
            KeyAlgorithm::EcdsaP256,
            &hex(G256)
        ));
        assert!(uncompressed_point_on_curve(
            KeyAlgorithm::EcdsaP384,
            &hex(G384)
        ));
        assert!(
            !uncompressed_point_on_curve(KeyAlgorithm::EcdsaP256, &hex(G384)),
            "wrong length"
        );
    }

    #[test]
    fn a_changed_coordinate_is_off_the_curve() {
        let mut g = hex(G256);
        for i in 1..g.len() {
            g[i] ^= 1;
            assert!(
                !uncompressed_point_on_curve(KeyAlgorithm::EcdsaP256, &g),
                "flip at byte {i}"
            );
            g[i] ^= 1;
        }
        g[0] = 0x02;
        assert!(
            !uncompressed_point_on_curve(KeyAlgorithm::EcdsaP256, &g[..33]),
            "compressed points are not accepted"
        );
    }
}
