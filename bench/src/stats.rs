//! Latency histograms, figures with medians across runs, and the seen-sequence bitmaps.
use std::{
    collections::BTreeMap,
    sync::OnceLock,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// The clock every send time in a message body is measured on.
pub fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

pub fn now_ns() -> u64 {
    clock_origin().elapsed().as_nanos() as u64
}

pub fn instant_at(ns: u64) -> Instant {
    clock_origin() + Duration::from_nanos(ns)
}

/// Latencies in microseconds, 3 significant digits, up to 10 minutes.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    pub fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record((ns / 1000).max(1));
    }

    pub fn record_all_ns(&mut self, samples: &[u32]) {
        for &us in samples {
            self.0.saturating_record(u64::from(us).max(1));
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    /// Adds `name_p50_ms` … `name_max_ms` (and the sample count) to `figures`.
    pub fn add_to(&self, name: &str, figures: &mut Figures) {
        figures.set(&format!("{name}_count"), self.0.len() as f64);
        if self.0.is_empty() {
            return;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        figures.set(&format!("{name}_p50_ms"), ms(self.0.value_at_quantile(0.50)));
        figures.set(&format!("{name}_p90_ms"), ms(self.0.value_at_quantile(0.90)));
        figures.set(&format!("{name}_p99_ms"), ms(self.0.value_at_quantile(0.99)));
        figures.set(&format!("{name}_p999_ms"), ms(self.0.value_at_quantile(0.999)));
        figures.set(&format!("{name}_max_ms"), ms(self.0.max()));
        figures.set(&format!("{name}_mean_ms"), self.0.mean() / 1000.0);
    }
}

/// Saturating nanoseconds → microseconds for raw samples.
pub fn us(ns: u64) -> u32 {
    (ns / 1000).min(u64::from(u32::MAX)) as u32
}

/// Named numbers from one run, or the medians of several.
#[derive(Default, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Figures(pub BTreeMap<String, f64>);

impl Figures {
    pub fn set(&mut self, name: &str, value: f64) {
        self.0.insert(name.to_owned(), round(value));
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// The median of each figure across runs (a figure missing from a run is skipped there).
    pub fn median(runs: &[Figures]) -> Figures {
        let mut names: Vec<&String> = runs.iter().flat_map(|r| r.0.keys()).collect();
        names.sort();
        names.dedup();
        let mut out = Figures::default();
        for name in names {
            let mut values: Vec<f64> = runs.iter().filter_map(|r| r.get(name)).collect();
            values.sort_by(f64::total_cmp);
            let n = values.len();
            let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
            out.set(name, median);
        }
        out
    }
}

fn round(value: f64) -> f64 {
    if value.abs() >= 100.0 { value.round() } else { (value * 1000.0).round() / 1000.0 }
}

/// Which sequence numbers have been seen; grows as needed.
#[derive(Default, Clone)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Marks `seq`; returns false if it was already marked.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        !was
    }

    pub fn contains(&self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        self.words.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// How many of `range` are in `self` but not in `other`.
    pub fn missing_from(&self, other: &SeqSet, range: std::ops::Range<u64>) -> u64 {
        range.filter(|&seq| self.contains(seq) && !other.contains(seq)).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_figures() {
        let run = |v: f64| {
            let mut f = Figures::default();
            f.set("x", v);
            f
        };
        assert_eq!(Figures::median(&[run(3.0), run(1.0), run(2.0)]).get("x"), Some(2.0));
        assert_eq!(Figures::median(&[run(4.0), run(1.0)]).get("x"), Some(2.5));
    }

    #[test]
    fn seq_sets_count_missing_and_duplicates() {
        let (mut acked, mut received) = (SeqSet::default(), SeqSet::default());
        for seq in 0..100 {
            acked.insert(seq);
            if seq != 70 {
                assert!(received.insert(seq));
            }
        }
        assert!(!received.insert(5));
        assert_eq!(acked.missing_from(&received, 0..100), 1);
    }
}

pub fn format_number(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let digits = format!("{:.0}", value.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if value < 0.0 { format!("-{grouped}") } else { grouped }
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}").trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}
