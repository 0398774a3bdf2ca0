//! Where each key of a configuration file stands, so that errors found after
//! parsing (contradictions, missing values) can name the file line.
//!
//! The file is read a second time into a tree of keys with their lines; the
//! tree knows nothing of the configuration's types, only of maps, lists and
//! scalars, so it works the same for YAML and TOML.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// One node of the key tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Map(Vec<Entry>),
    Seq(Vec<Node>),
    Leaf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    line: usize,
    value: Node,
}

/// Lines of the keys of one configuration file (1-based).
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    root: Option<Node>,
}

impl SourceMap {
    /// Reads the key tree of a YAML document; an unreadable document gives an
    /// empty map (the parse error itself is reported by the typed parse).
    pub fn from_yaml(text: &str) -> Self {
        let root = serde_saphyr::from_str::<Tree<serde_saphyr::Spanned<String>>>(text)
            .ok()
            .map(|tree| tree.root);
        Self { root }
    }

    /// Reads the key tree of a TOML document; TOML spans are byte offsets and
    /// are turned into lines here.
    pub fn from_toml(text: &str) -> Self {
        let root = toml::from_str::<Tree<toml::Spanned<String>>>(text)
            .ok()
            .map(|tree| offsets_to_lines(tree.root, text));
        Self { root }
    }

    /// The line of the key at `path` (`["enterprise", "schema_registry", "url"]`),
    /// or of its closest ancestor that is written in the file.
    pub fn line_of(&self, path: &[&str]) -> Option<usize> {
        let mut node = self.root.as_ref()?;
        let mut line = None;
        for part in path {
            let Node::Map(entries) = node else { break };
            let Some(entry) = entries.iter().find(|e| e.key == *part) else {
                break;
            };
            line = Some(entry.line);
            node = &entry.value;
        }
        line
    }

    /// The dotted path of the deepest key written on `line`, used to name the key
    /// behind a type error that the parser reported only by position.
    pub fn key_at_line(&self, line: usize) -> Option<String> {
        fn walk(node: &Node, line: usize, prefix: &mut Vec<String>) -> Option<String> {
            match node {
                Node::Map(entries) => {
                    // the last entry starting at or before the line holds it
                    let entry = entries
                        .iter()
                        .filter(|e| e.line <= line)
                        .max_by_key(|e| e.line)?;
                    prefix.push(entry.key.clone());
                    if entry.line == line && !contains_line_after(&entry.value, line) {
                        return Some(prefix.join("."));
                    }
                    walk(&entry.value, line, prefix).or_else(|| Some(prefix.join(".")))
                }
                Node::Seq(items) => {
                    let (i, item) = items
                        .iter()
                        .enumerate()
                        .filter(|(_, item)| first_line(item).is_some_and(|l| l <= line))
                        .max_by_key(|(_, item)| first_line(item))?;
                    prefix.push(i.to_string());
                    walk(item, line, prefix).or_else(|| Some(prefix.join(".")))
                }
                Node::Leaf => None,
            }
        }
        walk(self.root.as_ref()?, line, &mut Vec::new())
    }
}

fn first_line(node: &Node) -> Option<usize> {
    match node {
        Node::Map(entries) => entries.iter().map(|e| e.line).min(),
        Node::Seq(items) => items.iter().find_map(first_line),
        Node::Leaf => None,
    }
}

fn contains_line_after(node: &Node, line: usize) -> bool {
    first_line(node).is_some_and(|l| l <= line)
}

fn offsets_to_lines(node: Node, text: &str) -> Node {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    fn map(node: Node, f: &dyn Fn(usize) -> usize) -> Node {
        match node {
            Node::Map(entries) => Node::Map(
                entries
                    .into_iter()
                    .map(|e| Entry {
                        key: e.key,
                        line: f(e.line),
                        value: map(e.value, f),
                    })
                    .collect(),
            ),
            Node::Seq(items) => Node::Seq(items.into_iter().map(|n| map(n, f)).collect()),
            Node::Leaf => Node::Leaf,
        }
    }
    map(node, &line_of)
}

/// A key that knows where it was written: the line for YAML, the byte offset
/// for TOML (converted afterwards).
trait PositionedKey: for<'de> Deserialize<'de> {
    fn into_parts(self) -> (String, usize);
}

impl PositionedKey for serde_saphyr::Spanned<String> {
    fn into_parts(self) -> (String, usize) {
        let line = usize::try_from(self.referenced.line()).unwrap_or(0);
        (self.value, line)
    }
}

impl PositionedKey for toml::Spanned<String> {
    fn into_parts(self) -> (String, usize) {
        let offset = self.span().start;
        (self.into_inner(), offset)
    }
}

struct Tree<K> {
    root: Node,
    _key: PhantomData<K>,
}

impl<'de, K: PositionedKey> Deserialize<'de> for Tree<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let root = NodeSeed::<K>(PhantomData).deserialize(deserializer)?;
        Ok(Tree {
            root,
            _key: PhantomData,
        })
    }
}

struct NodeSeed<K>(PhantomData<K>);

impl<'de, K: PositionedKey> DeserializeSeed<'de> for NodeSeed<K> {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor::<K>(PhantomData))
    }
}

struct NodeVisitor<K>(PhantomData<K>);

macro_rules! leaf {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E>(self, _: $ty) -> Result<Node, E> { Ok(Node::Leaf) })*
    };
}

impl<'de, K: PositionedKey> Visitor<'de> for NodeVisitor<K> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a configuration value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = access.next_key::<K>()? {
            let (key, line) = key.into_parts();
            let value = access.next_value_seed(NodeSeed::<K>(PhantomData))?;
            entries.push(Entry { key, line, value });
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element_seed(NodeSeed::<K>(PhantomData))? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    leaf!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        NodeSeed::<K>(PhantomData).deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "a:\n  b: 1\n  c:\n    - x\n    - d: 2\ne: ~\n";
    const TOML: &str = "e = 1\n[a]\nb = 1\nc = [\"x\", {d = 2}]\n";

    #[test]
    fn yaml_lines_of_nested_keys() {
        let map = SourceMap::from_yaml(YAML);
        assert_eq!(map.line_of(&["a"]), Some(1));
        assert_eq!(map.line_of(&["a", "c"]), Some(3));
        assert_eq!(map.line_of(&["e"]), Some(6));
        // a missing leaf falls back to its closest written ancestor
        assert_eq!(map.line_of(&["a", "missing"]), Some(1));
        assert_eq!(map.line_of(&["nope"]), None);
    }

    #[test]
    fn toml_offsets_become_lines() {
        let map = SourceMap::from_toml(TOML);
        assert_eq!(map.line_of(&["e"]), Some(1));
        assert_eq!(map.line_of(&["a", "b"]), Some(3));
        assert_eq!(map.line_of(&["a", "c"]), Some(4));
    }

    #[test]
    fn key_at_line_names_the_deepest_key() {
        let map = SourceMap::from_yaml(YAML);
        assert_eq!(map.key_at_line(2).as_deref(), Some("a.b"));
        assert_eq!(map.key_at_line(5).as_deref(), Some("a.c.1.d"));
        assert_eq!(map.key_at_line(6).as_deref(), Some("e"));
    }

    #[test]
    fn broken_document_gives_no_lines() {
        let map = SourceMap::from_yaml("a: [\n");
        assert_eq!(map.line_of(&["a"]), None);
    }
}
