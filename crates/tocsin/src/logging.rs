//! Logging setup: `tracing` to stderr, as text or JSON.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{Directive, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSection};

/// lapin's module that warns "Server returned us a message" with the whole
/// returned message, body and headers included, when the broker returns a
/// `mandatory` publish. The gateway publishes dead-letter copies as
/// mandatory, so an unroutable copy (`tocsin.dead` deleted) would write an
/// HL7 or FHIR body, NHS numbers and names, at warn level.
const RETURNED_MESSAGES: &str = "lapin::returned_messages";

/// Installs the global subscriber. The filter is a level (`info`) or a
/// `tracing` directive list (`tocsin=debug,lapin=warn`).
pub fn init(log: &LogSection) -> Result<(), Box<dyn std::error::Error>> {
    // Colour only for a person at a terminal: in journald or a log file
    // the escape codes are noise, and NO_COLOR (set, not empty) turns them
    // off everywhere.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    subscriber(log, std::io::stderr, ansi)?
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(())
}

/// The subscriber [`init`] installs, writing to `writer`; separate so that
/// tests can see what it lets through.
///
/// Whatever the configured level, lapin's returned-message warning
/// ([`RETURNED_MESSAGES`]) is dropped: the tocsin code that publishes
/// mandatory messages reports a returned one itself, without the body. Only
/// a directive naming that target at `debug` or `trace`
/// (`lapin::returned_messages=debug`) lets it through, as a deliberate act
/// of debugging; `debug` for everything does not. It is dropped by a filter
/// beside the `EnvFilter` rather than by a directive within it, because a
/// span directive (`[io_loop]=warn`, lapin's I/O thread runs in that span)
/// enables every event inside the span whatever the target directives say.
fn subscriber<W>(
    log: &LogSection,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn Subscriber + Send + Sync>, String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = parse_filter(&log.level)?;
    let returned_allowed = returned_messages_requested(&log.level);
    // lapin's I/O loop traces every frame it writes, the connection's
    // StartOk among them, whose PLAIN response is the broker password as a
    // byte list: at no level may a secret reach the log, so lapin's and
    // its protocol crate's trace events are dropped whatever is asked.
    let hide_returned = filter_fn(move |meta| {
        (returned_allowed || !is_returned_messages_target(meta.target()))
            && !(*meta.level() == tracing::Level::TRACE && is_amqp_frame_target(meta.target()))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    Ok(match log.format {
        LogFormat::Text => Box::new(builder.finish().with(hide_returned)),
        LogFormat::Json => Box::new(builder.json().finish().with(hide_returned)),
    })
}

/// lapin's and amq-protocol's modules, whose trace events dump frames.
fn is_amqp_frame_target(target: &str) -> bool {
    ["lapin", "amq_protocol"].iter().any(|crate_name| {
        target
            .strip_prefix(crate_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('_'))
    })
}

fn is_returned_messages_target(target: &str) -> bool {
    target
        .strip_prefix(RETURNED_MESSAGES)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The log filter of `[log] level` / `TOCSIN_LOG`, refused when it does not
/// parse or when a directive is a bare word that is no level: `EnvFilter`
/// takes `warning` or `infoo` for a target name, enables that target alone,
/// and the gateway logs nothing at all, its errors included.
pub(crate) fn parse_filter(level: &str) -> Result<EnvFilter, String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("[log] level {level:?}: {e}"))?;
    let levels = ["off", "error", "warn", "info", "debug", "trace"];
    if let Some(word) = level.split(',').map(str::trim).find(|d| {
        !d.is_empty()
            && !d.contains(['=', '[', ':'])
            && !levels.iter().any(|l| l.eq_ignore_ascii_case(d))
            && d.parse::<u8>().is_err()
    }) {
        return Err(format!(
            "[log] level {level:?}: `{word}` is not a level (off, error, warn, info, debug, \
             trace); alone it would name a target and log nothing else (write \
             `{word}=debug` to mean a target)"
        ));
    }
    Ok(filter)
}

/// Whether the filter names [`RETURNED_MESSAGES`] itself at `debug` or
/// `trace`. Directives are split on commas as `EnvFilter` splits them.
fn returned_messages_requested(level: &str) -> bool {
    level
        .split(',')
        .filter_map(|d| d.trim().parse::<Directive>().ok())
        .map(|d| d.to_string())
        .any(|d| {
            d == format!("{RETURNED_MESSAGES}=debug") || d == format!("{RETURNED_MESSAGES}=trace")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the subscriber built for `level` and `format` writes for
    /// lapin's returned-message warning (emitted as lapin does, in its I/O
    /// loop's span) and for an ordinary lapin warning.
    fn logged(level: &str, format: LogFormat) -> String {
        let out = Captured::default();
        let sink = out.clone();
        let log = LogSection {
            level: level.into(),
            format,
        };
        let subscriber = subscriber(&log, move || sink.clone(), false).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let io_loop = tracing::span!(target: "lapin::io_loop", tracing::Level::INFO, "io_loop");
            let _entered = io_loop.enter();
            tracing::warn!(
                target: "lapin::returned_messages",
                message = "MSH|^~\\&|PAS|RXX|||20240101||ADT^A01|1|P|2.4\rPID|||9434765919^^^NHS||SMITH^JANE",
                "Server returned us a message"
            );
            tracing::warn!(target: "lapin::channel", "an ordinary lapin warning");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    /// lapin's frame dumps at trace carry the connection's PLAIN response,
    /// the broker password: dropped at every level asked, `trace` too,
    /// while its debug events still show.
    #[test]
    fn amqp_frame_traces_never_print() {
        for level in ["trace", "lapin=trace", "info,lapin::io_loop=trace"] {
            let out = Captured::default();
            let sink = out.clone();
            let log = LogSection {
                level: level.into(),
                format: LogFormat::Text,
            };
            let subscriber = subscriber(&log, move || sink.clone(), false).unwrap();
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(
                    target: "lapin::io_loop",
                    next_msg = "StartOk(response: LongString([0, 103, 117, 101, 115, 116, 0, 112, 119]))",
                    "will write to buffer"
                );
                tracing::trace!(target: "amq_protocol::frame", "a frame");
                tracing::debug!(target: "lapin::channel", "a lapin debug line");
            });
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            assert!(
                !text.contains("StartOk") && !text.contains("a frame"),
                "{level}: {text}"
            );
            if level != "info,lapin::io_loop=trace" {
                assert!(text.contains("a lapin debug line"), "{level}: {text}");
            }
        }
    }

    /// Off a terminal (journald, a log file) the lines carry no colour
    /// escape codes.
    #[test]
    fn text_logs_carry_no_escape_codes_off_a_terminal() {
        let text = logged("info", LogFormat::Text);
        assert!(text.contains("an ordinary lapin warning"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn returned_messages_never_print_whatever_the_level() {
        for level in [
            "info",
            "warn",
            "debug",
            "trace",
            "lapin=trace",
            "warn,lapin::returned_messages=warn",
            "lapin::returned_messages=info,lapin=debug",
            "info,[io_loop]=warn",
            "warn,lapin::returned_messages[io_loop]=warn",
        ] {
            for format in [LogFormat::Text, LogFormat::Json] {
                let text = logged(level, format);
                assert!(
                    text.contains("an ordinary lapin warning"),
                    "{level:?} {format:?} should log lapin's other warnings:\n{text}"
                );
                assert!(
                    !text.contains("9434765919") && !text.contains("returned us"),
                    "{level:?} {format:?} logged a returned message:\n{text}"
                );
            }
        }
    }

    #[test]
    fn naming_the_target_at_debug_shows_returned_messages() {
        for level in [
            "lapin::returned_messages=debug",
            "info,lapin::returned_messages=TRACE",
        ] {
            let text = logged(level, LogFormat::Text);
            assert!(
                text.contains("Server returned us a message"),
                "{level:?}:\n{text}"
            );
        }
        assert!(!returned_messages_requested("lapin=debug"));
        assert!(!returned_messages_requested(
            "lapin::returned_messages=warn"
        ));
        assert!(!returned_messages_requested(
            "lapin::returned_messages_x=debug"
        ));
        assert!(is_returned_messages_target("lapin::returned_messages"));
        assert!(!is_returned_messages_target("lapin::returned_messages_x"));
    }

    #[test]
    fn a_bad_level_is_named() {
        let log = LogSection {
            level: "lapin=loud".into(),
            format: LogFormat::Text,
        };
        let err = subscriber(&log, std::io::sink, false).err().unwrap();
        assert!(err.contains("[log] level"), "{err}");
        // Levels in any case, numbers, targets with levels and module paths
        // pass; a bare word that is no level does not.
        for good in [
            "WARN",
            "info,lapin=warn",
            "tocsin::gateway",
            "debug,[io_loop]=warn",
            "",
        ] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for bad in ["warning", "infoo", "info, verbose"] {
            let err = parse_filter(bad).err().unwrap();
            assert!(err.contains("is not a level"), "{bad}: {err}");
        }
    }
}
