//! `.proto` text ⇄ `FileDescriptorProto`, as Confluent's `ProtobufSchema` does it.
//!
//! - [`decode_base64`]: a schema submitted as base64 of a serialized `FileDescriptorProto`
//!   (what the Python `ProtobufSerializer` sends); Confluent falls back to this when
//!   the text does not parse as `.proto`.
//! - [`compile`]: compiles `.proto` text with `protox` (a pure-Rust `protoc`), its imports
//!   served from the schema's references by name and from the bundled
//!   `google/protobuf/*` files. The result gives the identity key and the
//!   `format=serialized` rendering.

use std::collections::HashMap;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost::Message as _;
use prost_types::FileDescriptorProto;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::schema::ResolvedRef;

/// The name the schema being compiled gets inside the compiler (no reference can import it).
const ROOT: &str = "__sr_test_registry_root__.proto";

/// The file name Confluent gives the root file of `format=serialized` (`DEFAULT_NAME`).
pub const SERIALIZED_NAME: &str = "default";

/// Imports Confluent resolves from files it bundles but `protox` does not have. A schema
/// importing one of them (without a reference of that name) cannot be compiled here.
const UNBUNDLED_PREFIXES: [&str; 2] = ["confluent/", "google/type/"];

/// Standard base64, padding optional (Java's `Base64.getDecoder()` accepts both).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes `text` as base64 of a serialized `FileDescriptorProto`, if it is one.
pub fn decode_base64(text: &str) -> Option<FileDescriptorProto> {
    let text = text.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    {
        return None;
    }
    let bytes = BASE64.decode(text).ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Encodes bytes as standard base64 (with padding), as Confluent's `Base64.getEncoder()`.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The compiled root file: its serialized `FileDescriptorProto` without `name` (field 1)
/// and `source_code_info` (field 9), extension options kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    body: Vec<u8>,
}

impl Compiled {
    /// The identity key: equal for texts that compile to the same descriptor.
    pub fn canonical(&self) -> String {
        format!("descriptor:{}", encode_base64(&self.body))
    }

    /// The serialized `FileDescriptorProto` named `name` (`format=serialized`).
    pub fn serialized(&self, name: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + name.len() + 8);
        prost::encoding::string::encode(1, &name.to_string(), &mut out);
        out.extend_from_slice(&self.body);
        out
    }
}

/// Imports of `.proto` text that no reference covers and `protox` cannot serve.
fn unbundled_imports<'a>(imports: &'a [String], refs: &[ResolvedRef]) -> Vec<&'a str> {
    imports
        .iter()
        .filter(|i| UNBUNDLED_PREFIXES.iter().any(|p| i.starts_with(p)))
        .filter(|i| !refs.iter().any(|r| &r.name == *i))
        .map(String::as_str)
        .collect()
}

/// Compiles `text` against `refs`. `Ok(None)` when the schema or one of its references
/// imports a file Confluent bundles that is not available here (`confluent/*`,
/// `google/type/*`); `Err` with `protox`'s message when the text does not compile.
pub fn compile(
    text: &str,
    imports: &[String],
    refs: &[ResolvedRef],
    ref_imports: impl Fn(&str) -> Vec<String>,
) -> Result<Option<Compiled>, String> {
    if !unbundled_imports(imports, refs).is_empty()
        || refs
            .iter()
            .any(|r| !unbundled_imports(&ref_imports(&r.text), refs).is_empty())
    {
        return Ok(None);
    }
    let mut files: HashMap<String, String> = refs
        .iter()
        .map(|r| (r.name.clone(), r.text.clone()))
        .collect();
    files.insert(ROOT.to_string(), text.to_string());
    let mut resolver = ChainFileResolver::new();
    resolver.add(MemoryResolver { files });
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_source_info(false).include_imports(true);
    compiler.open_file(ROOT).map_err(|e| error_text(&e))?;
    let pool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(ROOT)
        .ok_or("the compiled schema is missing")?;
    let body = strip_fields(&file.encode_to_vec(), &[1, 9])
        .ok_or("the compiled descriptor could not be re-encoded")?;
    Ok(Some(Compiled { body }))
}

fn error_text(e: &protox::Error) -> String {
    // The message names the file by its internal name; the schema has none.
    e.to_string().replace(ROOT, "schema")
}

struct MemoryResolver {
    files: HashMap<String, String>,
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Copies a serialized message without the top-level fields numbered in `drop`.
fn strip_fields(bytes: &[u8], drop: &[u64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let key = read_varint(bytes, &mut pos)?;
        match key & 7 {
            0 => {
                read_varint(bytes, &mut pos)?;
            }
            1 => pos += 8,
            2 => {
                let len = usize::try_from(read_varint(bytes, &mut pos)?).ok()?;
                pos = pos.checked_add(len)?;
            }
            5 => pos += 4,
            _ => return None,
        }
        if pos > bytes.len() {
            return None;
        }
        if !drop.contains(&(key >> 3)) {
            out.extend_from_slice(&bytes[start..pos]);
        }
    }
    Some(out)
}
