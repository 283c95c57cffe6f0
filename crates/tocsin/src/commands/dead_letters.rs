//! `tocsin dead-letters list|redrive`: the dead-letter queue
//! (`[amqp] dead_letter_queue`) for the integration team. `list` says what
//! is there and why, leaving it in place; `redrive` moves messages back to
//! the input queue once their cause is mended, so that a rejection is never
//! the end of a discharge's tracking. Neither prints a message body.

use std::process::ExitCode;

use tocsin_amqp::Peeked;
use tocsin_tracker::compliance::printable;

use crate::config::Config;

/// Arguments of `tocsin dead-letters`.
#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print each dead letter (message id, content type, size, reason,
    /// location) and a count by reason code, and leave them all in the
    /// queue, in order.
    List {
        /// Read at most this many, from the head of the queue.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// One JSON object a message instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back to the input queue (`[amqp] input_queue`) as
    /// they first came, each removed only once the broker has confirmed
    /// its copy; the rest stay in place.
    Redrive {
        /// Only those whose reason code (the reason's text before its first
        /// `:`, as `list` counts them) is this.
        #[arg(long)]
        reason: Option<String>,
        /// Read at most this many, from the head of the queue (default:
        /// all of it).
        #[arg(long)]
        limit: Option<usize>,
        /// The queue to move them to (default: the configured input queue).
        #[arg(long)]
        to: Option<String>,
    },
}

/// Runs the chosen action against the configured broker.
pub fn run(
    config: &Config,
    args: &DeadLettersArgs,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let session = super::broker_session(config).await?;
        let queue = config.amqp.dead_letter_queue.as_str();
        match &args.action {
            Action::List { limit, json } => {
                let peeked = tocsin_amqp::peek(session.connection(), queue, *limit).await?;
                print_list(queue, &peeked, *json)?;
            }
            Action::Redrive { reason, limit, to } => {
                let to = to.as_deref().unwrap_or(&config.amqp.input_queue);
                if to == queue {
                    return Err(format!(
                        "--to {to} is the dead-letter queue itself: nothing would move"
                    )
                    .into());
                }
                let done = tocsin_amqp::redrive(
                    session.connection(),
                    queue,
                    to,
                    reason.as_deref(),
                    limit.unwrap_or(usize::MAX),
                )
                .await?;
                eprintln!(
                    "moved {} message(s) from {queue} to {to}, confirmed by the broker; left {} in {queue}",
                    done.moved, done.left
                );
                // A misspelt reason moves nothing and looks like success.
                if let Some(r) = reason
                    && done.moved == 0
                    && done.left > 0
                {
                    eprintln!(
                        "no dead letter waiting has reason {r:?}: `tocsin dead-letters list` shows \
                         the reasons of those waiting"
                    );
                }
            }
        }
        session.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(ExitCode::SUCCESS)
    })
}

fn print_list(queue: &str, peeked: &Peeked, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let letters = &peeked.letters;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        for d in letters {
            let line = serde_json::json!({
                "message_id": d.message_id,
                "content_type": d.content_type,
                "bytes": d.bytes,
                "code": d.code(),
                "reason": d.reason,
                "location": d.location,
                "original_routing_key": d.original_routing_key,
            });
            writeln!(out, "{line}")?;
        }
    } else {
        writeln!(out, "message_id\tcontent_type\tbytes\treason\tlocation")?;
        // The sender's text (its message id and content type, a reason
        // quoting the message) may hold control characters: escaped, they
        // neither drive the terminal nor forge lines or columns.
        let text = |s: Option<&str>| printable(s.unwrap_or("-")).into_owned();
        for d in letters {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                text(d.message_id.as_deref()),
                text(d.content_type.as_deref()),
                d.bytes,
                text(Some(d.reason.as_str())),
                text(d.location.as_deref()),
            )?;
        }
    }
    let mut by_code = std::collections::BTreeMap::<&str, usize>::new();
    for d in letters {
        *by_code.entry(d.code()).or_default() += 1;
    }
    let counts: Vec<String> = by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let more = if peeked.waiting > letters.len() {
        format!(" (of {} waiting: --limit to read more)", peeked.waiting)
    } else {
        String::new()
    };
    let by_reason = if counts.is_empty() {
        String::new()
    } else {
        format!("; by reason: {}", counts.join(", "))
    };
    eprintln!(
        "{} message(s) read from {queue} and left in place{more}{by_reason}",
        letters.len()
    );
    Ok(())
}
