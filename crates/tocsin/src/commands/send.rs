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
    /// v2, `.json` FHIR JSON, `.ndjson` NDJSON, `.xml` FHIR XML; otherwise
    /// none, and the gateway detects the format from the content).
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
    let files = expanded.files;
    let routing_key = args
        .routing_key
        .clone()
        .unwrap_or_else(|| config.amqp.input_queue.clone());
    let mut messages = Vec::with_capacity(files.len());
    // Read as replay reads them: a `.gz` file is sent decompressed.
    for (file, body) in inputs::read_ahead(files.iter().map(PathBuf::as_path), 1, u64::MAX) {
        let body = body.map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        let content_type = args.content_type.clone().or_else(|| content_type_for(file));
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

fn content_type_for(path: &std::path::Path) -> Option<String> {
    let name = inputs::format_name(path)?;
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    let ct = match ext.as_str() {
        "hl7" | "er7" => "x-application/hl7-v2+er7",
        "json" => "application/fhir+json",
        "ndjson" | "jsonl" => "application/x-ndjson",
        "xml" => "application/fhir+xml",
        _ => return None,
    };
    Some(ct.to_string())
}
