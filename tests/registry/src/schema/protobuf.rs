//! Protobuf: a syntactic parser for `.proto` text and a documented compatibility subset.
//!
//! Validation covers the file structure: `syntax`, `package`, `import`, `option`, and
//! `message` / `enum` / `service` / `extend` blocks with well-formed fields
//! (`[label] type name = number [options];`, `map<k, v>`, `oneof`, `reserved`). At least one
//! definition is required. Imports must be covered by a reference or be a well-known
//! `google/protobuf/*` or `confluent/*` file.
//!
//! The stored text is the submission as given (or, with `normalize`, the token stream
//! re-joined); the canonical key is the token stream, so whitespace and comments do not
//! make two schemas different.
//!
//! Compatibility ("can `reader` read what `writer` wrote"): a field number present in both
//! with a wire-incompatible type, a message of the writer missing from the reader, a
//! `required` field of the reader absent in the writer, or a `required` field of the writer
//! absent in the reader.

use std::collections::BTreeMap;

use super::{Parsed, ResolvedRef};

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

/// Validates a `.proto` text against its references.
pub fn parse(text: &str, refs: &[ResolvedRef], normalize: bool) -> Result<Parsed, String> {
    let (file, tokens) = parse_file(text)?;
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
    let canonical = join_tokens(&tokens);
    let stored = if normalize {
        canonical.clone()
    } else {
        text.to_string()
    };
    Ok(Parsed { stored, canonical })
}

fn wire_group(type_name: &str) -> String {
    match type_name {
        "int32" | "int64" | "uint32" | "uint64" | "bool" => "varint".into(),
        "sint32" | "sint64" => "zigzag".into(),
        "fixed32" | "sfixed32" => "fixed32".into(),
        "fixed64" | "sfixed64" => "fixed64".into(),
        "string" | "bytes" => "length-delimited".into(),
        other => other.trim_start_matches('.').to_string(),
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
        let a = parse("message M { string a = 1; }", &[], false).unwrap();
        let b = parse(
            "// hi\nmessage   M {\n string a = 1; /* x */ }\n",
            &[],
            false,
        )
        .unwrap();
        assert_eq!(a.canonical, b.canonical);
        assert_ne!(a.stored, b.stored);
        assert_eq!(
            parse("message  M { string a = 1; }", &[], true)
                .unwrap()
                .stored,
            a.canonical
        );
    }

    #[test]
    fn compatibility_rules() {
        let v2 = V1.replace("int32 b = 2;", "string b = 2;");
        assert!(!incompatibilities(&v2, V1).is_empty());
        let v3 = V1.replace("int32 b = 2;", "int64 b = 2;");
        assert!(incompatibilities(&v3, V1).is_empty());
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
