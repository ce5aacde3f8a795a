use crate::cli::Cli;
use crate::exit::{CliResult, FAILURE, OK, USAGE};
use crate::output::{cell, is_json, print_json, Table};
use dualsync_engine::check::{Cause, Severity};
use dualsync_engine::plan::{plan as compute, PartitionPlan};
use dualsync_engine::Apps;
use dualsync_model::Config;

/// The guidance matrix, computed from the real data. Writes nothing.
pub fn plan(cli: &Cli, config: &Config, maps: &[String]) -> CliResult {
    let apps = Apps::open(config)?;
    let p = compute(config, &apps, maps)?;
    let errors: Vec<_> = p.findings.iter().filter(|f| f.severity == Severity::Error).collect();
    if is_json(cli.format) {
        print_json(&p.to_json());
    } else {
        for f in &p.findings {
            println!("{}: {f}", if f.severity == Severity::Error { "ERROR" } else { "warning" });
        }
        if !errors.is_empty() {
            println!("the data cannot be read as configured: fix the errors above (see `dualsync check`)");
        } else {
            println!(
                "run order (a stage's maps run side by side): {}",
                p.order.iter().map(|s| s.join(", ")).collect::<Vec<_>>().join(" → ")
            );
            print_matrix(cli, &p.partitions);
            if p.problems.is_empty() {
                println!("no problems found: every row can be written");
            } else {
                println!("\nproblems that would fail rows (all of them would be in the error log):");
                let mut t = Table::new(&["map", "problem", "rows", "examples (company, key)"]).right_align(&[2]);
                for x in &p.problems {
                    t.row(vec![x.map.clone(), x.kind.to_string(), x.count.to_string(), cell(&x.examples.join("; "), 70)]);
                }
                print!("{}", t.render());
            }
            for w in &p.warnings {
                println!("warning: {w}");
            }
            let rates: Vec<String> = p.write_rates.iter().map(|(a, r)| format!("{a} {r:.0} rows/s")).collect();
            println!(
                "\nestimated sync time: {:.1}s — reading and comparing took {:.1}s here (measured); writes at the rates probed just now ({})",
                p.estimate_seconds,
                p.read_seconds,
                if rates.is_empty() { "nothing to write".to_string() } else { rates.join(", ") }
            );
            println!("nothing was written: every write was checked, and the probe batches were rolled back");
        }
    }
    Ok(if errors.iter().any(|f| f.cause == Cause::Environment) {
        FAILURE
    } else if !errors.is_empty() {
        USAGE
    } else {
        OK
    })
}

/// One line per map (per company with -v): rows, what would be written each way, and the approach.
fn print_matrix(cli: &Cli, partitions: &[PartitionPlan]) {
    let Some(first) = partitions.first() else { return };
    let (a, b) = (&first.apps[0], &first.apps[1]);
    let mut t = Table::new(&[
        "map",
        "company",
        "rows (first/second app)",
        "→ insert/update/delete",
        "← insert/update/delete",
        "unchanged",
        "failing",
        "approach",
    ])
    .right_align(&[2, 3, 4, 5, 6]);
    let mut rows: Vec<(String, String, PartitionPlan)> = Vec::new();
    for p in partitions {
        if cli.verbose {
            rows.push((p.map.clone(), p.company.clone(), p.clone()));
            continue;
        }
        match rows.iter_mut().find(|r| r.0 == p.map) {
            Some(r) => {
                let s = &mut r.2;
                for i in 0..2 {
                    s.rows[i] += p.rows[i];
                    s.inserts[i] += p.inserts[i];
                    s.updates[i] += p.updates[i];
                    s.deletes[i] += p.deletes[i];
                }
                s.unchanged += p.unchanged;
                s.failing += p.failing;
                if s.approach != p.approach {
                    s.approach = "per company: see -v".into();
                }
                r.1 = format!("{} companies", r.1.split(' ').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(1) + 1);
                if p.seed_note.is_some() {
                    s.seed_note = p.seed_note.clone();
                }
            }
            None => rows.push((p.map.clone(), if p.company.is_empty() { "global".into() } else { "1 companies".into() }, p.clone())),
        }
    }
    for (map, company, p) in &rows {
        let company = if company == "1 companies" { "1 company".to_string() } else { company.clone() };
        t.row(vec![
            map.clone(),
            company,
            format!("{}/{}", p.rows[0], p.rows[1]),
            format!("{}/{}/{}", p.inserts[1], p.updates[1], p.deletes[1]),
            format!("{}/{}/{}", p.inserts[0], p.updates[0], p.deletes[0]),
            p.unchanged.to_string(),
            p.failing.to_string(),
            p.approach.clone(),
        ]);
    }
    println!("→ is {a} to {b}, ← is {b} to {a}");
    print!("{}", t.render());
    for (map, _, p) in &rows {
        if let Some(note) = &p.seed_note {
            println!("{map}: {note}");
        }
    }
}
