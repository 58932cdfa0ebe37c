// SPDX-License-Identifier: GPL-2.0
//! The summary line of a benchmark (not a check): each driver's best round median, the ratio of
//! the second driver (ours) to the first (upstream), sample counts and every round's median.
//! The best round is kept because host load only ever slows a TCG round down.

/// The drivers a benchmark compares: the oracle (first) and our generic driver.
pub(crate) fn bench_drivers(drivers: &[String]) -> Vec<String> {
    drivers
        .iter()
        .take(1)
        .chain(
            drivers
                .iter()
                .skip(1)
                .filter(|d| d.as_str() == crate::GENERIC_DRIVER),
        )
        .cloned()
        .collect()
}

/// The median of `v` (0 for an empty slice).
pub(crate) fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}

/// `driver=NNNns ... ratio=X.XX n=A/B rounds=a,b/c,d` from each driver's rounds of samples
/// (`Err` for a driver whose access failed); `per_sample` ops were timed per sample.
pub(crate) fn summary(
    drivers: &[&str],
    rounds: &[Result<Vec<Vec<u64>>, String>],
    per_sample: usize,
) -> String {
    let mut cols = Vec::new();
    let mut best = Vec::new();
    let mut counts = Vec::new();
    let mut per_round = Vec::new();
    for (d, r) in drivers.iter().zip(rounds) {
        match r {
            Ok(rs) if rs.iter().any(|r| !r.is_empty()) => {
                let meds: Vec<u64> = rs
                    .iter()
                    .filter(|r| !r.is_empty())
                    .map(|r| median(r))
                    .collect();
                let b = meds.iter().copied().min().unwrap_or(0);
                cols.push(format!("{d}={b}ns"));
                per_round.push(
                    meds.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                );
                counts.push((rs.iter().map(Vec::len).sum::<usize>() * per_sample).to_string());
                best.push(Some(b));
            }
            Ok(_) => {
                cols.push(format!("{d}=error(not_measured)"));
                best.push(None);
            }
            Err(e) => {
                cols.push(format!("{d}=error({})", e.replace(' ', "_")));
                best.push(None);
            }
        }
    }
    let ratio = match (best.first(), best.get(1)) {
        (Some(Some(a)), Some(Some(b))) if *a > 0 => format!("{:.2}", *b as f64 / *a as f64),
        _ => "n/a".into(),
    };
    format!(
        "{} ratio={ratio} n={} rounds={}",
        cols.join(" "),
        counts.join("/"),
        per_round.join("/")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keeps_the_best_round_and_divides_ours_by_upstream() {
        let s = summary(
            &["vfio-pci", "vfio-pci-generic"],
            &[
                Ok(vec![vec![10, 12, 11], vec![9]]),
                Ok(vec![vec![18, 20, 19]]),
            ],
            8,
        );
        assert_eq!(
            s,
            "vfio-pci=9ns vfio-pci-generic=19ns ratio=2.11 n=32/24 rounds=11,9/19"
        );
    }

    #[test]
    fn a_failed_driver_gives_no_ratio() {
        let s = summary(
            &["a", "b"],
            &[Ok(vec![vec![5]]), Err("EINVAL (22)".into())],
            1,
        );
        assert_eq!(s, "a=5ns b=error(EINVAL_(22)) ratio=n/a n=1 rounds=5");
    }
}
