//! Protobuf: a syntactic parser for `.proto` text, compilation to a `FileDescriptorProto`
//! with `protox` (module `descriptor`), schemas submitted as base64 descriptors (module `render`),
//! and a documented compatibility subset.
//!
//! Validation covers the file structure: `syntax`, `package`, `import`, `option`, and
//! `message` / `enum` / `service` / `extend` blocks with well-formed fields
//! (`[label] type name = number [options];`, `map<k, v>`, `oneof`, `reserved`). At least one
//! definition is required. Imports must be covered by a reference or be a well-known
//! `google/protobuf/*`, `google/type/*` or `confluent/*` file. Then the text is compiled
//! against its references (unless it needs a `confluent/*` or `google/type/*` file, which
//! Confluent bundles and `protox` does not); a compile error is an invalid schema.
//!
//! A submission that is not `.proto` text but base64 of a serialized `FileDescriptorProto`
//! is rendered to `.proto` text, which is then handled as if submitted.
//!
//! The stored text is the submission as given (the rendering for a descriptor; with
//! `normalize`, the token stream re-joined). The canonical key is the compiled descriptor
//! (the token stream when not compiled), so whitespace, comments and the text / descriptor
//! form do not make two schemas different.
//!
//! Compatibility ("can `reader` read what `writer` wrote"): a field number present in both
//! with a wire-incompatible type, a message of the writer missing from the reader, a
//! `required` field of the reader absent in the writer, or a `required` field of the writer
//! absent in the reader.

use std::collections::BTreeMap;

use super::{Parsed, ResolvedRef};

mod descriptor;
mod render;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Number(String),
    Str(String),
    Punct(char),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(s) | Token::Number(s) => s.clone(),
            Token::Str(s) => format!("\"{s}\""),
            Token::Punct(c) => c.to_string(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            if i + 1 >= chars.len() {
                return Err("unterminated comment".into());
            }
            i += 2;
        } else if c == '"' || c == '\'' {
            let quote = c;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => {
                        s.push('\\');
                        if let Some(n) = chars.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some(ch) if *ch == quote => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_ascii_alphabetic()
            || c == '_'
            || (c == '.'
                && chars
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_'))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '+'
                    || chars[i] == '-')
            {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if "{}[]()<>;=,:-+".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(tokens)
}

/// A field as seen by the compatibility rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    type_name: String,
    label: String,
}

/// The parts of a `.proto` file the rules need.
#[derive(Debug, Default)]
struct ProtoFile {
    imports: Vec<String>,
    messages: BTreeMap<String, BTreeMap<i64, Field>>,
    definitions: usize,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    file: ProtoFile,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Result<Token, String> {
        let t = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or("unexpected end of input")?;
        self.pos += 1;
        Ok(t)
    }

    fn expect_punct(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Token::Punct(p) if p == c => Ok(()),
            other => Err(format!("expected '{c}' but found '{}'", other.text())),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Ident(s) => Ok(s),
            other => Err(format!(
                "expected an identifier but found '{}'",
                other.text()
            )),
        }
    }

    fn skip_statement(&mut self) -> Result<(), String> {
        let mut depth = 0i32;
        loop {
            match self.next()? {
                Token::Punct(';') if depth == 0 => return Ok(()),
                Token::Punct('{') | Token::Punct('[') | Token::Punct('(') => depth += 1,
                Token::Punct('}') | Token::Punct(']') | Token::Punct(')') => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return Err("unbalanced brackets".into());
            }
        }
    }

    fn skip_block(&mut self) -> Result<(), String> {
        self.expect_punct('{')?;
        let mut depth = 1;
        while depth > 0 {
            match self.next()? {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, package: &mut String) -> Result<(), String> {
        while let Some(token) = self.peek().cloned() {
            match token {
                Token::Punct(';') => self.pos += 1,
                Token::Ident(word) => match word.as_str() {
                    "syntax" | "edition" => {
                        self.pos += 1;
                        self.expect_punct('=')?;
                        match self.next()? {
                            Token::Str(s)
                                if ["proto2", "proto3"].contains(&s.as_str())
                                    || word == "edition" => {}
                            other => return Err(format!("unknown syntax {}", other.text())),
                        }
                        self.expect_punct(';')?;
                    }
                    "package" => {
                        self.pos += 1;
                        *package = self.ident()?;
                        self.expect_punct(';')?;
                    }
                    "import" => {
                        self.pos += 1;
                        if matches!(self.peek(), Some(Token::Ident(w)) if w == "public" || w == "weak")
                        {
                            self.pos += 1;
                        }
                        match self.next()? {
                            Token::Str(s) => self.file.imports.push(s),
                            other => {
                                return Err(format!(
                                    "expected import path, found {}",
                                    other.text()
                                ));
                            }
                        }
                        self.expect_punct(';')?;
                    }
                    "option" => {
                        self.pos += 1;
                        self.skip_statement()?;
                    }
                    "message" => {
                        self.pos += 1;
                        let name = self.ident()?;
                        self.file.definitions += 1;
                        self.message(&qualify(package, &name))?;
                    }
                    "enum" => {
                        self.pos += 1;
                        self.ident()?;
                        self.file.definitions += 1;
                        self.enum_body()?;
                    }
                    "service" => {
                        self.pos += 1;
                        self.ident()?;
                        self.file.definitions += 1;
                        self.skip_block()?;
                    }
                    "extend" => {
                        self.pos += 1;
                        self.ident()?;
                        self.skip_block()?;
                    }
                    other => return Err(format!("unexpected '{other}' at top level")),
                },
                other => return Err(format!("unexpected '{}' at top level", other.text())),
            }
        }
        Ok(())
    }

    fn enum_body(&mut self) -> Result<(), String> {
        self.expect_punct('{')?;
        loop {
            match self.next()? {
                Token::Punct('}') => return Ok(()),
                Token::Punct(';') => {}
                Token::Ident(w) if w == "option" || w == "reserved" => self.skip_statement()?,
                Token::Ident(_) => {
                    self.expect_punct('=')?;
                    match self.next()? {
                        Token::Number(_) => {}
                        other => {
                            return Err(format!(
                                "expected enum value number, found {}",
                                other.text()
                            ));
                        }
                    }
                    self.skip_statement()?;
                }
                other => return Err(format!("unexpected '{}' in enum", other.text())),
            }
        }
    }

    fn message(&mut self, full_name: &str) -> Result<(), String> {
        self.expect_punct('{')?;
        let mut fields = BTreeMap::new();
        self.message_body(full_name, &mut fields)?;
        self.file.messages.insert(full_name.to_string(), fields);
        Ok(())
    }

    fn message_body(
        &mut self,
        full_name: &str,
        fields: &mut BTreeMap<i64, Field>,
    ) -> Result<(), String> {
        loop {
            let token = self.next()?;
            match token {
                Token::Punct('}') => return Ok(()),
                Token::Punct(';') => {}
                Token::Ident(word) => match word.as_str() {
                    "message" => {
                        let name = self.ident()?;
                        self.message(&format!("{full_name}.{name}"))?;
                    }
                    "enum" => {
                        self.ident()?;
                        self.enum_body()?;
                    }
                    "extend" => {
                        self.ident()?;
                        self.skip_block()?;
                    }
                    "oneof" => {
                        self.ident()?;
                        self.expect_punct('{')?;
                        self.message_body(full_name, fields)?;
                    }
                    "option" | "reserved" | "extensions" => self.skip_statement()?,
                    _ => {
                        let (label, type_name) = match word.as_str() {
                            "optional" | "required" | "repeated" => {
                                (word.clone(), self.field_type()?)
                            }
                            _ => {
                                self.pos -= 1;
                                (String::new(), self.field_type()?)
                            }
                        };
                        let name = self.ident()?;
                        self.expect_punct('=')?;
                        let number = match self.next()? {
                            Token::Number(n) => n
                                .parse::<i64>()
                                .map_err(|_| format!("bad field number {n}"))?,
                            other => {
                                return Err(format!(
                                    "expected field number, found {}",
                                    other.text()
                                ));
                            }
                        };
                        if number <= 0 {
                            return Err(format!("field number {number} must be positive"));
                        }
                        match self.next()? {
                            Token::Punct(';') => {}
                            Token::Punct('[') => {
                                self.pos -= 1;
                                self.skip_statement()?;
                            }
                            Token::Punct('{') => {
                                // proto2 group
                                self.message_body(full_name, &mut BTreeMap::new())?;
                            }
                            other => {
                                return Err(format!(
                                    "expected ';' after field, found {}",
                                    other.text()
                                ));
                            }
                        }
                        if fields
                            .insert(
                                number,
                                Field {
                                    name,
                                    type_name,
                                    label,
                                },
                            )
                            .is_some()
                        {
                            return Err(format!("field number {number} used twice in {full_name}"));
                        }
                    }
                },
                other => {
                    return Err(format!(
                        "unexpected '{}' in message {full_name}",
                        other.text()
                    ));
                }
            }
        }
    }

    fn field_type(&mut self) -> Result<String, String> {
        let base = self.ident()?;
        if base == "map" && matches!(self.peek(), Some(Token::Punct('<'))) {
            self.pos += 1;
            let key = self.ident()?;
            self.expect_punct(',')?;
            let value = self.ident()?;
            self.expect_punct('>')?;
            return Ok(format!("map<{key},{value}>"));
        }
        Ok(base)
    }
}

fn qualify(package: &str, name: &str) -> String {
    if package.is_empty() {
        name.to_string()
    } else {
        format!("{package}.{name}")
    }
}

fn parse_file(text: &str) -> Result<(ProtoFile, Vec<Token>), String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens: tokens.clone(),
        pos: 0,
        file: ProtoFile::default(),
    };
    let mut package = String::new();
    parser.file(&mut package)?;
    if parser.file.definitions == 0 {
        return Err("no message, enum or service definition found".into());
    }
    Ok((parser.file, tokens))
}

fn join_tokens(tokens: &[Token]) -> String {
    let mut out = String::new();
    for t in tokens {
        match t {
            Token::Punct(c) => out.push(*c),
            other => {
                if out
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '.')
                {
                    out.push(' ');
                }
                out.push_str(&other.text());
            }
        }
    }
    out
}

/// Validates a `.proto` text (or a base64, serialized `FileDescriptorProto`, which is
/// stored as the `.proto` text it renders to) against its references.
pub fn parse(text: &str, refs: &[ResolvedRef], normalize: bool) -> Result<Parsed, String> {
    let (source, file, tokens) = match parse_file(text) {
        Ok((file, tokens)) => (text.to_string(), file, tokens),
        Err(text_error) => {
            // Confluent `ProtobufSchema.toProtoFile`: text first, then base64 of a descriptor.
            let Some(descriptor) = descriptor::decode_base64(text) else {
                return Err(text_error);
            };
            let rendered = render::render(&descriptor)?;
            let (file, tokens) = parse_file(&rendered).map_err(|e| {
                format!("the serialized FileDescriptorProto does not describe a schema: {e}")
            })?;
            (rendered, file, tokens)
        }
    };
    for import in &file.imports {
        let known = import.starts_with("google/protobuf/")
            || import.starts_with("confluent/")
            || import.starts_with("google/type/");
        if !known && !refs.iter().any(|r| &r.name == import) {
            return Err(format!(
                "import '{import}' is not resolved by any reference"
            ));
        }
    }
    let canonical = match compile(&source, &file.imports, refs)? {
        Some(compiled) => compiled.canonical(),
        None => format!("tokens:{}", join_tokens(&tokens)),
    };
    let stored = if normalize {
        join_tokens(&tokens)
    } else {
        source
    };
    Ok(Parsed { stored, canonical })
}

fn compile(
    text: &str,
    imports: &[String],
    refs: &[ResolvedRef],
) -> Result<Option<descriptor::Compiled>, String> {
    descriptor::compile(text, imports, refs, |t| {
        parse_file(t).map(|(f, _)| f.imports).unwrap_or_default()
    })
}

/// `format=serialized`: base64 of the stored schema's `FileDescriptorProto`, named
/// `default` as Confluent names it. `None` when the schema imports a file Confluent
/// bundles that is not available here (`confluent/*`, `google/type/*`).
pub fn serialized(text: &str, refs: &[ResolvedRef]) -> Result<Option<String>, String> {
    let (file, _) = parse_file(text)?;
    Ok(compile(text, &file.imports, refs)?
        .map(|c| descriptor::encode_base64(&c.serialized(descriptor::SERIALIZED_NAME))))
}

/// Karapace 3.16's `format=serialized` of a schema whose descriptor is `b64` (base64 of a
/// `FileDescriptorProto`), with the defects its `protobuf/serialization.py` has: the file
/// has no name, fields of a message or enum type carry no `type` (a reader takes
/// `TYPE_DOUBLE`) and name their type as the `.proto` text wrote it, which is taken here to
/// be relative to the enclosing scopes (`Line` inside `Order`, `Status` in the package), no
/// field has a `json_name`, and every enum value carries `options { deprecated: ... }`.
/// `None` when `b64` is not a descriptor.
pub fn karapace_serialized(b64: &str) -> Option<String> {
    use prost::Message as _;

    let mut file = descriptor::decode_base64(b64)?;
    file.name = None;
    let scope = match file.package() {
        "" => String::new(),
        package => format!(".{package}"),
    };
    for message in &mut file.message_type {
        karapace_message(message, &scope);
    }
    karapace_enums(&mut file.enum_type);
    Some(descriptor::encode_base64(&file.encode_to_vec()))
}

fn karapace_enums(enums: &mut [prost_types::EnumDescriptorProto]) {
    for value in enums.iter_mut().flat_map(|e| e.value.iter_mut()) {
        let deprecated = value.options.as_ref().and_then(|o| o.deprecated);
        value.options = Some(prost_types::EnumValueOptions {
            deprecated: Some(deprecated.unwrap_or(false)),
            ..Default::default()
        });
    }
}

fn karapace_message(message: &mut prost_types::DescriptorProto, scope: &str) {
    use prost_types::field_descriptor_proto::Type;

    let full = format!("{scope}.{}", message.name());
    for field in &mut message.field {
        field.json_name = None;
        if !matches!(field.r#type(), Type::Message | Type::Enum) || field.type_name.is_none() {
            continue;
        }
        let absolute = field.type_name().to_owned();
        // the innermost enclosing scope the name lies in
        let mut enclosing = full.as_str();
        let relative = loop {
            if let Some(rest) = absolute.strip_prefix(&format!("{enclosing}.")) {
                break rest.to_owned();
            }
            match enclosing.rfind('.') {
                Some(ix) if ix > 0 => enclosing = &enclosing[..ix],
                _ => break absolute.trim_start_matches('.').to_owned(),
            }
        };
        field.r#type = None;
        field.type_name = Some(relative);
    }
    for nested in &mut message.nested_type {
        karapace_message(nested, &full);
    }
    karapace_enums(&mut message.enum_type);
}

fn wire_group(type_name: &str) -> String {
    match type_name {
        "int32" | "int64" | "uint32" | "uint64" | "bool" => "varint".into(),
        "sint32" | "sint64" => "zigzag".into(),
        "fixed32" | "sfixed32" => "fixed32".into(),
        "fixed64" | "sfixed64" => "fixed64".into(),
        "string" | "bytes" => "length-delimited".into(),
        other => match other
            .strip_prefix("map<")
            .and_then(|m| m.strip_suffix('>'))
            .and_then(|m| m.split_once(','))
        {
            Some((key, value)) => format!("map<{},{}>", wire_group(key), wire_group(value)),
            // A message or enum type by its simple name: `Address`, `pkg.Address` and
            // `.pkg.Address` (as a descriptor renders it) are the same type here.
            None => other.rsplit('.').next().unwrap_or(other).to_string(),
        },
    }
}

/// Why `reader` cannot read what `writer` wrote (empty when it can).
pub fn incompatibilities(reader: &str, writer: &str) -> Vec<String> {
    let (Ok((r, _)), Ok((w, _))) = (parse_file(reader), parse_file(writer)) else {
        return vec!["schema could not be parsed".into()];
    };
    let mut out = Vec::new();
    for (message, writer_fields) in &w.messages {
        let Some(reader_fields) = r.messages.get(message) else {
            out.push(format!("MESSAGE_REMOVED: message '{message}' is missing"));
            continue;
        };
        for (number, wf) in writer_fields {
            match reader_fields.get(number) {
                Some(rf) if wire_group(&rf.type_name) != wire_group(&wf.type_name) => {
                    out.push(format!(
                        "FIELD_KIND_CHANGED: field {number} of '{message}' changed from '{}' to '{}'",
                        wf.type_name, rf.type_name
                    ));
                }
                Some(_) => {}
                None if wf.label == "required" => {
                    out.push(format!("REQUIRED_FIELD_REMOVED: required field '{}' ({number}) of '{message}' was removed", wf.name));
                }
                None => {}
            }
        }
        for (number, rf) in reader_fields {
            if rf.label == "required" && !writer_fields.contains_key(number) {
                out.push(format!(
                    "REQUIRED_FIELD_ADDED: required field '{}' ({number}) added to '{message}'",
                    rf.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use prost::Message as _;

    use super::*;

    const V1: &str = "syntax = \"proto3\";\npackage p;\n// c\nmessage M {\n  string a = 1;\n  int32 b = 2;\n  map<string, int64> m = 3;\n  oneof o { string x = 4; int64 y = 5; }\n  message N { bool z = 1; }\n}\nenum E { A = 0; B = 1; }\n";

    #[test]
    fn accepts_valid_and_rejects_invalid() {
        assert!(parse(V1, &[], false).is_ok());
        assert!(
            parse(
                "syntax = \"proto3\"; message M { string a = ; }",
                &[],
                false
            )
            .is_err()
        );
        assert!(parse("message M { string a = 1; ", &[], false).is_err());
        assert!(parse("syntax = \"proto3\";", &[], false).is_err());
        assert!(parse("not a proto", &[], false).is_err());
        assert!(
            parse(
                "syntax = \"proto3\"; import \"other.proto\"; message M { Other o = 1; }",
                &[],
                false
            )
            .is_err()
        );
    }

    #[test]
    fn canonical_ignores_whitespace_and_comments() {
        let a = parse(
            "syntax = \"proto3\"; message M { string a = 1; }",
            &[],
            false,
        )
        .unwrap();
        let b = parse(
            "syntax = \"proto3\";\n// hi\nmessage   M {\n string a = 1; /* x */ }\n",
            &[],
            false,
        )
        .unwrap();
        assert_eq!(a.canonical, b.canonical);
        assert_ne!(a.stored, b.stored);
        assert_eq!(
            parse(
                "syntax = \"proto3\";  message  M { string a = 1; }",
                &[],
                true
            )
            .unwrap()
            .stored,
            "syntax=\"proto3\";message M{string a=1;}"
        );
    }

    #[test]
    fn compile_errors_are_invalid_schemas() {
        // Wire (Confluent's parser) and protoc both require labels outside proto3.
        assert!(parse("message M { string a = 1; }", &[], false).is_err());
        // Types must resolve.
        let err = parse("syntax = \"proto3\"; message M { Nope n = 1; }", &[], false)
            .expect_err("undefined type");
        assert!(err.contains("Nope"), "{err}");
    }

    const DEP: &str = "syntax = \"proto3\";\npackage d;\nmessage Dep { string a = 1; }\n";

    const RICH3: &str = r#"syntax = "proto3";
package rich.v1;

import "google/protobuf/timestamp.proto";
import "dep.proto";

option java_package = "com.example.rich";
option java_multiple_files = true;
option go_package = "example.com/rich";
option optimize_for = CODE_SIZE;

message Outer {
  option deprecated = true;
  int64 id = 1;
  string display_name = 2 [json_name = "dn"];
  repeated string tags = 3 [deprecated = true];
  map<string, Inner> inners = 4;
  optional bool flag = 5;
  oneof choice {
    string text = 6;
    Inner.Kind kind = 7;
  }
  google.protobuf.Timestamp at = 8;
  d.Dep dep = 9;
  repeated int32 nums = 10 [packed = false];
  bytes blob = 11;
  reserved 12, 15 to 20;
  reserved "old";
  message Inner {
    enum Kind { KIND_UNSPECIFIED = 0; KIND_A = 1; }
    Kind kind = 1;
    map<int32, string> labels = 2;
  }
}

enum Color {
  option allow_alias = true;
  COLOR_UNSPECIFIED = 0;
  RED = 1;
  CRIMSON = 1 [deprecated = true];
  reserved 5 to 9, 100 to max;
  reserved "BLUE";
}

service Svc {
  rpc Get (Outer) returns (stream Outer);
  rpc Put (stream Outer) returns (Outer) {
    option idempotency_level = IDEMPOTENT;
  }
}
"#;

    const RICH2: &str = r#"syntax = "proto2";
package two;

message P {
  required string name = 1;
  optional int32 count = 2 [default = -5];
  optional string s = 3 [default = "a\"b\n"];
  optional bytes b = 4 [default = "\001x"];
  optional E e = 5 [default = E_B];
  optional double d = 6 [default = inf];
  repeated group Item = 7 {
    optional int32 x = 1;
  }
  extensions 100 to 199, 1000 to max;
  extend P {
    optional int64 nested_ext = 101;
  }
}
enum E { E_A = 1; E_B = 2; }
extend P {
  optional string ext = 100;
  repeated E ext_list = 102;
}
"#;

    fn dep_ref() -> ResolvedRef {
        ResolvedRef {
            name: "dep.proto".into(),
            schema_type: crate::types::SchemaType::Protobuf,
            text: DEP.into(),
        }
    }

    /// The compiled descriptor of `text` (named `x`, no source info).
    fn descriptor_of(text: &str, refs: &[ResolvedRef]) -> prost_types::FileDescriptorProto {
        let (file, _) = parse_file(text).unwrap();
        let compiled = compile(text, &file.imports, refs).unwrap().unwrap();
        prost_types::FileDescriptorProto::decode(compiled.serialized("x").as_slice()).unwrap()
    }

    fn b64(fd: &prost_types::FileDescriptorProto) -> String {
        descriptor::encode_base64(&fd.encode_to_vec())
    }

    #[test]
    fn descriptor_renders_to_text_that_compiles_to_the_same_descriptor() {
        for (text, refs) in [(RICH3, vec![dep_ref()]), (RICH2, vec![]), (DEP, vec![])] {
            let fd = descriptor_of(text, &refs);
            let rendered = render::render(&fd).unwrap();
            assert_eq!(descriptor_of(&rendered, &refs), fd, "rendered:\n{rendered}");
            // Registering the descriptor stores the rendered text and is the same schema.
            let from_text = parse(text, &refs, false).unwrap();
            let from_b64 = parse(&b64(&fd), &refs, false).unwrap();
            assert_eq!(from_b64.stored, rendered);
            assert_eq!(from_b64.canonical, from_text.canonical);
        }
    }

    #[test]
    fn rendering_follows_confluents_layout() {
        let fd = descriptor_of(RICH3, &[dep_ref()]);
        let rendered = render::render(&fd).unwrap();
        for line in [
            "syntax = \"proto3\";\npackage rich.v1;\n\nimport \"google/protobuf/timestamp.proto\";\nimport \"dep.proto\";\n",
            "option java_package = \"com.example.rich\";",
            "  string display_name = 2 [json_name = \"dn\"];",
            "  map<string, .rich.v1.Outer.Inner> inners = 4;",
            "  optional bool flag = 5;",
            "  oneof choice {\n    string text = 6;\n    .rich.v1.Outer.Inner.Kind kind = 7;\n  }",
            "  .d.Dep dep = 9;",
            "  reserved 12, 15 to 20;\n  reserved \"old\";",
            "  reserved 5 to 9, 100 to max;",
            "  rpc Get (.rich.v1.Outer) returns (stream .rich.v1.Outer);",
        ] {
            assert!(rendered.contains(line), "missing {line:?} in\n{rendered}");
        }
        assert!(!rendered.contains("InnersEntry"), "{rendered}");
        let two = render::render(&descriptor_of(RICH2, &[])).unwrap();
        for line in [
            "  required string name = 1;",
            "  optional string s = 3 [default = \"a\\\"b\\n\"];",
            "  repeated group Item = 7 {\n    optional int32 x = 1;\n  }",
            "  extensions 100 to 199, 1000 to max;",
            "extend .two.P {\n  optional string ext = 100;",
        ] {
            assert!(two.contains(line), "missing {line:?} in\n{two}");
        }
    }

    #[test]
    fn python_style_descriptor_with_json_names_and_absolute_types() {
        use prost_types::field_descriptor_proto::{Label, Type};
        let field = |name: &str, number: i32, kind: Type, type_name: Option<&str>| {
            prost_types::FieldDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                label: Some(Label::Optional as i32),
                r#type: Some(kind as i32),
                type_name: type_name.map(Into::into),
                json_name: Some(name.into()),
                ..Default::default()
            }
        };
        let fd = prost_types::FileDescriptorProto {
            name: Some("kb/test/payment.proto".into()),
            package: Some("d".into()),
            syntax: Some("proto3".into()),
            dependency: vec!["dep.proto".into()],
            message_type: vec![prost_types::DescriptorProto {
                name: Some("Payment".into()),
                field: vec![
                    field("id", 1, Type::Int64, None),
                    field("dep", 2, Type::Message, Some(".d.Dep")),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let parsed = parse(&b64(&fd), &[dep_ref()], false).unwrap();
        assert_eq!(
            parsed.stored,
            "syntax = \"proto3\";\npackage d;\n\nimport \"dep.proto\";\n\nmessage Payment {\n  int64 id = 1;\n  .d.Dep dep = 2;\n}\n"
        );
        let text = "syntax = \"proto3\";\npackage d;\nimport \"dep.proto\";\nmessage Payment { int64 id = 1; Dep dep = 2; }\n";
        assert_eq!(
            parse(text, &[dep_ref()], false).unwrap().canonical,
            parsed.canonical
        );
        // Not base64, not .proto: the text's error.
        assert!(parse("not a proto", &[], false).is_err());
        assert!(parse("bm90IGEgZGVzY3JpcHRvcg", &[], false).is_err());
    }

    #[test]
    fn karapace_serialized_is_what_karapace_3_16_serves() {
        // base64 that a running Karapace 3.16.0 served for this schema with
        // `GET /schemas/ids/{id}?format=serialized`
        let text = "syntax = \"proto3\";\npackage q;\n\nmessage Order {\n  string id = 1;\n  repeated Line lines = 2;\n  Status status = 3;\n  message Line {\n    string sku = 1;\n  }\n}\n\nenum Status {\n  S_UNSPECIFIED = 0;\n}\n";
        let ours = serialized(text, &[]).unwrap().unwrap();
        assert_eq!(
            karapace_serialized(&ours).unwrap(),
            "EgFxIlEKBU9yZGVyEgoKAmlkGAEgASgJEhEKBWxpbmVzGAIgAzIETGluZRIUCgZzdGF0dXMYAyABMgZTdGF0dXMaEwoETGluZRILCgNza3UYASABKAkqHwoGU3RhdHVzEhUKDVNfVU5TUEVDSUZJRUQQABoCCABiBnByb3RvMw=="
        );
        assert_eq!(karapace_serialized("not base64 at all"), None);
    }

    #[test]
    fn serialized_format_is_the_compiled_descriptor_named_default() {
        let out = serialized(RICH3, &[dep_ref()]).unwrap().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(out)
            .unwrap();
        let fd = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(fd.name(), "default");
        assert_eq!(fd.package(), "rich.v1");
        assert_eq!(
            fd.dependency,
            vec!["google/protobuf/timestamp.proto", "dep.proto"]
        );
        let names: Vec<&str> = fd.message_type.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["Outer"]);
        assert!(fd.source_code_info.is_none());
    }

    #[test]
    fn unbundled_confluent_imports_are_accepted_without_a_descriptor() {
        let text = "syntax = \"proto3\";\nimport \"confluent/meta.proto\";\nmessage M { string a = 1 [(confluent.field_meta).doc = \"x\"]; }\n";
        let parsed = parse(text, &[], false).unwrap();
        assert!(
            parsed.canonical.starts_with("tokens:"),
            "{}",
            parsed.canonical
        );
        assert_eq!(serialized(text, &[]).unwrap(), None);
    }

    #[test]
    fn compatibility_rules() {
        let v2 = V1.replace("int32 b = 2;", "string b = 2;");
        assert!(!incompatibilities(&v2, V1).is_empty());
        let v3 = V1.replace("int32 b = 2;", "int64 b = 2;");
        assert!(incompatibilities(&v3, V1).is_empty());
        let absolute = "syntax = \"proto3\"; package p; message M { .p.N n = 1; } message N {}";
        let relative = "syntax = \"proto3\"; package p; message M { N n = 1; } message N {}";
        assert!(incompatibilities(absolute, relative).is_empty());
        let added = V1.replace("int32 b = 2;", "int32 b = 2; string c = 9;");
        assert!(incompatibilities(&added, V1).is_empty());
        let req = "syntax = \"proto2\"; message M { required string a = 1; }";
        let none = "syntax = \"proto2\"; message M { optional string b = 2; }";
        assert!(!incompatibilities(none, req).is_empty());
        assert!(!incompatibilities(req, none).is_empty());
        assert!(
            !incompatibilities(
                "message Other { string a = 1; }",
                "message M { string a = 1; }"
            )
            .is_empty()
        );
    }
}
