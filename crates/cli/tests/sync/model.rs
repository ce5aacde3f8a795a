//! The model-based test of the rule book (docs/reconciliation.md): a seeded
//! random sequence of inserts, updates and deletes on both apps (with a
//! lookup, a self-reference, NULL and '', quotes and big decimals),
//! interleaved with batch `sync` runs (the maps never started), then with
//! live rounds (the maps started, each round an incremental `sync`). After
//! every sync both apps are compared with a small reference model of the
//! rules, written here from the documentation, not from the engine:
//! convergence, and no write lost except where the conflict rule says so.
//!
//! The seed is printed; `DUALSYNC_TEST_SEED` replays it and
//! `DUALSYNC_MODEL_STEPS` sets the number of steps per phase.

use crate::util::{test_seed, Rng, Workspace};
use dualsync_testkit::{Kind, TestDb};
use std::collections::BTreeMap;

const APP_A: &str = "CREATE TABLE grp (code {key} PRIMARY KEY, label {text});
CREATE TABLE item (k {key} PRIMARY KEY, name {text}, amount DECIMAL(38,10), grp {key}, parent {key})";
const APP_B: &str = "CREATE TABLE grp (id {key} PRIMARY KEY, code {key} NOT NULL UNIQUE, label {text});
CREATE TABLE item (id {key} PRIMARY KEY, k {key} NOT NULL UNIQUE, name {text}, amount DECIMAL(38,10), grp_id {key}, parent_id {key})";

const CONFIG: &str = r#"
[state]
url = "sqlite://state.db"
[apps.a]
url = "A"
[apps.b]
url = "B"

[[maps]]
name = "groups"
master = "a"
[maps.a]
table = "grp"
key = "code"
[maps.b]
table = "grp"
key = "code"
id = "id"
id_default = "uuid"
[[maps.columns]]
a = "code"
b = "code"
[[maps.columns]]
a = "label"
b = "label"

[[maps]]
name = "items"
master = "a"
conflict = "master"
[maps.a]
table = "item"
key = "k"
[maps.b]
table = "item"
key = "k"
id = "id"
id_default = "uuid"
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
[[maps.columns]]
a = "amount"
b = "amount"
[[maps.columns]]
a = "grp"
b = "grp_id"
lookup = "groups"
[[maps.columns]]
a = "parent"
b = "parent_id"
lookup = "items"
"#;

const NAMES: [Option<&str>; 9] = [
    None,
    Some(""),
    Some("Ann"),
    Some("O'Brien"),
    Some("say \"hi\", then go"),
    Some("émoji 🚀 עברית"),
    Some("line\nbreak"),
    Some("Bob"),
    Some("Ann"),
];
const AMOUNTS: [Option<&str>; 9] = [
    None,
    Some("0"),
    Some("5"),
    Some("5.0"),
    Some("-5.5"),
    Some("12345678901234567890.1234567891"),
    Some("12345678901234567890.1234567892"),
    Some("0.0000000001"),
    Some("9007199254740993"),
];
/// Items that exist from the start and are never deleted: references point at them or at rows born in the same step.
const ANCHORS: [&str; 3] = ["a0", "a1", "a2"];

/// An item in common form: name, amount (normalized), group code, parent key.
type Item = [Option<String>; 4];
/// Every item by key.
type Items = BTreeMap<String, Item>;

/// Both apps of the test, with the workspace that syncs them.
struct Apps {
    w: Workspace,
    db: [TestDb; 2],
}

fn quote(v: Option<&str>) -> String {
    v.map_or("NULL".to_string(), |s| format!("'{}'", s.replace('\'', "''")))
}

/// Decimal text as a number means it: no exponent, no trailing zeros, no sign on zero.
fn normalize(amount: &str) -> String {
    let mut s = amount.trim().to_string();
    if let Some((mantissa, exponent)) = s.to_ascii_lowercase().split_once('e') {
        let exponent: i64 = exponent.parse().expect("an exponent");
        let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{int}{frac}");
        let point = int.len() as i64 + exponent;
        s = if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{sign}{digits}{}", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        s = s.trim_start_matches('0').to_string();
        if s.starts_with('.') || s.is_empty() {
            s.insert(0, '0');
        }
    }
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" || s.is_empty() {
        s = "0".into();
    }
    s
}

impl Apps {
    /// `capture` for the server apps: "trigger", or "log" (PostgreSQL tables then get
    /// `REPLICA IDENTITY FULL`: b's keys are not its primary keys).
    fn new(kinds: [Kind; 2], capture: &str) -> Option<Apps> {
        let db = [TestDb::new(kinds[0])?, TestDb::new(kinds[1])?];
        db[0].exec(APP_A);
        db[1].exec(APP_B);
        let mut config = CONFIG.to_string();
        for (side, name) in ["A", "B"].into_iter().enumerate() {
            let setting = match kinds[side] {
                Kind::Sqlite => String::new(),
                _ => format!("\ncapture = \"{capture}\""),
            };
            config = config.replace(&format!("\"{name}\""), &format!("{:?}{setting}", db[side].url));
            if kinds[side] == Kind::Postgres && capture == "log" {
                db[side].exec("ALTER TABLE grp REPLICA IDENTITY FULL; ALTER TABLE item REPLICA IDENTITY FULL");
            }
        }
        let w = Workspace::new();
        w.config(&config);
        Some(Apps { w, db })
    }

    /// One column of a table's rows in key order.
    fn column(&self, side: usize, sql: &str) -> Vec<Option<String>> {
        self.db[side].texts(sql)
    }

    /// Every item of one app, in common form (references as the referenced key).
    fn items(&self, side: usize) -> Items {
        let q = |expr: &str| self.column(side, &format!("SELECT {expr} FROM item i ORDER BY i.k"));
        let keys = q("i.k");
        let names = q("i.name");
        let amounts = q("CAST(i.amount AS {cast_text})");
        let (groups, parents) = if side == 0 {
            (q("i.grp"), q("i.parent"))
        } else {
            (q("(SELECT g.code FROM grp g WHERE g.id = i.grp_id)"), q("(SELECT p.k FROM item p WHERE p.id = i.parent_id)"))
        };
        let mut out = Items::new();
        for i in 0..keys.len() {
            let item = [names[i].clone(), amounts[i].as_deref().map(normalize), groups[i].clone(), parents[i].clone()];
            out.insert(keys[i].clone().expect("a key"), item);
        }
        out
    }

    fn groups(&self, side: usize) -> BTreeMap<String, Option<String>> {
        let codes = self.column(side, "SELECT code FROM grp ORDER BY code");
        let labels = self.column(side, "SELECT label FROM grp ORDER BY code");
        codes.into_iter().map(Option::unwrap).zip(labels).collect()
    }

    /// How app `side` stores a reference to item `key` (B: its id) for SQL.
    fn item_ref(&self, side: usize, key: Option<&str>) -> String {
        match (side, key) {
            (_, None) => "NULL".into(),
            (0, Some(k)) => quote(Some(k)),
            (_, Some(k)) => quote(self.column(1, &format!("SELECT id FROM item WHERE k = {}", quote(Some(k))))[0].as_deref()),
        }
    }

    fn group_ref(&self, side: usize, code: Option<&str>) -> String {
        match (side, code) {
            (_, None) => "NULL".into(),
            (0, Some(c)) => quote(Some(c)),
            (_, Some(c)) => quote(self.column(1, &format!("SELECT id FROM grp WHERE code = {}", quote(Some(c))))[0].as_deref()),
        }
    }

    fn sync(&self, args: &[&str], seed: u64, step: usize) {
        let run = self.w.run(args);
        if run.code != 0 {
            let errors = self.w.run(&["errors"]).stdout;
            panic!(
                "seed {seed}, step {step}: dualsync {args:?} exited {}:\n{}\n{}\nerror log:\n{errors}",
                run.code, run.stdout, run.stderr
            );
        }
    }
}

impl Apps {
    /// Incremental syncs until every captured change is read: a change becomes
    /// readable once older write transactions in its database have ended (on
    /// MariaDB, about a second after it was made).
    fn catch_up(&self, seed: u64, step: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            self.sync(&["sync"], seed, step);
            let status = self.w.run(&["--format", "json", "status"]).json();
            let lag: u64 =
                status["maps"].as_array().unwrap().iter().flat_map(|m| m["lag"].as_array().unwrap()).map(|n| n.as_u64().unwrap()).sum();
            if lag == 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "seed {seed}, step {step}: changes still unread after 20 s: {status}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// What the rule book says both apps hold after a sync, for one key:
/// `base` is what both held after the last sync, `a` and `b` what they hold now.
/// Master is app a; conflict = "master"; on_delete = "delete".
fn expected(base: Option<&Item>, a: Option<&Item>, b: Option<&Item>) -> Option<Item> {
    match (base, a, b) {
        // First contact: a row on one side is copied; on both, the master's values win.
        (None, a, b) => a.or(b).cloned(),
        (Some(_), None, None) => None,
        // Deleted in b: the delete flows unless a changed the row (a conflict the master a wins).
        (Some(base), Some(a), None) => (a != base).then(|| a.clone()),
        // Deleted in a (the master): the delete flows; against an update in b the master's delete wins too.
        (Some(_), None, Some(_)) => None,
        (Some(base), Some(a), Some(b)) => {
            let conflict = (0..4).any(|c| a[c] != base[c] && b[c] != base[c] && a[c] != b[c]);
            if conflict {
                return Some(a.clone()); // the master's whole row
            }
            Some(std::array::from_fn(|c| if a[c] != base[c] { a[c].clone() } else { b[c].clone() }))
        }
    }
}

fn expected_items(base: &Items, a: &Items, b: &Items) -> Items {
    let keys: std::collections::BTreeSet<&String> = base.keys().chain(a.keys()).chain(b.keys()).collect();
    keys.into_iter().filter_map(|k| expected(base.get(k), a.get(k), b.get(k)).map(|v| (k.clone(), v))).collect()
}

/// The random edits of one step on both apps: returns how many were made.
fn edit(apps: &Apps, rng: &mut Rng, fresh: &mut usize, amounts: &[Option<&str>]) -> usize {
    let ops = 1 + rng.below(8);
    // Keys deleted in this step: nothing may refer to them any more until the next sync.
    let mut doomed: Vec<String> = Vec::new();
    // Keys born in this step, per app: a reference may point at them.
    let mut born: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ops {
        let side = rng.below(2);
        let db = &apps.db[side];
        let groups: Vec<String> = apps.groups(side).into_keys().collect();
        let keys: Vec<String> = apps.items(side).into_keys().filter(|k| !doomed.contains(k)).collect();
        let mut targets: Vec<Option<String>> = vec![None];
        targets.extend(ANCHORS.iter().map(|a| Some(a.to_string())));
        targets.extend(born[side].iter().filter(|k| !doomed.contains(k)).map(|k| Some(k.clone())));
        let name = rng.pick(&NAMES);
        let amount = rng.pick(amounts);
        let group = if rng.below(3) == 0 { None } else { Some(groups[rng.below(groups.len())].clone()) };
        let parent = targets[rng.below(targets.len())].clone();
        match rng.below(10) {
            // A new item; now and then the key the other app just created too (both hold it without a base).
            0..=3 => {
                let other_new = born[1 - side].iter().find(|k| !keys.contains(k) && !doomed.contains(k)).cloned();
                let k = match other_new {
                    Some(k) if rng.below(4) == 0 => k,
                    _ => {
                        *fresh += 1;
                        format!("n{:04}", *fresh)
                    }
                };
                let (g, p) = (apps.group_ref(side, group.as_deref()), apps.item_ref(side, parent.as_deref()));
                let amount = quote(amount);
                if side == 0 {
                    db.exec(&format!("INSERT INTO item VALUES ({}, {}, {amount}, {g}, {p})", quote(Some(&k)), quote(name)));
                } else {
                    let id = format!("id-{k}-{}", rng.next() % 100_000);
                    db.exec(&format!("INSERT INTO item VALUES ('{id}', {}, {}, {amount}, {g}, {p})", quote(Some(&k)), quote(name)));
                }
                born[side].push(k);
            }
            // Change one or two columns of an item.
            4..=7 if !keys.is_empty() => {
                let k = keys[rng.below(keys.len())].clone();
                let (group_col, parent_col) = if side == 0 { ("grp", "parent") } else { ("grp_id", "parent_id") };
                let mut sets = Vec::new();
                let mut columns = vec![rng.below(4)];
                let second = rng.below(8);
                if second < 4 && second != columns[0] {
                    columns.push(second);
                }
                // An item never refers to itself: its parent is then left as it is.
                if parent.as_deref() == Some(k.as_str()) {
                    columns.retain(|&c| c != 3);
                    if columns.is_empty() {
                        columns.push(0);
                    }
                }
                for column in columns {
                    sets.push(match column {
                        0 => format!("name = {}", quote(name)),
                        1 => format!("amount = {}", quote(amount)),
                        2 => format!("{group_col} = {}", apps.group_ref(side, group.as_deref())),
                        _ => format!("{parent_col} = {}", apps.item_ref(side, parent.as_deref())),
                    });
                }
                db.exec(&format!("UPDATE item SET {} WHERE k = {}", sets.join(", "), quote(Some(&k))));
            }
            // Delete an item nothing refers to, in either app.
            8 => {
                let referenced = |s: usize| apps.items(s).values().filter_map(|i| i[3].clone()).collect::<Vec<_>>();
                let refs = [referenced(0), referenced(1)].concat();
                let free: Vec<&String> = keys.iter().filter(|k| !ANCHORS.contains(&k.as_str()) && !refs.contains(k)).collect();
                if let Some(k) = free.get(rng.below(free.len().max(1))).copied() {
                    db.exec(&format!("DELETE FROM item WHERE k = {}", quote(Some(k))));
                    doomed.push(k.clone());
                }
            }
            // A group's label, or a new group.
            _ => {
                let code = format!("g{}", rng.below(6));
                let label = quote(rng.pick(&NAMES));
                let exists = groups.contains(&code);
                match (side, exists) {
                    (_, true) => db.exec(&format!("UPDATE grp SET label = {label} WHERE code = '{code}'")),
                    (0, false) => db.exec(&format!("INSERT INTO grp VALUES ('{code}', {label})")),
                    (_, false) => db.exec(&format!("INSERT INTO grp VALUES ('gid-{code}', '{code}', {label})")),
                }
            }
        }
    }
    ops
}

fn run_model(kinds: [Kind; 2], capture: &str, default_steps: usize) {
    let Some(apps) = Apps::new(kinds, capture) else { return };
    let seed = test_seed();
    let steps = std::env::var("DUALSYNC_MODEL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_steps);
    let label = format!("{} <-> {} ({capture} capture)", kinds[0].name(), kinds[1].name());
    // Straight to stderr: the seed must be seen to replay a failure.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "model {label}: seed {seed}, {steps} steps per phase (DUALSYNC_TEST_SEED replays it)");
    let mut rng = Rng::new(seed);
    // SQLite keeps a NUMERIC value of more than 15 significant digits as an 8-byte float (its own
    // rounding, before dualsync reads it): such amounts only go between servers that hold them.
    let exact_only = kinds.contains(&Kind::Sqlite) && kinds != [Kind::Sqlite, Kind::Sqlite];
    let amounts: Vec<Option<&str>> = AMOUNTS.iter().copied().filter(|a| !exact_only || a.is_none_or(|a| a.len() < 16)).collect();
    apps.db[0].exec("INSERT INTO grp VALUES ('g0', 'zero'), ('g1', 'one')");
    apps.db[0]
        .exec("INSERT INTO item VALUES ('a0', 'anchor', 1, 'g0', NULL), ('a1', 'anchor', 2, NULL, 'a0'), ('a2', NULL, NULL, 'g1', NULL)");
    let mut base: Items = Items::new();
    let mut fresh = 0;
    let mut edits = 0;
    for step in 0..steps * 2 {
        let live = step >= steps;
        if step == steps {
            // Live phase: capture on both maps; `start` re-diffs the synced maps against their bases.
            apps.sync(&["start", "groups"], seed, step);
            apps.sync(&["start", "items"], seed, step);
        }
        if step > 0 {
            edits += edit(&apps, &mut rng, &mut fresh, &amounts);
        }
        let (a, b) = (apps.items(0), apps.items(1));
        let want = expected_items(&base, &a, &b);
        if live {
            apps.catch_up(seed, step);
        } else {
            apps.sync(&["sync", "--allow-deletes"], seed, step);
        }
        let (a_now, b_now) = (apps.items(0), apps.items(1));
        let context = || format!("{label}, seed {seed}, step {step} ({})", if live { "live" } else { "batch" });
        assert_eq!(apps.groups(0), apps.groups(1), "{}: the groups differ", context());
        if a_now != want || b_now != want {
            let keys: std::collections::BTreeSet<&String> = want.keys().chain(a_now.keys()).chain(b_now.keys()).collect();
            let mut report = String::new();
            for k in keys {
                let (w, x, y) = (want.get(k), a_now.get(k), b_now.get(k));
                if x != w || y != w {
                    report.push_str(&format!(
                        "\n  {k}: expected {w:?}\n       app a {x:?}\n       app b {y:?}\n       base {:?}\n       before: a {:?} b {:?}",
                        base.get(k),
                        a.get(k),
                        b.get(k)
                    ));
                }
            }
            panic!("{}: the apps differ from the rule book:{report}", context());
        }
        base = want;
    }
    let errors = apps.w.run(&["--format", "json", "errors"]).json();
    assert_eq!(errors.as_array().map(Vec::len), Some(0), "{label}, seed {seed}: rows failed: {errors}");
    assert!(edits > steps, "{label}, seed {seed}: the test edited: {edits}");
}

#[test]
fn random_edits_on_both_apps_follow_the_rule_book_on_sqlite() {
    run_model([Kind::Sqlite, Kind::Sqlite], "trigger", 25);
}

#[test]
fn random_edits_on_both_apps_follow_the_rule_book_on_postgres_and_mariadb() {
    // Longer in CI, where the servers are there for it.
    let steps = if std::env::var("CI").is_ok_and(|v| v == "true") { 60 } else { 15 };
    // Both capture modes: the servers' logs, and triggers.
    run_model([Kind::Mariadb, Kind::Postgres], "log", steps);
    run_model([Kind::Mariadb, Kind::Postgres], "trigger", steps);
    run_model([Kind::Sqlite, Kind::Postgres], "trigger", steps);
}
