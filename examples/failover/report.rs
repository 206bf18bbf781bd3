//! Tables of min / median / max over the runs, one per scenario, every
//! agent on its own row.

use crate::setup::Res;

#[derive(Clone, Copy)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Milliseconds of double hold, and in how many runs there was any.
    Double,
    /// Percent of the time.
    Pct,
}

pub struct Table {
    pub title: String,
    pub columns: Vec<(&'static str, Unit)>,
    /// Agent name and each run's values (one per column) or why it failed.
    pub rows: Vec<(String, Vec<Res<Vec<f64>>>)>,
    /// A row for an agent that is not run, and why.
    pub skipped: Vec<(String, String)>,
}

impl Table {
    pub fn print(&self) {
        println!("\n{}", self.title);
        let mut lines: Vec<Vec<String>> = vec![std::iter::once("agent".to_string())
            .chain(self.columns.iter().map(|(c, _)| c.to_string()))
            .collect()];
        let mut errors = Vec::new();
        for (agent, runs) in &self.rows {
            let ok: Vec<&Vec<f64>> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
            let mut line = vec![agent.clone()];
            for (i, (_, unit)) in self.columns.iter().enumerate() {
                let mut v: Vec<f64> = ok.iter().filter_map(|r| r.get(i).copied()).collect();
                line.push(cell(&mut v, *unit));
            }
            let failed = runs.len() - ok.len();
            if failed > 0 {
                line[0] = format!("{agent} [{failed} of {} runs failed]", runs.len());
                for e in runs.iter().filter_map(|r| r.as_ref().err()) {
                    errors.push(format!("  {agent}: {e}"));
                }
            }
            lines.push(line);
        }
        for (agent, why) in &self.skipped {
            let mut line = vec![agent.clone(), why.clone()];
            line.resize(self.columns.len() + 1, String::new());
            lines.push(line);
        }
        let widths: Vec<usize> = (0..=self.columns.len())
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for l in &lines {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            println!("  {}", cells.join("  ").trim_end());
        }
        for e in errors {
            println!("{e}");
        }
    }
}

/// `min / median / max` of the values (sorted in place).
fn cell(v: &mut [f64], unit: Unit) -> String {
    v.sort_by(f64::total_cmp);
    let (Some(a), Some(m), Some(z)) = (v.first(), v.get(v.len() / 2), v.last()) else {
        return "-".into();
    };
    match unit {
        Unit::Ms => format!("{a:.0} / {m:.0} / {z:.0} ms"),
        Unit::Pct => format!("{a:.1} / {m:.1} / {z:.1} %"),
        Unit::Double => {
            let any = v.iter().filter(|x| **x > 0.0).count();
            if any == 0 {
                format!("none (0 of {})", v.len())
            } else {
                format!("{a:.0} / {m:.0} / {z:.0} ms ({any} of {})", v.len())
            }
        }
    }
}
