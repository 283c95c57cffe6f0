//! The generator: plans encounters day by day and hands out their messages
//! in event-time order. A day is planned only when the stream reaches the
//! earliest time one of its messages could carry (its end less the longest
//! stay), so the pending set stays a few weeks of traffic whatever the run's
//! length.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::context::Ctx;
use crate::hl7::{self, Adt};
use crate::model::{EncounterKind, Message, MessageKind, Outcome, Stats};
use crate::plan::{self, DocFormat, Encounter};
use crate::profile::Profile;
use crate::rng::Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: the same seed and options give byte-identical output.
    pub seed: u64,
    /// The first day whose encounters end (local date). Admissions of the
    /// first days' stays fall before it.
    pub start: NaiveDate,
    /// Plan encounters ending on this many days, then let their documents
    /// and acknowledgements follow. `None`: no end (stop by `max_messages`).
    pub days: Option<u32>,
    /// Stop after this many messages.
    pub max_messages: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 1,
            start: NaiveDate::from_ymd_opt(2025, 1, 6).unwrap_or_default(),
            days: Some(1),
            max_messages: None,
        }
    }
}

/// Why an option set cannot run.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// Neither a number of days nor of messages bounds the run, or the
    /// profile generates nothing and the run would never end.
    #[error("{0}")]
    Unbounded(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Start,
    Transfer,
    End,
    Document,
    Ack,
}

#[derive(Debug)]
struct Pending {
    time: DateTime<Utc>,
    order: u64,
    step: Step,
    encounter: Encounter,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.order) == (o.time, o.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.time, self.order).cmp(&(o.time, o.order))
    }
}

/// Deterministic synthetic trust traffic: an iterator of [`Message`]s in
/// event-time order. Does no I/O.
#[derive(Debug)]
pub struct Generator {
    ctx: Ctx,
    opts: Options,
    rng: Rng,
    heap: BinaryHeap<Reverse<Pending>>,
    next_day: u32,
    next_encounter: u64,
    order: u64,
    lead: Duration,
    stats: Stats,
}

impl Generator {
    /// A generator for `profile` (already validated) and `opts`.
    pub fn new(profile: Profile, opts: Options) -> Result<Self, OptionsError> {
        if opts.days.is_none() && opts.max_messages.is_none() {
            return Err(OptionsError::Unbounded(
                "give a number of days or of messages",
            ));
        }
        let v = &profile.volumes;
        if opts.days.is_none() && v.discharges_per_day + v.outpatient_attendances_per_day <= 0.0 {
            return Err(OptionsError::Unbounded(
                "the profile plans no encounters, so a run bounded only by a message count would never end",
            ));
        }
        let lead = Duration::seconds(profile.max_lead_seconds());
        Ok(Self {
            rng: Rng::derive(opts.seed, 0x504C_414E),
            ctx: Ctx::new(profile, opts.seed, opts.start),
            opts,
            heap: BinaryHeap::new(),
            next_day: 0,
            next_encounter: 0,
            order: 0,
            lead,
            stats: Stats::default(),
        })
    }

    /// What has been planned and handed out so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Messages planned but not yet handed out (memory in use is about
    /// 200 bytes each).
    pub fn pending(&self) -> usize {
        self.heap.len()
    }

    /// The instant at `hour` and `second` past it, local time, on `day`:
    /// the hour weights are the trust's clock hours, also on the days the
    /// clocks change (counted from midnight, a 23:xx discharge fell on the
    /// next day in spring and every hour came an hour early in autumn). A
    /// time in the spring gap moves on an hour; in the autumn repeat, the
    /// first.
    fn local_time(&self, day: u32, hour: u32, second: u32) -> DateTime<Utc> {
        let date = self.opts.start + Duration::days(i64::from(day));
        let tz = self.ctx.profile.timezone;
        let at = |h: u32| {
            date.and_hms_opt(h, second / 60, second % 60)
                .and_then(|t| tz.from_local_datetime(&t).earliest())
        };
        at(hour)
            .or_else(|| at(hour + 1))
            .map_or_else(|| self.day_start(day), |t| t.with_timezone(&Utc))
    }

    fn day_start(&self, day: u32) -> DateTime<Utc> {
        let date = self.opts.start + Duration::days(i64::from(day));
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.ctx
            .profile
            .timezone
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
    }

    fn push(&mut self, time: DateTime<Utc>, step: Step, encounter: Encounter) {
        self.order += 1;
        self.heap.push(Reverse(Pending {
            time,
            order: self.order,
            step,
            encounter,
        }));
    }

    fn plan_day(&mut self, day: u32) {
        let weekday = (self.opts.start + Duration::days(i64::from(day)))
            .weekday()
            .num_days_from_monday() as usize;
        let v = self.ctx.profile.volumes.clone();
        let d = self.ctx.profile.discharges.clone();
        let mix = [d.inpatient, d.day_case, d.emergency];
        let n_dis = (v.discharges_per_day * v.discharge_weekday_factors[weekday] + self.rng.unit())
            .floor() as u64;
        let n_op = (v.outpatient_attendances_per_day * v.outpatient_weekday_factors[weekday]
            + self.rng.unit())
        .floor() as u64;
        for i in 0..n_dis + n_op {
            let (kind, hours) = if i < n_dis {
                let kind = [
                    EncounterKind::Inpatient,
                    EncounterKind::DayCase,
                    EncounterKind::Emergency,
                ][self.rng.weighted(&mix)];
                (kind, &v.discharge_hour_weights)
            } else {
                (EncounterKind::Outpatient, &v.outpatient_hour_weights)
            };
            let hour = self.rng.weighted(hours) as u32;
            let second = self.rng.below(3600) as u32;
            let end = self.local_time(day, hour, second);
            let index = self.next_encounter;
            self.next_encounter += 1;
            let e = plan::encounter(
                &self.ctx.profile,
                &mut self.rng,
                index,
                kind,
                end,
                self.ctx.nhs.len(),
            );
            self.push(e.start, Step::Start, e);
            if let Some(t) = e.transfer {
                self.push(t, Step::Transfer, e);
            }
            self.push(e.end, Step::End, e);
            if let Some(doc) = e.document {
                self.push(doc.time, Step::Document, e);
                if let Some(ack) = doc.ack {
                    self.push(ack.time, Step::Ack, e);
                }
            }
        }
    }

    fn record(&mut self, e: &Encounter) {
        let s = &mut self.stats;
        s.encounters += 1;
        if e.kind == EncounterKind::Outpatient {
            s.attendances += 1;
        } else {
            s.discharges += 1;
        }
        // Owed until its document goes out (it may never: planned missing,
        // or a message count ends the run first).
        s.missing += 1;
    }

    /// Counts a document handed out by the outcome it was planned to have.
    fn record_document(&mut self, e: &Encounter) {
        let s = &mut self.stats;
        s.missing = s.missing.saturating_sub(1);
        match e.outcome {
            Outcome::OnTime => s.on_time += 1,
            Outcome::Late => s.late += 1,
            Outcome::Missing => {}
        }
    }

    fn render(&self, p: &Pending) -> (MessageKind, Vec<u8>) {
        let (ctx, e) = (&self.ctx, &p.encounter);
        match p.step {
            Step::Start => match e.kind {
                EncounterKind::Inpatient | EncounterKind::DayCase => {
                    (MessageKind::Admission, hl7::adt(ctx, e, Adt::A01, p.time))
                }
                _ => (
                    MessageKind::Registration,
                    hl7::adt(ctx, e, Adt::A04, p.time),
                ),
            },
            Step::Transfer => (MessageKind::Transfer, hl7::adt(ctx, e, Adt::A02, p.time)),
            Step::End => (MessageKind::Discharge, hl7::adt(ctx, e, Adt::A03, p.time)),
            Step::Document => match e.document.map(|d| d.format) {
                Some(DocFormat::FhirDocument) => (
                    MessageKind::FhirDocument,
                    crate::fhir::document_bundle(ctx, e, p.time),
                ),
                Some(DocFormat::Itk3) => (
                    MessageKind::Itk3Document,
                    crate::fhir::itk3_message(ctx, e, p.time),
                ),
                _ => (MessageKind::Hl7Document, hl7::mdm(ctx, e, p.time)),
            },
            Step::Ack => {
                let accepted = e.document.and_then(|d| d.ack).is_none_or(|a| a.accepted);
                match e.document.map(|d| d.format) {
                    Some(DocFormat::Itk3) => (
                        MessageKind::Itk3Response,
                        crate::fhir::itk3_response(ctx, e, p.time, accepted),
                    ),
                    _ => (MessageKind::Hl7Ack, hl7::ack(ctx, e, p.time, accepted)),
                }
            }
        }
    }
}

impl Iterator for Generator {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        if self
            .opts
            .max_messages
            .is_some_and(|m| self.stats.messages >= m)
        {
            return None;
        }
        let last_day = self.opts.days.unwrap_or(u32::MAX);
        while self.next_day < last_day
            && self
                .heap
                .peek()
                .is_none_or(|Reverse(top)| self.day_start(self.next_day) - self.lead <= top.time)
        {
            self.plan_day(self.next_day);
            self.next_day += 1;
        }
        let Reverse(p) = self.heap.pop()?;
        // Counted when its end or document is handed out, not when planned:
        // planning runs a longest stay ahead, and a run cut short by a
        // message count reported encounters and documents it never sent.
        match p.step {
            Step::End => self.record(&p.encounter),
            Step::Document => self.record_document(&p.encounter),
            _ => {}
        }
        let (kind, body) = self.render(&p);
        let seq = self.stats.messages;
        self.stats.messages += 1;
        Some(Message {
            seq,
            time: p.time,
            kind,
            body,
        })
    }
}
