//! Packing a stream into fewer, larger files for bulk replay (a year is
//! millions of messages): per time window, one HL7 file holding the
//! window's HL7 messages and one NDJSON file holding its FHIR messages, named
//! so that file-name order is window order with HL7 first.
//!
//! Within a window the HL7 messages are therefore read before the FHIR ones.
//! Keep the window no longer than the tracker's `allowed_lateness` (default
//! 5 minutes): then the clock, which trails the latest event time by that
//! much, never passes a deadline inside the window before the window's FHIR
//! messages are read, and the judgement is the same as message by message.

use chrono::{DateTime, TimeDelta, Utc};

use crate::model::{Message, MessageFormat};

/// One file's name and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunk {
    /// The file name (no directory).
    pub name: String,
    /// Its contents.
    pub body: Vec<u8>,
}

/// Groups messages (in stream order) into per-window HL7 and NDJSON files.
#[derive(Debug)]
pub struct Chunker {
    window: i64,
    current: Option<i64>,
    hl7: Vec<u8>,
    ndjson: Vec<u8>,
}

impl Chunker {
    /// A chunker with windows of `window` (at least one second).
    pub fn new(window: TimeDelta) -> Self {
        Self {
            window: window.num_seconds().max(1),
            current: None,
            hl7: Vec::new(),
            ndjson: Vec::new(),
        }
    }

    /// Adds a message; returns the files of any window it closes.
    pub fn push(&mut self, m: &Message) -> Vec<FileChunk> {
        let w = m.time.timestamp().div_euclid(self.window);
        let mut out = Vec::new();
        if self.current.is_some_and(|c| c != w) {
            out = self.flush();
        }
        self.current = Some(w);
        match m.format() {
            MessageFormat::Hl7 => self.hl7.extend_from_slice(&m.body),
            MessageFormat::FhirJson => {
                self.ndjson.extend_from_slice(&m.body);
                self.ndjson.push(b'\n');
            }
        }
        out
    }

    /// Closes the last window.
    pub fn finish(mut self) -> Vec<FileChunk> {
        self.flush()
    }

    fn flush(&mut self) -> Vec<FileChunk> {
        let Some(w) = self.current.take() else {
            return Vec::new();
        };
        let start = DateTime::<Utc>::from_timestamp(w * self.window, 0).unwrap_or_default();
        let stem = start.format("%Y%m%dT%H%M%SZ");
        let mut out = Vec::new();
        if !self.hl7.is_empty() {
            out.push(FileChunk {
                name: format!("{stem}-1.hl7"),
                body: std::mem::take(&mut self.hl7),
            });
        }
        if !self.ndjson.is_empty() {
            out.push(FileChunk {
                name: format!("{stem}-2.ndjson"),
                body: std::mem::take(&mut self.ndjson),
            });
        }
        out
    }
}
