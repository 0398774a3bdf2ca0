//! Encryption at rest: every object a backup writes under its folder
//! (segments, registry files, the manifest's body) sealed with AES-256-GCM
//! in the STREAM construction (RustCrypto's `aes-gcm` and `aead::stream`),
//! 64 KiB per chunk, so that an object is encrypted and decrypted a chunk
//! at a time and a cut, reordered or swapped chunk fails.
//!
//! ```text
//! object = MAGIC (8) | salt (32) | nonce prefix (7) | chunk* | last chunk
//! chunk  = AES-256-GCM(64 KiB of plaintext) + tag (16)
//! ```
//!
//! Each object has its own key, SHA-256 of a domain string, the master key
//! and a random 32-byte salt, so that random nonces never repeat under one
//! key however many objects a key seals. The associated data is the object's
//! path (`<backup_id>/<relative>`): an object moved to another path or
//! backup does not open. The master key is 32 bytes given as base64 (or 64
//! hex digits); its fingerprint, which the manifest records with the key's
//! name, tells a wrong key from a missing one before anything is read.

use std::io::{self, Read};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::{OsRng, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use sha2::{Digest, Sha256};

/// First bytes of every sealed object: the format and its version.
pub const MAGIC: &[u8; 8] = b"KBENC\x01\0\0";
/// What the manifest calls the cipher.
pub const CIPHER: &str = "aes-256-gcm-stream-64k";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const SALT: usize = 32;
const NONCE_PREFIX: usize = 7;
const TAG: usize = 16;
const HEADER: usize = MAGIC.len() + SALT + NONCE_PREFIX;

/// A master key and how the manifest names it.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
    /// The name the configuration gives it (`key_id`), or its fingerprint.
    pub id: String,
    /// 16 hex digits derived from the key: the same for the same key only.
    pub fingerprint: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Why an object does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("it is not an encrypted object of kafka-backup (no `KBENC` header)")]
    NotSealed,
    #[error(
        "it does not decrypt: the key is not the one it was sealed with, or it was changed, cut or moved from another path"
    )]
    Tampered,
}

impl Key {
    /// The key in `text`: base64 of 32 bytes (`openssl rand -base64 32`) or
    /// 64 hex digits; `id` names it (its fingerprint when none).
    pub fn parse(text: &str, id: Option<&str>) -> Result<Self, String> {
        let text = text.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| {
                    "the key is neither base64 nor 64 hex digits (make one with `openssl rand -base64 32`)"
                        .to_owned()
                })?
        };
        let bytes: [u8; 32] = decoded.try_into().map_err(|v: Vec<u8>| {
            format!(
                "the key is {} bytes; AES-256 needs 32 (make one with `openssl rand -base64 32`)",
                v.len()
            )
        })?;
        let mut h = Sha256::new();
        h.update(b"kafka-backup key fingerprint v1\0");
        h.update(bytes);
        let fingerprint = hex::encode(&h.finalize()[..8]);
        Ok(Self {
            bytes,
            id: id.map_or_else(|| fingerprint.clone(), str::to_owned),
            fingerprint,
        })
    }

    fn object_cipher(&self, salt: &[u8]) -> Aes256Gcm {
        let mut h = Sha256::new();
        h.update(b"kafka-backup object key v1\0");
        h.update(self.bytes);
        h.update(salt);
        let derived: [u8; 32] = h.finalize().into();
        Aes256Gcm::new(&derived.into())
    }

    /// `plain` sealed for the object at `path`.
    pub fn seal(&self, path: &str, plain: &[u8]) -> Vec<u8> {
        let mut header = [0u8; HEADER];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        OsRng.fill_bytes(&mut header[MAGIC.len()..]);
        let salt = &header[MAGIC.len()..MAGIC.len() + SALT];
        let prefix = &header[MAGIC.len() + SALT..];
        let mut enc = EncryptorBE32::from_aead(self.object_cipher(salt), prefix.into());
        let chunks = plain.len().div_ceil(CHUNK).max(1);
        let mut out = Vec::with_capacity(HEADER + plain.len() + chunks * TAG);
        out.extend_from_slice(&header);
        // one chunk buffer, encrypted in place and appended
        let mut chunk = Vec::with_capacity(CHUNK + TAG);
        let mut rest = plain;
        while rest.len() > CHUNK {
            let (next, tail) = rest.split_at(CHUNK);
            chunk.clear();
            chunk.extend_from_slice(next);
            enc.encrypt_next_in_place(path.as_bytes(), &mut chunk)
                .expect("a chunk within the STREAM's limits encrypts");
            out.extend_from_slice(&chunk);
            rest = tail;
        }
        chunk.clear();
        chunk.extend_from_slice(rest);
        enc.encrypt_last_in_place(path.as_bytes(), &mut chunk)
            .expect("a chunk within the STREAM's limits encrypts");
        out.extend_from_slice(&chunk);
        out
    }

    /// The plaintext of `sealed`, the object at `path`, read a chunk at a time.
    pub fn reader<'a>(&self, path: &str, sealed: &'a [u8]) -> Result<Opened<'a>, CryptoError> {
        if sealed.len() < HEADER + TAG || &sealed[..MAGIC.len()] != MAGIC {
            return Err(CryptoError::NotSealed);
        }
        let salt = &sealed[MAGIC.len()..MAGIC.len() + SALT];
        let prefix = &sealed[MAGIC.len() + SALT..HEADER];
        Ok(Opened {
            dec: Some(DecryptorBE32::from_aead(
                self.object_cipher(salt),
                prefix.into(),
            )),
            rest: &sealed[HEADER..],
            aad: path.as_bytes().to_vec(),
            plain: Vec::new(),
            at: 0,
        })
    }

    /// The whole plaintext of `sealed`, the object at `path`.
    pub fn open(&self, path: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(sealed.len());
        self.reader(path, sealed)?
            .read_to_end(&mut out)
            .map_err(|_| CryptoError::Tampered)?;
        Ok(out)
    }
}

/// A sealed object being decrypted: [`Read`] gives its plaintext, one
/// checked chunk at a time (an error at the first chunk that does not open).
pub struct Opened<'a> {
    dec: Option<DecryptorBE32<Aes256Gcm>>,
    rest: &'a [u8],
    aad: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
}

impl Opened<'_> {
    fn next_chunk(&mut self) -> Result<(), CryptoError> {
        let Some(dec) = self.dec.as_mut() else {
            return Ok(());
        };
        let sealed_chunk = CHUNK + TAG;
        let payload = |msg| Payload {
            msg,
            aad: &self.aad[..],
        };
        // a full chunk with more after it is a middle one; what is left at
        // the end (up to a full chunk) is the last one, sealed as last
        self.plain = if self.rest.len() > sealed_chunk {
            let (chunk, rest) = self.rest.split_at(sealed_chunk);
            self.rest = rest;
            dec.decrypt_next(payload(chunk))
                .map_err(|_| CryptoError::Tampered)?
        } else {
            let chunk = std::mem::take(&mut self.rest);
            let dec = self.dec.take().expect("checked above");
            dec.decrypt_last(payload(chunk))
                .map_err(|_| CryptoError::Tampered)?
        };
        self.at = 0;
        Ok(())
    }
}

impl Read for Opened<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if self.dec.is_none() {
                return Ok(0);
            }
            self.next_chunk()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::parse(&hex::encode([byte; 32]), Some("k")).unwrap()
    }

    #[test]
    fn objects_of_every_size_round_trip_and_hold_no_plaintext() {
        let k = key(7);
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..size).map(|i| b"record-"[i % 7]).collect();
            let sealed = k.seal("b1/kafka/t/0/x.seg.zst", &plain);
            assert_eq!(
                sealed.len(),
                HEADER + size + size.div_ceil(CHUNK).max(1) * TAG,
                "{size}"
            );
            if size >= 7 {
                assert!(
                    !sealed.windows(7).any(|w| w == b"record-"),
                    "plaintext in the sealed bytes ({size})"
                );
            }
            assert_eq!(k.open("b1/kafka/t/0/x.seg.zst", &sealed).unwrap(), plain);
            // read in small pieces: the same bytes
            let mut r = k.reader("b1/kafka/t/0/x.seg.zst", &sealed).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1000];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, plain);
        }
    }

    #[test]
    fn a_wrong_key_path_or_cut_does_not_open() {
        let k = key(7);
        let plain = vec![42u8; 2 * CHUNK + 5];
        let sealed = k.seal("b1/a", &plain);
        assert_eq!(key(8).open("b1/a", &sealed), Err(CryptoError::Tampered));
        assert_eq!(k.open("b2/a", &sealed), Err(CryptoError::Tampered));
        // the last chunk cut off: the one before it is not sealed as last
        let cut = &sealed[..HEADER + CHUNK + TAG + CHUNK + TAG];
        assert_eq!(k.open("b1/a", cut), Err(CryptoError::Tampered));
        // a whole chunk dropped from the middle
        let mut dropped = sealed[..HEADER + CHUNK + TAG].to_vec();
        dropped.extend_from_slice(&sealed[HEADER + 2 * (CHUNK + TAG)..]);
        assert_eq!(k.open("b1/a", &dropped), Err(CryptoError::Tampered));
        let mut flipped = sealed.clone();
        flipped[HEADER + 10] ^= 1;
        assert_eq!(k.open("b1/a", &flipped), Err(CryptoError::Tampered));
        assert_eq!(
            k.open("b1/a", b"{\"plain\": 1}"),
            Err(CryptoError::NotSealed)
        );
        // the same plaintext sealed twice: other bytes (own salt and nonce)
        assert_ne!(k.seal("b1/a", &plain), sealed);
    }

    #[test]
    fn keys_read_as_base64_or_hex_and_are_told_apart_by_fingerprint() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let a = Key::parse(&b64, None).unwrap();
        let b = Key::parse(&hex::encode([1u8; 32]), Some("prod")).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.id, a.fingerprint);
        assert_eq!(b.id, "prod");
        assert_ne!(key(2).fingerprint, a.fingerprint);
        assert!(Key::parse("c2hvcnQ=", None).unwrap_err().contains("32"));
        assert!(Key::parse("not a key!", None).is_err());
        assert!(!format!("{b:?}").contains(&hex::encode([1u8; 32])));
    }
}
