//! Shared helpers: a small profile (a few hundred encounters a day, so that
//! tests stay fast) and a generator over it.

#![allow(dead_code)]

use tocsin_loadgen::{Generator, Message, Options, Profile};

/// The default profile scaled down to `discharges` and `attendances` a day.
pub fn small_profile(discharges: f64, attendances: f64) -> Profile {
    let mut p = Profile::default();
    p.volumes.discharges_per_day = discharges;
    p.volumes.outpatient_attendances_per_day = attendances;
    p.patients = 20_000;
    p
}

/// Every message of `days` days of the small profile with `seed`.
pub fn generate(seed: u64, days: u32) -> (Vec<Message>, tocsin_loadgen::Stats) {
    let opts = Options {
        seed,
        days: Some(days),
        ..Options::default()
    };
    let mut g = Generator::new(small_profile(70.0, 110.0), opts).unwrap();
    let messages: Vec<Message> = g.by_ref().collect();
    (messages, g.stats())
}
