//! The fault matrix: how many runs a fault scenario makes (`KB_FAULT_RUNS`:
//! a few in the test suite, 20 from `scripts/faults`), how the records that
//! came through compare with the source's (lost, duplicated, changed), and
//! one row per scenario appended to the file `KB_FAULTS_REPORT` names, which
//! `scripts/faults` turns into the table of `docs/reliability.md`.

use std::collections::HashMap;
use std::hash::Hash;
use std::io::Write;

/// Runs of a scenario: `KB_FAULT_RUNS`, else `in_suite`.
pub fn runs(in_suite: usize) -> usize {
    std::env::var("KB_FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(in_suite)
}

/// How records that came through differ from the source's, as multisets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Source records that did not come through.
    pub lost: usize,
    /// Source records that came through more than once (the extra copies).
    pub duplicated: usize,
    /// Records that came through and are no source record (altered bytes,
    /// or records of another client).
    pub changed: usize,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.changed += other.changed;
    }

    pub fn clean(&self) -> bool {
        *self == Tally::default()
    }
}

/// Compares `got` with `expected` as multisets.
pub fn tally<T: Eq + Hash>(expected: &[T], got: &[T]) -> Tally {
    let mut left: HashMap<&T, usize> = HashMap::new();
    for r in expected {
        *left.entry(r).or_default() += 1;
    }
    let mut out = Tally::default();
    for r in got {
        match left.get_mut(r) {
            Some(n) if *n > 0 => *n -= 1,
            Some(_) => out.duplicated += 1,
            None => out.changed += 1,
        }
    }
    out.lost = left.values().sum();
    out
}

/// [`tally`] per partition, added up; a partition missing from `got` is empty.
pub fn tally_partitions<T: Eq + Hash>(
    expected: &std::collections::BTreeMap<i32, Vec<T>>,
    got: &std::collections::BTreeMap<i32, Vec<T>>,
) -> Tally {
    let mut out = Tally::default();
    for (p, want) in expected {
        out.add(tally(want, got.get(p).map_or(&[][..], |g| &g[..])));
    }
    out
}

/// Appends a row to the report `scripts/faults` collects (nothing when
/// `KB_FAULTS_REPORT` is not set).
pub fn row(scenario: &str, runs: usize, t: Tally, outcome: &str) {
    let Ok(path) = std::env::var("KB_FAULTS_REPORT") else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open `{path}`: {e}"));
    writeln!(
        f,
        "{scenario}\t{runs}\t{}\t{}\t{}\t{outcome}",
        t.lost, t.duplicated, t.changed
    )
    .unwrap();
}

#[test]
fn tally_counts_lost_duplicated_and_changed_records() {
    assert!(tally(&[1, 2, 3], &[1, 2, 3]).clean());
    assert_eq!(
        tally(&[1, 2, 3, 3], &[1, 1, 3, 9]),
        Tally {
            lost: 2,
            duplicated: 1,
            changed: 1
        }
    );
}
