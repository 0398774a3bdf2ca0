//! Renders a `FileDescriptorProto` as `.proto` text: what Confluent stores when a client
//! registers a schema as a base64, serialized descriptor (`ProtobufSchema.toProtoFile`).
//!
//! The layout follows Confluent's printer: `syntax`, `package`, imports, file options, then
//! messages, enums, services and `extend` blocks; inside a message its options, fields
//! (a `oneof` block where its first field is), `reserved`, `extensions`, nested messages,
//! nested enums and `extend` blocks. Type names are printed as the descriptor holds them
//! (fully qualified ones with their leading dot).
//!
//! Differences from Confluent's printer, chosen so that the text compiles with `protoc`
//! rules and describes the same descriptor again: map fields are printed as
//! `map<K, V>` (not as a `repeated` field of a nested `map_entry` message), proto2 groups
//! as `group` fields, and `json_name` only when it differs from the default derived from
//! the field name. Options printed: the standard file, message, field, enum, enum value,
//! service and method options that `prost-types` models; custom (extension) options and
//! uninterpreted options are dropped.

use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};

/// `.proto` text of `file`.
pub fn render(file: &FileDescriptorProto) -> Result<String, String> {
    let syntax = file.syntax();
    if !matches!(syntax, "" | "proto2" | "proto3") {
        return Err(format!("unsupported syntax '{syntax}' in the descriptor"));
    }
    let ctx = Ctx {
        proto3: syntax == "proto3",
    };
    let mut out = String::new();
    if !syntax.is_empty() {
        let _ = writeln!(out, "syntax = \"{syntax}\";");
    }
    if !file.package().is_empty() {
        let _ = writeln!(out, "package {};", file.package());
    }
    if !file.dependency.is_empty() {
        out.push('\n');
        for (i, dep) in file.dependency.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            let kind = if file.public_dependency.contains(&index) {
                "public "
            } else if file.weak_dependency.contains(&index) {
                "weak "
            } else {
                ""
            };
            let _ = writeln!(out, "import {kind}\"{}\";", escape(dep));
        }
    }
    let options = file_options(file);
    if !options.is_empty() {
        out.push('\n');
        for (name, value) in options {
            let _ = writeln!(out, "option {name} = {value};");
        }
    }
    for message in &file.message_type {
        out.push('\n');
        ctx.message(&mut out, message, 0)?;
    }
    for e in &file.enum_type {
        out.push('\n');
        ctx.enumeration(&mut out, e, 0);
    }
    for service in &file.service {
        out.push('\n');
        service_block(&mut out, service);
    }
    if !file.extension.is_empty() {
        out.push('\n');
        ctx.extends(&mut out, &file.extension, 0)?;
    }
    Ok(out)
}

struct Ctx {
    proto3: bool,
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

impl Ctx {
    fn message(&self, out: &mut String, m: &DescriptorProto, level: usize) -> Result<(), String> {
        indent(out, level);
        let _ = writeln!(out, "message {} {{", m.name());
        self.message_body(out, m, level + 1)?;
        indent(out, level);
        out.push_str("}\n");
        Ok(())
    }

    fn message_body(
        &self,
        out: &mut String,
        m: &DescriptorProto,
        level: usize,
    ) -> Result<(), String> {
        if let Some(o) = &m.options {
            for (name, value) in [
                ("message_set_wire_format", o.message_set_wire_format),
                (
                    "no_standard_descriptor_accessor",
                    o.no_standard_descriptor_accessor,
                ),
                ("deprecated", o.deprecated),
            ] {
                if let Some(v) = value {
                    indent(out, level);
                    let _ = writeln!(out, "option {name} = {v};");
                }
            }
        }
        // Nested types printed as part of a field: map entries and groups.
        let mut inline_types: Vec<String> = Vec::new();
        let mut oneof_done = vec![false; m.oneof_decl.len()];
        for field in &m.field {
            let in_real_oneof = field.oneof_index.is_some() && !field.proto3_optional();
            if in_real_oneof {
                let index = usize::try_from(field.oneof_index()).unwrap_or(usize::MAX);
                if index >= m.oneof_decl.len() {
                    return Err(format!(
                        "field '{}' names oneof {index}, which {} does not declare",
                        field.name(),
                        m.name()
                    ));
                }
                if !oneof_done[index] {
                    oneof_done[index] = true;
                    indent(out, level);
                    let _ = writeln!(out, "oneof {} {{", m.oneof_decl[index].name());
                    for member in m
                        .field
                        .iter()
                        .filter(|f| f.oneof_index == Some(field.oneof_index()))
                    {
                        self.field(out, m, member, true, level + 1, &mut inline_types)?;
                    }
                    indent(out, level);
                    out.push_str("}\n");
                }
            } else {
                self.field(out, m, field, false, level, &mut inline_types)?;
            }
        }
        reserved(
            out,
            level,
            m.reserved_range
                .iter()
                .map(|r| (r.start(), r.end().saturating_sub(1))),
            &m.reserved_name,
        );
        if !m.extension_range.is_empty() {
            let ranges: Vec<String> = m
                .extension_range
                .iter()
                .map(|r| range_text(r.start(), r.end().saturating_sub(1)))
                .collect();
            indent(out, level);
            let _ = writeln!(out, "extensions {};", ranges.join(", "));
        }
        for nested in &m.nested_type {
            if !inline_types.iter().any(|n| n == nested.name()) {
                self.message(out, nested, level)?;
            }
        }
        for e in &m.enum_type {
            self.enumeration(out, e, level);
        }
        if !m.extension.is_empty() {
            self.extends(out, &m.extension, level)?;
        }
        Ok(())
    }

    fn label(&self, field: &FieldDescriptorProto, in_oneof: bool) -> &'static str {
        if in_oneof {
            return "";
        }
        if field.proto3_optional() {
            return "optional ";
        }
        match field.label() {
            Label::Repeated => "repeated ",
            Label::Required if !self.proto3 => "required ",
            Label::Optional if !self.proto3 => "optional ",
            _ => "",
        }
    }

    /// One field (or map field, or group). `owner` holds the nested types that a map field
    /// or a group refers to; their names go to `inline_types` so they are not printed again.
    fn field(
        &self,
        out: &mut String,
        owner: &DescriptorProto,
        field: &FieldDescriptorProto,
        in_oneof: bool,
        level: usize,
        inline_types: &mut Vec<String>,
    ) -> Result<(), String> {
        let name = field.name();
        let number = field.number();
        let options = self.field_options(field);
        let label = self.label(field, in_oneof);
        let kind = field.r#type.map(|_| field.r#type());
        if kind == Some(Type::Message) && field.label() == Label::Repeated {
            let entry = nested_by_type_name(owner, field.type_name())
                .filter(|e| e.options.as_ref().and_then(|o| o.map_entry) == Some(true));
            if let Some(entry) = entry {
                let part = |n: i32| {
                    entry
                        .field
                        .iter()
                        .find(|f| f.number() == n)
                        .map(type_text)
                        .ok_or_else(|| format!("map entry {} lacks field {n}", entry.name()))
                };
                indent(out, level);
                let _ = writeln!(
                    out,
                    "map<{}, {}> {name} = {number}{options};",
                    part(1)?,
                    part(2)?
                );
                inline_types.push(entry.name().to_string());
                return Ok(());
            }
        }
        if kind == Some(Type::Group) {
            let group = nested_by_type_name(owner, field.type_name())
                .ok_or_else(|| format!("group field '{name}' names no nested message"))?;
            indent(out, level);
            let _ = writeln!(out, "{label}group {} = {number}{options} {{", group.name());
            self.message_body(out, group, level + 1)?;
            indent(out, level);
            out.push_str("}\n");
            inline_types.push(group.name().to_string());
            return Ok(());
        }
        indent(out, level);
        let _ = writeln!(
            out,
            "{label}{} {name} = {number}{options};",
            type_text(field)
        );
        Ok(())
    }

    /// ` [a = b, ...]`, or empty.
    fn field_options(&self, field: &FieldDescriptorProto) -> String {
        let mut list: Vec<String> = Vec::new();
        if let Some(value) = &field.default_value
            && !self.proto3
        {
            let text = match field.r#type.map(|_| field.r#type()) {
                Some(Type::String) => format!("\"{}\"", escape(value)),
                // The descriptor holds bytes defaults C-escaped already.
                Some(Type::Bytes) => format!("\"{value}\""),
                _ => value.clone(),
            };
            list.push(format!("default = {text}"));
        }
        if let Some(json) = &field.json_name
            && field.extendee.is_none()
            && *json != default_json_name(field.name())
        {
            list.push(format!("json_name = \"{}\"", escape(json)));
        }
        if let Some(o) = &field.options {
            if let Some(v) = o.ctype {
                let name = match v {
                    1 => "CORD",
                    2 => "STRING_PIECE",
                    _ => "STRING",
                };
                list.push(format!("ctype = {name}"));
            }
            if let Some(v) = o.packed {
                list.push(format!("packed = {v}"));
            }
            if let Some(v) = o.jstype {
                let name = match v {
                    1 => "JS_STRING",
                    2 => "JS_NUMBER",
                    _ => "JS_NORMAL",
                };
                list.push(format!("jstype = {name}"));
            }
            for (name, value) in [
                ("lazy", o.lazy),
                ("deprecated", o.deprecated),
                ("weak", o.weak),
            ] {
                if let Some(v) = value {
                    list.push(format!("{name} = {v}"));
                }
            }
        }
        if list.is_empty() {
            String::new()
        } else {
            format!(" [{}]", list.join(", "))
        }
    }

    fn enumeration(&self, out: &mut String, e: &EnumDescriptorProto, level: usize) {
        indent(out, level);
        let _ = writeln!(out, "enum {} {{", e.name());
        if let Some(o) = &e.options {
            for (name, value) in [("allow_alias", o.allow_alias), ("deprecated", o.deprecated)] {
                if let Some(v) = value {
                    indent(out, level + 1);
                    let _ = writeln!(out, "option {name} = {v};");
                }
            }
        }
        for value in &e.value {
            indent(out, level + 1);
            let deprecated = value
                .options
                .as_ref()
                .and_then(|o| o.deprecated)
                .map(|d| format!(" [deprecated = {d}]"))
                .unwrap_or_default();
            let _ = writeln!(out, "{} = {}{deprecated};", value.name(), value.number());
        }
        reserved(
            out,
            level + 1,
            e.reserved_range.iter().map(|r| (r.start(), r.end())),
            &e.reserved_name,
        );
        indent(out, level);
        out.push_str("}\n");
    }

    /// `extend` blocks for `fields`, grouped by extendee in order of appearance.
    fn extends(
        &self,
        out: &mut String,
        fields: &[FieldDescriptorProto],
        level: usize,
    ) -> Result<(), String> {
        let mut extendees: Vec<&str> = Vec::new();
        for f in fields {
            if !extendees.contains(&f.extendee()) {
                extendees.push(f.extendee());
            }
        }
        for extendee in extendees {
            indent(out, level);
            let _ = writeln!(out, "extend {extendee} {{");
            for f in fields.iter().filter(|f| f.extendee() == extendee) {
                if f.r#type.map(|_| f.r#type()) == Some(Type::Group) {
                    return Err(format!("group extension '{}' is not supported", f.name()));
                }
                indent(out, level + 1);
                let _ = writeln!(
                    out,
                    "{}{} {} = {}{};",
                    self.label(f, false),
                    type_text(f),
                    f.name(),
                    f.number(),
                    self.field_options(f)
                );
            }
            indent(out, level);
            out.push_str("}\n");
        }
        Ok(())
    }
}

fn service_block(out: &mut String, s: &ServiceDescriptorProto) {
    let _ = writeln!(out, "service {} {{", s.name());
    if let Some(d) = s.options.as_ref().and_then(|o| o.deprecated) {
        let _ = writeln!(out, "  option deprecated = {d};");
    }
    for m in &s.method {
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let _ = write!(
            out,
            "  rpc {} ({}{}) returns ({}{})",
            m.name(),
            stream(m.client_streaming()),
            m.input_type(),
            stream(m.server_streaming()),
            m.output_type()
        );
        let mut options: Vec<String> = Vec::new();
        if let Some(o) = &m.options {
            if let Some(d) = o.deprecated {
                options.push(format!("deprecated = {d}"));
            }
            if let Some(level) = o.idempotency_level {
                let name = match level {
                    1 => "NO_SIDE_EFFECTS",
                    2 => "IDEMPOTENT",
                    _ => "IDEMPOTENCY_UNKNOWN",
                };
                options.push(format!("idempotency_level = {name}"));
            }
        }
        if options.is_empty() {
            out.push_str(";\n");
        } else {
            out.push_str(" {\n");
            for o in options {
                let _ = writeln!(out, "    option {o};");
            }
            out.push_str("  }\n");
        }
    }
    out.push_str("}\n");
}

#[allow(deprecated)] // java_generate_equals_and_hash: deprecated, still printed by Confluent
fn file_options(file: &FileDescriptorProto) -> Vec<(&'static str, String)> {
    let Some(o) = &file.options else {
        return Vec::new();
    };
    let text = |v: &Option<String>| v.as_ref().map(|s| format!("\"{}\"", escape(s)));
    let flag = |v: Option<bool>| v.map(|b| b.to_string());
    let optimize = o.optimize_for.map(|v| {
        match v {
            2 => "CODE_SIZE",
            3 => "LITE_RUNTIME",
            _ => "SPEED",
        }
        .to_string()
    });
    [
        ("java_package", text(&o.java_package)),
        ("java_outer_classname", text(&o.java_outer_classname)),
        ("java_multiple_files", flag(o.java_multiple_files)),
        (
            "java_generate_equals_and_hash",
            flag(o.java_generate_equals_and_hash),
        ),
        ("optimize_for", optimize),
        ("go_package", text(&o.go_package)),
        ("cc_generic_services", flag(o.cc_generic_services)),
        ("java_generic_services", flag(o.java_generic_services)),
        ("py_generic_services", flag(o.py_generic_services)),
        ("php_generic_services", flag(o.php_generic_services)),
        ("deprecated", flag(o.deprecated)),
        ("cc_enable_arenas", flag(o.cc_enable_arenas)),
        ("objc_class_prefix", text(&o.objc_class_prefix)),
        ("csharp_namespace", text(&o.csharp_namespace)),
        ("swift_prefix", text(&o.swift_prefix)),
        ("php_class_prefix", text(&o.php_class_prefix)),
        ("php_namespace", text(&o.php_namespace)),
        ("php_metadata_namespace", text(&o.php_metadata_namespace)),
        ("ruby_package", text(&o.ruby_package)),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect()
}

/// `reserved` lines; `ranges` are inclusive.
fn reserved(
    out: &mut String,
    level: usize,
    ranges: impl Iterator<Item = (i32, i32)>,
    names: &[String],
) {
    let ranges: Vec<String> = ranges.map(|(s, e)| range_text(s, e)).collect();
    if !ranges.is_empty() {
        indent(out, level);
        let _ = writeln!(out, "reserved {};", ranges.join(", "));
    }
    if !names.is_empty() {
        let names: Vec<String> = names.iter().map(|n| format!("\"{}\"", escape(n))).collect();
        indent(out, level);
        let _ = writeln!(out, "reserved {};", names.join(", "));
    }
}

/// An inclusive range: `N`, `N to M` or `N to max`.
fn range_text(start: i32, end: i32) -> String {
    const MAX_FIELD_NUMBER: i32 = 536_870_911;
    if start == end {
        start.to_string()
    } else if end == MAX_FIELD_NUMBER || end == i32::MAX {
        format!("{start} to max")
    } else {
        format!("{start} to {end}")
    }
}

/// The nested message of `owner` that `type_name` (relative or fully qualified) names.
fn nested_by_type_name<'a>(
    owner: &'a DescriptorProto,
    type_name: &str,
) -> Option<&'a DescriptorProto> {
    let last = type_name.rsplit('.').next().unwrap_or(type_name);
    owner.nested_type.iter().find(|n| n.name() == last)
}

/// The type of a field as written in `.proto` text.
fn type_text(field: &FieldDescriptorProto) -> String {
    let scalar = match field.r#type.map(|_| field.r#type()) {
        Some(Type::Double) => "double",
        Some(Type::Float) => "float",
        Some(Type::Int64) => "int64",
        Some(Type::Uint64) => "uint64",
        Some(Type::Int32) => "int32",
        Some(Type::Fixed64) => "fixed64",
        Some(Type::Fixed32) => "fixed32",
        Some(Type::Bool) => "bool",
        Some(Type::String) => "string",
        Some(Type::Bytes) => "bytes",
        Some(Type::Uint32) => "uint32",
        Some(Type::Sfixed32) => "sfixed32",
        Some(Type::Sfixed64) => "sfixed64",
        Some(Type::Sint32) => "sint32",
        Some(Type::Sint64) => "sint64",
        Some(Type::Group | Type::Message | Type::Enum) | None => "",
    };
    if scalar.is_empty() {
        field.type_name().to_string()
    } else {
        scalar.to_string()
    }
}

/// `protoc`'s default `json_name`: underscores dropped, the letter after each one upper-cased.
pub fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes a string for a `.proto` string literal.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
