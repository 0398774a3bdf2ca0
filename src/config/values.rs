//! Scalar types of the configuration that check themselves while they are
//! parsed, so that the parser's own error carries the file position:
//! strings with `${VAR}` expansion, secrets that never print, and globs.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

type Lookup = Box<dyn Fn(&str) -> Option<String>>;

thread_local! {
    /// The environment used while one file is parsed on this thread; tests
    /// install their own so that they never touch the process environment.
    static LOOKUP: RefCell<Option<Lookup>> = const { RefCell::new(None) };
}

/// Runs `f` with `lookup` as the environment for `${VAR}` expansion.
pub(crate) fn with_env<T>(lookup: Lookup, f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            LOOKUP.with(|l| l.borrow_mut().take());
        }
    }
    LOOKUP.with(|l| *l.borrow_mut() = Some(lookup));
    let _reset = Reset;
    f()
}

fn lookup(name: &str) -> Option<String> {
    LOOKUP.with(|l| match l.borrow().as_ref() {
        Some(f) => f(name),
        None => std::env::var(name).ok(),
    })
}

/// Expands `${VAR}` and `${VAR:-default}`; `$${` is a literal `${`.
pub fn expand(raw: &str) -> Result<String, String> {
    expand_inner(raw).map_err(|e| e.message(Some(raw)))
}

/// [`expand`] for a value that may be a credential: no error shows any of
/// its text (variable names are shown, they are not secret).
pub fn expand_secret(raw: &str) -> Result<String, String> {
    expand_inner(raw).map_err(|e| e.message(None))
}

/// The raw text of a value that may be a credential. A value of another type
/// (a TOML integer, a boolean) is refused without being quoted, where serde's
/// own message would show it (``invalid type: integer `123456` ``).
pub(crate) fn secret_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct V;
    fn refuse<E: de::Error>(found: &str) -> E {
        E::custom(format!(
            "expected a string, found {found} (not shown: it may be a secret)\nhint: quote the value"
        ))
    }
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
            Err(refuse("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
            Err(refuse("an integer"))
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<String, E> {
            Err(refuse("an integer"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
            Err(refuse("an integer"))
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<String, E> {
            Err(refuse("an integer"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
            Err(refuse("a number"))
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<String, E> {
            Err(refuse("bytes"))
        }
    }
    deserializer.deserialize_string(V)
}

/// Why `${...}` expansion failed.
enum ExpandError {
    Unclosed,
    InvalidReference(String),
    Unset(String),
}

impl ExpandError {
    /// The message; `raw`: the value, when it may be shown.
    fn message(&self, raw: Option<&str>) -> String {
        match (self, raw) {
            (ExpandError::Unclosed, Some(raw)) => format!("unclosed `${{` in `{raw}`"),
            (ExpandError::Unclosed, None) => {
                "unclosed `${` in the value (not shown: it may be a secret)".into()
            }
            (ExpandError::InvalidReference(expr), Some(_)) => {
                format!("`${{{expr}}}` is not a valid environment variable reference")
            }
            (ExpandError::InvalidReference(_), None) => {
                "a `${...}` in the value is not a valid environment variable reference (the value is not shown: it may be a secret)".into()
            }
            (ExpandError::Unset(name), _) => format!(
                "environment variable `{name}` is not set\nhint: export `{name}`, or write `${{{name}:-default}}`"
            ),
        }
    }
}

fn expand_inner(raw: &str) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(ExpandError::Unclosed)?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ExpandError::InvalidReference(expr.to_owned()));
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(ExpandError::Unset(name.to_owned())),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A string value with `${VAR}` expanded from the environment at parse time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        expand(&raw).map(Text).map_err(de::Error::custom)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A credential: expanded like [`Text`], but printed and serialized as
/// `<redacted>` so that it can reach no log, error, manifest or plan.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

pub const REDACTED: &str = "<redacted>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = secret_text(deserializer)?;
        expand_secret(&raw).map(Secret).map_err(de::Error::custom)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A shell-style glob (`orders-*`, `*-value`), checked when parsed.
#[derive(Clone)]
pub struct Glob {
    text: String,
    matcher: globset::GlobMatcher,
}

impl Glob {
    pub fn new(text: &str) -> Result<Self, String> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid glob `{text}`: {}", e.kind()))?;
        Ok(Self {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(deserializer)?;
        Glob::new(text.as_str()).map_err(de::Error::custom)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// A list written either as one string (`"*"`, `"a:9092,b:9092"`) or as a
/// sequence; a single string is split on commas when `T` asks for it.
#[derive(Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: fmt::Debug> fmt::Debug for OneOrMany<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                let one = T::deserialize(de::value::StrDeserializer::<E>::new(value))?;
                Ok(OneOrMany(vec![one]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("alice".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        with_env(Box::new(env), || {
            assert_eq!(expand("u=${USER}").unwrap(), "u=alice");
            assert_eq!(expand("${MISSING:-x}-${EMPTY:-y}").unwrap(), "x-");
            assert_eq!(
                expand("cost $5 and $${USER}").unwrap(),
                "cost $5 and ${USER}"
            );
        });
    }

    #[test]
    fn missing_variable_is_named() {
        let err = with_env(Box::new(env), || expand("${NOPE}")).unwrap_err();
        assert!(
            err.starts_with("environment variable `NOPE` is not set"),
            "{err}"
        );
        let err = with_env(Box::new(env), || expand("${1BAD}")).unwrap_err();
        assert_eq!(
            err,
            "`${1BAD}` is not a valid environment variable reference"
        );
        let err = with_env(Box::new(env), || expand("${OPEN")).unwrap_err();
        assert_eq!(err, "unclosed `${` in `${OPEN`");
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn globs_match_and_reject() {
        let g = Glob::new("orders-*").unwrap();
        assert!(g.is_match("orders-value"));
        assert!(g.is_match("orders-a/b"));
        assert!(!g.is_match("payments-value"));
        assert!(
            Glob::new("orders-[")
                .unwrap_err()
                .starts_with("invalid glob `orders-[`")
        );
    }
}
