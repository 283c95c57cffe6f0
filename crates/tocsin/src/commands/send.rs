//! `tocsin send PATH...`: publish files to the gateway's input queue, as an
//! integration engine would. For trying tocsin out and for tests.

use std::path::PathBuf;
use std::process::ExitCode;

use sha2::{Digest, Sha256};
use tocsin_amqp::OutgoingMessage;

use crate::config::Config;
use crate::inputs;

/// Arguments of `tocsin send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Exchange to publish to ("" is the default exchange, which routes by
    /// queue name).
    #[arg(long, default_value = "")]
    pub exchange: String,
    /// Routing key (default: the configured input queue).
    #[arg(long)]
    pub routing_key: Option<String>,
    /// AMQP content type (default: from each file's name: `.hl7`/`.er7` HL7
    /// v2, `.json` FHIR JSON (NDJSON when its content is), `.ndjson` and
    /// `.jsonl` NDJSON, `.xml` FHIR XML, any of them also `.gz`, which is
    /// sent decompressed; otherwise none, and the gateway detects the
    /// format from the content).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Files or directories (read recursively, in file-name order); each
    /// file is one message.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Publishes each file as one persistent message, with publisher confirms.
pub fn run(config: &Config, args: &SendArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let expanded = inputs::expand(&args.paths)?;
    expanded.tell("send");
    // As a file that cannot be read stops the send, so does a directory
    // that cannot be listed: nothing is published short of what was asked.
    if let Some((dir, e)) = expanded.unreadable.first() {
        return Err(format!("{}: cannot read the directory: {e}", dir.display()).into());
    }
    let files = expanded.files;
    let routing_key = args
        .routing_key
        .clone()
        .unwrap_or_else(|| config.amqp.input_queue.clone());
    let mut messages = Vec::with_capacity(files.len());
    // Read as replay reads them: a `.gz` file is sent decompressed.
    for (file, body) in inputs::read_ahead(
        files.iter().map(PathBuf::as_path),
        1,
        u64::MAX,
        inputs::cache_share(1),
    ) {
        // A damaged archive is not sent in part.
        let body = body
            .and_then(inputs::FileRead::whole)
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        let content_type = args
            .content_type
            .clone()
            .or_else(|| content_type_for(file, &body));
        let digest = Sha256::digest(&body);
        messages.push(OutgoingMessage {
            exchange: args.exchange.clone(),
            routing_key: routing_key.clone(),
            message_id: hex::encode(&digest[..16]),
            content_type,
            body,
            headers: None,
            mandatory: true,
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let session = super::broker_session(config).await?;
        let publisher = session.publisher().await?;
        publisher.publish_confirmed(&messages).await?;
        session.close().await?;
        eprintln!(
            "sent {} message(s) to exchange {:?} with routing key {routing_key:?}; the broker confirmed them",
            messages.len(),
            args.exchange
        );
        Ok::<_, Box<dyn std::error::Error>>(ExitCode::SUCCESS)
    })
}

/// The content type a file's name announces; for `.json`, which may hold
/// one resource or NDJSON, its content decides, as `normalise` and `replay`
/// decide: labelled FHIR JSON, an NDJSON file was refused whole live.
fn content_type_for(path: &std::path::Path, body: &[u8]) -> Option<String> {
    let name = inputs::format_name(path)?;
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    let ct = match ext.as_str() {
        "hl7" | "er7" => "x-application/hl7-v2+er7",
        "json" if tocsin_ingest::detect(body).ok() == Some(tocsin_ingest::ContentHint::Ndjson) => {
            "application/x-ndjson"
        }
        "json" => "application/fhir+json",
        "ndjson" | "jsonl" => "application/x-ndjson",
        "xml" => "application/fhir+xml",
        _ => return None,
    };
    Some(ct.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_json_file_is_labelled_by_its_content() {
        let one = br#"{"resourceType":"Encounter","status":"finished"}"#;
        let lines = b"{\"resourceType\":\"Encounter\"}\n{\"resourceType\":\"Patient\"}\n";
        let ct = |name: &str, body: &[u8]| content_type_for(Path::new(name), body);
        assert_eq!(ct("a.json", one).as_deref(), Some("application/fhir+json"));
        assert_eq!(ct("b.json", lines).as_deref(), Some("application/x-ndjson"));
        assert_eq!(
            ct("c.JSON.gz", lines).as_deref(),
            Some("application/x-ndjson")
        );
        assert_eq!(
            ct("d.hl7", lines).as_deref(),
            Some("x-application/hl7-v2+er7")
        );
        assert_eq!(ct("e.txt", one), None);
    }
}
