//! A fuzz smoke on stable: every file of `fuzz/corpus/<target>/` through its target, then a
//! short, deterministic mutation pass over those seeds. The long runs are `cargo +nightly
//! fuzz run <target>`; this keeps the corpora and the easy crashes they found in CI.
//!
//! A target fails only by panicking (here or in a thread it started); an input that makes
//! it panic is written to the temporary directory, to replay under `cargo fuzz run`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use crimg::fuzzing::{TARGETS, Target};

/// Mutated inputs per target.
const MUTATIONS: usize = 4_000;
/// Inputs grow no larger than this.
const MAX_LEN: usize = 16 << 10;

/// Panics anywhere in the process, threads started by a target included.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                data,
            )
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{} holds no seed", dir.display());
    seeds
}

/// Runs one input; on a panic, saves it and fails naming it.
fn run(name: &str, target: Target, what: &str, data: &[u8]) {
    let before = PANICS.load(Ordering::SeqCst);
    let caught = catch_unwind(AssertUnwindSafe(|| target(data))).is_err();
    if caught || PANICS.load(Ordering::SeqCst) != before {
        let saved = std::env::temp_dir().join(format!("crimg-fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::write(&saved, data);
        panic!(
            "fuzz target {name} panicked on {what} ({} bytes, saved as {}); replay with \
             `cargo +nightly fuzz run {name} {}`",
            data.len(),
            saved.display(),
            saved.display()
        );
    }
}

/// Names of the entries of `dir` (file stems), sorted.
fn stems(dir: &str) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    v.sort();
    v
}

/// The targets run here are exactly those `cargo fuzz` builds, and each has a corpus.
#[test]
fn targets_match_fuzz_targets_and_corpora() {
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(names, stems("fuzz/fuzz_targets"), "fuzz/fuzz_targets/");
    assert_eq!(names, stems("fuzz/corpus"), "fuzz/corpus/");
}

#[test]
fn corpus_replay() {
    count_panics();
    for &(name, target) in TARGETS {
        let mut past = Vec::new();
        let seeds = corpus(name);
        let total = seeds.len();
        for (file, data) in seeds {
            let before = crimg::fuzzing::past_parsing();
            run(name, target, &format!("fuzz/corpus/{name}/{file}"), &data);
            if crimg::fuzzing::past_parsing() > before {
                past.push(file);
            }
        }
        // Seeds that all fail to parse would only ever fuzz the parsers' error paths.
        assert!(!past.is_empty(), "no seed of {name} gets past parsing");
        eprintln!("{name}: {} of {total} seeds past parsing", past.len());
    }
}

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that tend to matter to parsers: digits (tar's octal fields), JSON and reference
/// punctuation, NUL and high bytes.
const INTERESTING: &[u8] = b"\0\x01\x7f\x80\xff 07:/@.-_*?[]{}\"\\,\n#";

fn mutate(rng: &mut Rng, seeds: &[(String, Vec<u8>)], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            // Flip a bit.
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            // Overwrite a byte with an interesting one.
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            // Truncate.
            2 => input.truncate(rng.below(len + 1)),
            // Insert a byte.
            3 => {
                let i = rng.below(len + 1);
                input.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            // Duplicate a run.
            4 if len > 0 => {
                let start = rng.below(len);
                let end = start + 1 + rng.below((len - start).min(64));
                let run = input[start..end].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, run);
            }
            // Delete a run.
            5 if len > 0 => {
                let start = rng.below(len);
                let end = start + 1 + rng.below((len - start).min(64));
                input.drain(start..end);
            }
            // Splice in part of another seed.
            6 => {
                let other = &seeds[rng.below(seeds.len())].1;
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = start + 1 + rng.below(other.len() - start);
                    let at = rng.below(len + 1);
                    let cut = (at + rng.below(len - at + 1)).min(len);
                    input.splice(at..cut, other[start..end].iter().copied());
                }
            }
            // A random byte anywhere.
            _ => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
        }
        input.truncate(MAX_LEN);
    }
}

#[test]
fn mutation_smoke() {
    count_panics();
    for (n, &(name, target)) in TARGETS.iter().enumerate() {
        let started = std::time::Instant::now();
        let seeds = corpus(name);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1));
        for i in 0..MUTATIONS {
            let mut input = seeds[rng.below(seeds.len())].1.clone();
            mutate(&mut rng, &seeds, &mut input);
            run(name, target, &format!("mutation {i}"), &input);
        }
        eprintln!(
            "{name}: {MUTATIONS} mutated inputs in {:.1?}",
            started.elapsed()
        );
    }
}
