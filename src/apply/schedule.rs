//! Which plan steps may run at the same time.
//!
//! A step may start once every step it must follow has finished. What it
//! must follow is its `depends_on`, plus edges derived here, because the
//! plan's order carries constraints `depends_on` does not spell out:
//!
//! - steps of one scope (a subject, a context, the global scope) keep plan
//!   order: a subject's versions get their numbers from the order they are
//!   registered in, and its temporary mode and level come before its writes
//!   and are put back after them;
//! - a global or context-level step is a barrier for its scope: it waits for
//!   every earlier step in the scope, and every later one waits for it (a
//!   scope's mode governs all the subjects under it);
//! - in one target context, registrations that carry their ID (IMPORT) and
//!   registrations whose ID the registry assigns keep their relative order:
//!   an assigned ID must not take a forced or pinned one, and a schema the
//!   plan expects to reuse an ID registered just before must find it;
//! - deletions keep plan order among themselves (references between target
//!   versions decide which may go first), and against registrations whose
//!   references name the deleted subject.
//!
//! All edges run from an earlier step to a later one, so running one step at
//! a time gives exactly the plan's order.

use std::collections::{BTreeSet, HashMap};

use crate::model::{context_of, resolve_reference_subject};
use crate::plan::{Change, Step};

/// The static part: what every step (by its position in the plan) must follow.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Steps (positions) that must have finished first; all earlier ones.
    preds: Vec<Vec<usize>>,
    /// Classes whose members before this step must all have finished first.
    gates: Vec<Vec<usize>>,
    /// Classes the step belongs to.
    members: Vec<Vec<usize>>,
    classes: usize,
}

impl Schedule {
    /// The constraints of `steps`, in plan order. A `depends_on` naming an
    /// unknown or a later step is ignored (plan order already puts the step
    /// after every earlier one when run one at a time).
    pub fn new(steps: &[Step]) -> Self {
        let n = steps.len();
        let index: HashMap<u32, usize> = steps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut gates: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut class_of: HashMap<(String, bool), usize> = HashMap::new();

        let mut last_in_scope: HashMap<Option<String>, usize> = HashMap::new();
        let mut last_delete: Option<usize> = None;
        let mut last_delete_of: HashMap<&str, usize> = HashMap::new();
        let mut referrers_since_delete: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, step) in steps.iter().enumerate() {
            let p = &mut preds[j];
            p.extend(
                step.depends_on
                    .iter()
                    .filter_map(|d| index.get(d).copied())
                    .filter(|&i| i < j),
            );
            if let Some(i) = last_in_scope.insert(super::scope(step), j) {
                p.push(i);
            }
            match &step.change {
                Change::DeleteVersion { .. }
                | Change::DeleteSubject { .. }
                | Change::SoftDeleteVersion { .. } => {
                    p.extend(last_delete.replace(j));
                    if let Some(s) = step.subject() {
                        p.extend(referrers_since_delete.remove(s).unwrap_or_default());
                        last_delete_of.insert(s, j);
                    }
                }
                Change::Register {
                    subject,
                    references,
                    import_id,
                    ..
                } => {
                    for r in references {
                        let to = resolve_reference_subject(subject, &r.subject);
                        p.extend(last_delete_of.get(to.as_str()));
                        referrers_since_delete.entry(to).or_default().push(j);
                    }
                    let ctx = context_of(subject).to_owned();
                    let with_id = import_id.is_some();
                    let mut class = |with_id: bool| {
                        let next = class_of.len();
                        *class_of.entry((ctx.clone(), with_id)).or_insert(next)
                    };
                    members[j].push(class(with_id));
                    gates[j].push(class(!with_id));
                }
                _ => {}
            }
        }

        // global and context-level steps: barriers over their scope
        let context = |s: &Step| -> Option<String> {
            match (s.subject(), s.context()) {
                (Some(subject), _) => Some(context_of(subject).to_owned()),
                (None, c) => c.map(str::to_owned),
            }
        };
        for (b, barrier) in steps.iter().enumerate() {
            if barrier.subject().is_some() {
                continue;
            }
            let scope = context(barrier);
            for (k, step) in steps.iter().enumerate() {
                let covered = scope.is_none() || context(step) == scope;
                if k == b || !covered {
                    continue;
                }
                if k < b {
                    preds[b].push(k);
                } else {
                    preds[k].push(b);
                }
            }
        }
        for p in &mut preds {
            p.sort_unstable();
            p.dedup();
        }
        Self {
            preds,
            gates,
            members,
            classes: class_of.len(),
        }
    }

    /// How many steps.
    pub fn len(&self) -> usize {
        self.preds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.preds.is_empty()
    }

    /// Whether step `j` must wait for step `i` (`i` before `j`), directly or
    /// through a class, not counting what follows transitively.
    pub fn must_follow(&self, j: usize, i: usize) -> bool {
        i < j
            && (self.preds[j].binary_search(&i).is_ok()
                || self.gates[j].iter().any(|c| self.members[i].contains(c)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Ready,
    Running,
    Finished,
}

/// The moving part: which steps have finished, run, or may start.
#[derive(Debug)]
pub struct Scheduler<'s> {
    schedule: &'s Schedule,
    followers: Vec<Vec<usize>>,
    /// Unfinished explicit predecessors.
    waiting: Vec<usize>,
    /// Per class, its unfinished members.
    unfinished: Vec<BTreeSet<usize>>,
    /// Per class, the steps it gates, in order.
    gated: Vec<Vec<usize>>,
    state: Vec<State>,
    ready: BTreeSet<usize>,
    running: usize,
    left: usize,
}

impl<'s> Scheduler<'s> {
    /// A scheduler where the steps for which `done` holds (journalled by an
    /// earlier run) count as finished.
    pub fn new(schedule: &'s Schedule, done: impl Fn(usize) -> bool) -> Self {
        let n = schedule.len();
        let mut followers = vec![Vec::new(); n];
        let mut waiting = vec![0; n];
        let mut unfinished = vec![BTreeSet::new(); schedule.classes];
        let mut gated = vec![Vec::new(); schedule.classes];
        let mut state = vec![State::Waiting; n];
        let mut left = 0;
        for j in 0..n {
            if done(j) {
                state[j] = State::Finished;
                continue;
            }
            left += 1;
            for &i in &schedule.preds[j] {
                if !done(i) {
                    followers[i].push(j);
                    waiting[j] += 1;
                }
            }
            for &c in &schedule.members[j] {
                unfinished[c].insert(j);
            }
            for &c in &schedule.gates[j] {
                gated[c].push(j);
            }
        }
        let mut me = Self {
            schedule,
            followers,
            waiting,
            unfinished,
            gated,
            state,
            ready: BTreeSet::new(),
            running: 0,
            left,
        };
        for j in 0..n {
            me.check(j);
        }
        me
    }

    fn check(&mut self, j: usize) {
        if self.state[j] != State::Waiting || self.waiting[j] > 0 {
            return;
        }
        let open = self.schedule.gates[j]
            .iter()
            .all(|&c| self.unfinished[c].first().is_none_or(|&m| m >= j));
        if open {
            self.state[j] = State::Ready;
            self.ready.insert(j);
        }
    }

    /// The first step (in plan order) that may start now.
    pub fn next_ready(&self) -> Option<usize> {
        self.ready.first().copied()
    }

    /// Every step that may start now, in plan order.
    pub fn ready(&self) -> impl Iterator<Item = usize> + '_ {
        self.ready.iter().copied()
    }

    /// Marks a ready step as running.
    pub fn start(&mut self, j: usize) {
        assert_eq!(self.state[j], State::Ready, "step {j} is not ready");
        self.ready.remove(&j);
        self.state[j] = State::Running;
        self.running += 1;
    }

    /// Marks a running step as finished (successfully): what waited for it
    /// may become ready.
    pub fn finish(&mut self, j: usize) {
        assert_eq!(self.state[j], State::Running, "step {j} is not running");
        self.state[j] = State::Finished;
        self.running -= 1;
        self.left -= 1;
        for f in std::mem::take(&mut self.followers[j]) {
            self.waiting[f] -= 1;
            self.check(f);
        }
        for &c in &self.schedule.members[j] {
            let before = self.unfinished[c].first().copied();
            self.unfinished[c].remove(&j);
            let after = self.unfinished[c].first().copied().unwrap_or(usize::MAX);
            if before.is_some_and(|b| b >= after) {
                continue;
            }
            // steps gated by `c` with an index in (before, after] are free now
            let lo = before.map_or(0, |b| b + 1);
            let gated = std::mem::take(&mut self.gated[c]);
            let from = gated.partition_point(|&g| g < lo);
            let to = gated.partition_point(|&g| g <= after);
            for &g in &gated[from..to] {
                self.check(g);
            }
            self.gated[c] = gated;
        }
    }

    /// Steps running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Every step has finished.
    pub fn all_finished(&self) -> bool {
        self.left == 0
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::{Path, PathBuf};

    use serde::Deserialize;

    use super::*;
    use crate::config::RegistryRestore;
    use crate::model::RegistrySnapshot;
    use crate::plan::{PinnedIds, Plan, PlanOptions, StepKind, parse_id_mapping_file, plan};

    #[derive(Deserialize)]
    struct FixtureOptions {
        restore: RegistryRestore,
        #[serde(default)]
        plan: Knobs,
    }

    #[derive(Deserialize, Default)]
    struct Knobs {
        include_references: Option<bool>,
        restore_global_settings: Option<bool>,
    }

    /// The plan of every fixture scenario that plans (conflicts or not).
    pub(crate) fn fixture_plans() -> Vec<(String, Plan)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plan");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("options.yaml").exists())
            .collect();
        dirs.sort();
        let mut out = Vec::new();
        for dir in dirs {
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
            let fixture: FixtureOptions = serde_saphyr::from_str(&read("options.yaml")).unwrap();
            let pinned = match &fixture.restore.id_mapping_file {
                Some(file) => parse_id_mapping_file(read(file.as_str()).as_bytes()).unwrap(),
                None => PinnedIds::new(),
            };
            let mut options = PlanOptions::from_restore(&fixture.restore, pinned);
            if let Some(v) = fixture.plan.include_references {
                options.include_references = v;
            }
            if let Some(v) = fixture.plan.restore_global_settings {
                options.restore_global_settings = v;
            }
            let backup: RegistrySnapshot = serde_json::from_str(&read("backup.json")).unwrap();
            let target: RegistrySnapshot = serde_json::from_str(&read("target.json")).unwrap();
            if let Ok(p) = plan(&backup, &target, &options) {
                out.push((dir.file_name().unwrap().to_string_lossy().into_owned(), p));
            }
        }
        assert!(out.len() >= 10, "the fixtures plan");
        out
    }

    /// One run the scheduler allows: steps start when ready and finish in
    /// any order; returns (start time, finish time) per step.
    fn simulate(schedule: &Schedule, bound: usize, rng: &mut fastrand::Rng) -> Vec<(usize, usize)> {
        let mut sched = Scheduler::new(schedule, |_| false);
        let mut times = vec![(usize::MAX, usize::MAX); schedule.len()];
        let mut running: Vec<usize> = Vec::new();
        let mut clock = 0;
        while !sched.all_finished() {
            let ready: Vec<usize> = sched.ready().collect();
            let can_start = !ready.is_empty() && running.len() < bound;
            if can_start && (running.is_empty() || rng.bool()) {
                let j = ready[rng.usize(..ready.len())];
                sched.start(j);
                times[j].0 = clock;
                running.push(j);
            } else {
                assert!(
                    !running.is_empty(),
                    "deadlock: nothing ready, nothing running"
                );
                let j = running.swap_remove(rng.usize(..running.len()));
                sched.finish(j);
                times[j].1 = clock;
            }
            clock += 1;
        }
        assert_eq!(sched.running(), 0);
        times
    }

    fn without_depends_on(plan: &Plan) -> Vec<Step> {
        let mut steps = plan.steps.clone();
        for s in &mut steps {
            s.depends_on.clear();
        }
        steps
    }

    #[test]
    fn one_at_a_time_is_plan_order() {
        for (name, plan) in fixture_plans() {
            for steps in [plan.steps.clone(), without_depends_on(&plan)] {
                let schedule = Schedule::new(&steps);
                let mut sched = Scheduler::new(&schedule, |_| false);
                let mut order = Vec::new();
                while let Some(j) = sched.next_ready() {
                    sched.start(j);
                    sched.finish(j);
                    order.push(j);
                }
                assert_eq!(order, (0..steps.len()).collect::<Vec<_>>(), "{name}");
            }
        }
    }

    /// For every fixture (and for it again with `depends_on` taken out, so
    /// that the derived edges alone are tested), many random runs: a
    /// subject's registrations, and every step of one scope, finish before
    /// the next starts; global and context steps run alone in their scope;
    /// `depends_on` is honoured.
    #[test]
    fn any_allowed_run_keeps_each_subjects_registrations_in_plan_order() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (name, plan) in fixture_plans() {
            for (variant, steps) in [
                ("plan", plan.steps.clone()),
                ("no depends_on", without_depends_on(&plan)),
            ] {
                let schedule = Schedule::new(&steps);
                for round in 0..200 {
                    let bound = [2, 3, 8, usize::MAX][round % 4];
                    let times = simulate(&schedule, bound, &mut rng);
                    let at = format!("{name} ({variant}), round {round}");
                    for (j, b) in steps.iter().enumerate() {
                        for (i, a) in steps[..j].iter().enumerate() {
                            let ordered = times[i].1 < times[j].0;
                            let same_scope = super::super::scope(a) == super::super::scope(b);
                            let global = |s: &Step| s.subject().is_none() && s.context().is_none();
                            let ctx = |s: &Step| {
                                s.subject()
                                    .map(|n| context_of(n).to_owned())
                                    .or_else(|| s.context().map(str::to_owned))
                            };
                            let barrier = (a.subject().is_none() || b.subject().is_none())
                                && (global(a) || global(b) || ctx(a) == ctx(b));
                            if same_scope || barrier {
                                assert!(ordered, "{at}: step {} before {}", a.id, b.id);
                            }
                            if variant == "plan" && b.depends_on.contains(&a.id) {
                                assert!(ordered, "{at}: step {} needs {}", b.id, a.id);
                            }
                        }
                    }
                    // the registration order of each subject is the plan's
                    let mut regs: Vec<usize> = (0..steps.len())
                        .filter(|&j| steps[j].kind() == StepKind::Register)
                        .collect();
                    regs.sort_by_key(|&j| times[j].0);
                    let mut per_subject: HashMap<&str, Vec<u32>> = HashMap::new();
                    for j in regs {
                        per_subject
                            .entry(steps[j].subject().unwrap())
                            .or_default()
                            .push(steps[j].id);
                    }
                    for (s, ids) in per_subject {
                        assert!(ids.is_sorted(), "{at}: {s} registered as {ids:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn independent_subjects_may_overlap() {
        let plans = fixture_plans();
        // the example with `force_register: true`: a temporary level per subject
        let (_, plan) = plans.iter().find(|(n, _)| n == "force-register").unwrap();
        let schedule = Schedule::new(&plan.steps);
        let sched = Scheduler::new(&schedule, |_| false);
        // both temporary levels may go at once
        assert_eq!(sched.ready().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn forced_and_assigned_ids_keep_their_order_in_a_context() {
        let plans = fixture_plans();
        let (_, plan) = plans.iter().find(|(n, _)| n == "force-register").unwrap();
        let mut steps = without_depends_on(plan);
        // payments-value v1 (step 5) carries its ID, the others do not
        let five = steps.iter().position(|s| s.id == 5).unwrap();
        let Change::Register { import_id, .. } = &mut steps[five].change else {
            panic!("step 5 registers");
        };
        *import_id = Some(2);
        let schedule = Schedule::new(&steps);
        let reg = |id: u32| steps.iter().position(|s| s.id == id).unwrap();
        assert!(schedule.must_follow(reg(5), reg(3)));
        assert!(schedule.must_follow(reg(5), reg(4)));
        let mut sched = Scheduler::new(&schedule, |_| false);
        // after the levels, orders-value v1 may run, payments-value v1 may not
        for j in [0, 1] {
            sched.start(j);
            sched.finish(j);
        }
        assert_eq!(sched.ready().collect::<Vec<_>>(), vec![reg(3)]);
        sched.start(reg(3));
        sched.finish(reg(3));
        assert_eq!(sched.ready().collect::<Vec<_>>(), vec![reg(4)]);
        sched.start(reg(4));
        sched.finish(reg(4));
        assert!(sched.ready().any(|j| j == reg(5)));
    }

    #[test]
    fn a_delete_waits_for_registrations_referencing_its_subject() {
        let plans = fixture_plans();
        let (_, plan) = plans.iter().find(|(n, _)| n == "renamed-subjects").unwrap();
        let mut steps = without_depends_on(plan);
        // restored-payments-value v1 references restored-orders-value v1
        let mut delete = steps[0].clone();
        delete.id = steps.len() as u32 + 1;
        delete.change = Change::DeleteVersion {
            subject: "restored-orders-value".into(),
            version: 1,
            permanent: false,
            replace: false,
        };
        steps.push(delete);
        let schedule = Schedule::new(&steps);
        let referrer = steps
            .iter()
            .position(|s| {
                matches!(&s.change, Change::Register { references, .. } if !references.is_empty())
            })
            .unwrap();
        assert!(schedule.must_follow(steps.len() - 1, referrer));
    }
}
