//! A leak scanner for the end-to-end tests: known test credentials are
//! planted in configurations and the environment, and every byte the binary
//! leaves behind (stdout, stderr, files) is searched for them, in clear and in
//! the forms a credential takes on its way out (JSON-escaped, URL-encoded,
//! base64 as in `Authorization: Basic`, hex). A hit names where and which
//! secret, never the secret itself, so a failing test prints nothing secret.

use std::fmt;
use std::path::Path;

/// The credentials of one test and the byte patterns that betray them.
#[derive(Default)]
pub struct Scanner {
    needles: Vec<Needle>,
}

struct Needle {
    /// The name of the secret (`registry basic auth password`).
    secret: String,
    /// How it was encoded (`raw`, `base64+1`, ...).
    form: String,
    /// The pattern (ASCII: every form of an ASCII secret is).
    text: String,
}

/// One place a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Where: a file path or an output's label.
    pub origin: String,
    pub secret: String,
    /// The forms it was found in (`raw, base64+1`).
    pub form: String,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.origin, self.secret, self.form)
    }
}

/// Patterns shorter than this are left out: they would match by chance
/// (a base64 alignment of a short value).
const MIN_NEEDLE: usize = 8;

/// A distinctive test credential: `kb-test-secret-<random hex>-<what>`,
/// then characters that JSON and URL encoding change (`"`, `\`, `/`, `+`, `%`,
/// space, `&`, `=`), so that their encoded forms differ from the clear one.
/// Safe inside a YAML single-quoted string; holds no `$` and no `'`.
pub fn test_secret(what: &str) -> String {
    format!("{}/+\"\\ %&=x", secret_core(what))
}

/// The alphanumeric head of [`test_secret`]: unique to the test run.
pub fn secret_core(what: &str) -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| format!("{:016x}", fastrand::u64(..)));
    format!("kb-test-secret-{tag}-{what}")
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Plants `value` under `name`: found in clear, JSON-escaped, URL-encoded
    /// (path and form style), base64 (standard and URL-safe alphabets, at each
    /// of the three alignments a value can have inside a longer encoded text),
    /// and lower-case hex. A [`test_secret`] is also found by its core alone.
    pub fn add(&mut self, name: &str, value: &str) -> &mut Self {
        assert!(value.is_ascii(), "test secrets are ASCII");
        let mut forms: Vec<(String, String)> = vec![
            ("raw".into(), value.to_owned()),
            ("JSON-escaped".into(), json_escaped(value)),
            ("URL-encoded".into(), percent_encoded(value)),
            ("form-encoded".into(), form_encoded(value)),
            ("hex".into(), hex(value.as_bytes())),
        ];
        if let Some(core) = value
            .split(['/', '+', '"', '\\', ' ', '%', '&', '='])
            .next()
            && core.len() < value.len()
        {
            forms.push(("raw, its head".into(), core.to_owned()));
        }
        for skip in 0..3 {
            let bytes = value.as_bytes();
            if bytes.len() <= skip {
                break;
            }
            // the whole 3-byte groups from `skip` on encode the same wherever
            // the value starts, as long as it starts at `skip` (mod 3) before a
            // group boundary
            let body = &bytes[skip..];
            let whole = &body[..body.len() / 3 * 3];
            let std = base64(whole, STANDARD);
            let url = base64(whole, URL_SAFE);
            if url != std {
                forms.push((format!("base64url+{skip}"), url));
            }
            forms.push((format!("base64+{skip}"), std));
        }
        // the exact encoding, padding included (a whole `Basic` credential)
        forms.push(("base64".into(), base64_padded(value.as_bytes())));
        for (form, text) in forms {
            if text.len() < MIN_NEEDLE
                || self
                    .needles
                    .iter()
                    .any(|n| n.secret == name && n.text == text)
            {
                continue;
            }
            self.needles.push(Needle {
                secret: name.to_owned(),
                form,
                text,
            });
        }
        self
    }

    /// Plants a basic-auth pair: the password alone, and `user:password` as
    /// the `Authorization: Basic` header carries it.
    pub fn add_basic(&mut self, name: &str, user: &str, password: &str) -> &mut Self {
        self.add(name, password);
        self.add(
            &format!("{name} (as `user:password`)"),
            &format!("{user}:{password}"),
        )
    }

    /// The secrets' names, for a summary of what was searched.
    pub fn secrets(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.needles.iter().map(|n| n.secret.as_str()).collect();
        names.dedup();
        names
    }

    /// Every secret found in `bytes`: one hit per secret, naming the forms
    /// it was found in.
    pub fn scan(&self, origin: &str, bytes: &[u8]) -> Vec<Hit> {
        // `str::contains` is std's optimised search (the tests are built
        // without optimisation); every needle is ASCII, and lossy decoding
        // keeps every ASCII byte where it was
        let text = String::from_utf8_lossy(bytes);
        let mut hits: Vec<Hit> = Vec::new();
        for n in self
            .needles
            .iter()
            .filter(|n| text.contains(n.text.as_str()))
        {
            match hits.iter_mut().find(|h| h.secret == n.secret) {
                Some(hit) => {
                    hit.form.push_str(", ");
                    hit.form.push_str(&n.form);
                }
                None => hits.push(Hit {
                    origin: origin.to_owned(),
                    secret: n.secret.clone(),
                    form: n.form.clone(),
                }),
            }
        }
        hits
    }

    /// [`Scanner::scan`] over every file under `dir`, recursively (raw bytes:
    /// compressed segments too); also file and folder names. Gives the hits
    /// and the number of files read.
    pub fn scan_dir(&self, dir: &Path) -> (Vec<Hit>, usize) {
        let mut hits = Vec::new();
        let mut files = 0;
        let mut pending = vec![dir.to_path_buf()];
        while let Some(path) = pending.pop() {
            let shown = path.display().to_string();
            hits.extend(self.scan(&format!("the name of `{shown}`"), shown.as_bytes()));
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    pending.push(entry.unwrap().path());
                }
            } else {
                files += 1;
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading `{shown}` for the scan: {e}"));
                hits.extend(self.scan(&shown, &bytes));
            }
        }
        (hits, files)
    }
}

fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Every byte but the unreserved ones as `%XX`.
fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `application/x-www-form-urlencoded`, as an OAuth token request carries it.
fn form_encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of whole 3-byte groups (the caller passes a multiple of 3).
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for group in bytes.chunks_exact(3) {
        let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for shift in [18, 12, 6, 0] {
            out.push(alphabet[(n >> shift & 63) as usize] as char);
        }
    }
    out
}

/// Standard base64 with `=` padding.
pub fn base64_padded(bytes: &[u8]) -> String {
    let whole = bytes.len() / 3 * 3;
    let mut out = base64(&bytes[..whole], STANDARD);
    let rest = &bytes[whole..];
    if !rest.is_empty() {
        let mut group = [0u8; 3];
        group[..rest.len()].copy_from_slice(rest);
        let encoded = base64(&group, STANDARD);
        out.push_str(&encoded[..rest.len() + 1]);
        out.push_str(&"=".repeat(3 - rest.len()));
    }
    out
}
