//! Client credentials at rest: secrets encrypted with the master key, tokens stored as hashes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The key that encrypts client secrets (XChaCha20-Poly1305, 32 bytes).
#[derive(Clone)]
pub struct MasterKey(Key);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// A master key or ciphertext that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid master key: expected 64 hex characters (32 bytes), generate one with `uig keygen`")]
    InvalidKey,
    #[error("cannot decrypt a stored secret: the master key differs from the one it was stored with")]
    Decrypt,
}

impl MasterKey {
    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<MasterKey, CryptoError> {
        let bytes = hex::decode(text.trim()).map_err(|_| CryptoError::InvalidKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::InvalidKey);
        }
        Ok(MasterKey(*Key::from_slice(&bytes)))
    }

    /// Generates a random key and returns it as hex.
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    /// Encrypts `plaintext` into `base64(nonce || ciphertext)`.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher.encrypt(&nonce, plaintext.as_bytes()).expect("XChaCha20-Poly1305 encryption cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        BASE64.encode(sealed)
    }

    /// Decrypts what [`MasterKey::encrypt`] produced.
    pub fn decrypt(&self, sealed: &str) -> Result<String, CryptoError> {
        let bytes = BASE64.decode(sealed).map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < 24 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let cipher = XChaCha20Poly1305::new(&self.0);
        let plaintext = cipher.decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plaintext).map_err(|_| CryptoError::Decrypt)
    }
}

/// Returns the lowercase hex SHA-256 of a token, the form stored in the database.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Returns a random URL-safe credential of `bytes` random bytes, prefixed (`tok_...`, `sec_...`).
pub fn random_credential(prefix: &str, bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    format!("{prefix}_{}", hex::encode(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trips() {
        let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let sealed = key.encrypt("secret-demo");
        assert!(!sealed.contains("secret-demo"));
        assert_eq!(key.decrypt(&sealed).unwrap(), "secret-demo");
    }

    #[test]
    fn other_key_cannot_decrypt() {
        let sealed = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap().encrypt("x");
        let other = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        assert!(matches!(other.decrypt(&sealed), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn short_key_is_rejected() {
        assert!(matches!(MasterKey::from_hex("abcd"), Err(CryptoError::InvalidKey)));
    }
}
