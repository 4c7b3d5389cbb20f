//! Command-line interface of the `uig` binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::{clients, directory, engine, ledger, signature};

/// UIG, the Universal Integration Gateway.
#[derive(Debug, Parser)]
#[command(name = "uig", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Location of the config file.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file.
    #[arg(long, short, env = "UIG_CONFIG", default_value = "uig.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: API, delivery and callback workers.
    Serve(ConfigArg),
    /// Apply database migrations and exit.
    Migrate(ConfigArg),
    /// Print a new random master key (64 hex characters) for UIG_MASTER_KEY or master_key_file.
    Keygen,
    /// Manage client systems.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage directory mappings.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Inspect and re-queue messages.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Read and reset the stored pointers of external feeds.
    #[command(subcommand)]
    Cursor(CursorCommand),
    /// List scheduled jobs with their last run and next tick.
    Jobs(ConfigArg),
    /// Compute the signature of a request and print the string to sign and the hash.
    Sign(SignArgs),
    /// Sign and send a request, then print the status and the response body.
    Call(CallArgs),
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client and print its token and secret (shown only once).
    Add {
        #[command(flatten)]
        config: ConfigArg,
        /// Client name.
        name: String,
        /// Connectors the client may send to, comma-separated (`*` for all).
        #[arg(long, value_delimiter = ',', required = true)]
        allow: Vec<String>,
        /// Hosts (or host:port) allowed in callback URLs, comma-separated.
        #[arg(long = "callback-host", value_delimiter = ',')]
        callback_hosts: Vec<String>,
        /// Use this token instead of a random one (to keep an existing client's credentials).
        #[arg(long)]
        token: Option<String>,
        /// Use this secret instead of a random one.
        #[arg(long)]
        secret: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List clients (without credentials).
    List(ConfigArg),
    /// Give a client a new secret and print it once; the old one stays valid for a while.
    RotateSecret {
        #[command(flatten)]
        config: ConfigArg,
        /// Client name.
        name: String,
        /// Use this secret instead of a random one.
        #[arg(long)]
        secret: Option<String>,
        /// Hours the replaced secret still verifies requests (and signs callbacks beside the new one).
        #[arg(long, default_value_t = 24)]
        keep_previous_hours: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Import a CSV file `connector,directory,internal_code,external_code,name`.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// CSV file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CursorCommand {
    /// List every feed with its pointer, last poll and last error.
    List(ConfigArg),
    /// Set the pointer of a feed; the next poll continues after it.
    Set {
        #[command(flatten)]
        config: ConfigArg,
        /// Feed as CONNECTOR/FEED, as `uig cursor list` prints it (`kontur/6b1f...`).
        feed: String,
        /// New pointer value; omit it with --clear to read the feed from its start.
        #[arg(required_unless_present = "clear")]
        value: Option<String>,
        /// Remove the pointer instead of setting it.
        #[arg(long, conflicts_with = "value")]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Show a message with all its attempts.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// Message id.
        id: i64,
    },
    /// Print the number of stored messages.
    Count(ConfigArg),
    /// Put failed messages back into the queue.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// Message ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Client token.
    #[arg(long)]
    pub token: String,
    /// Client secret.
    #[arg(long, env = "UIG_CLIENT_SECRET")]
    pub secret: String,
    /// HTTP method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Parameters as name=value; `timestamp` is added (now, RFC 3339) unless given.
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[command(flatten)]
    pub sign: SignArgs,
}

async fn open(config: &ConfigArg) -> anyhow::Result<(Config, Db)> {
    let config = Config::load(&config.config)?;
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    Ok((config, db))
}

fn parse_pairs(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    for pair in pairs {
        let (name, value) = pair.split_once('=').ok_or_else(|| anyhow::anyhow!("parameter \"{pair}\" is not name=value"))?;
        params.push((name.to_string(), value.to_string()));
    }
    if !params.iter().any(|(name, _)| name == "timestamp") {
        let now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        params.push(("timestamp".to_string(), now));
    }
    Ok(params)
}

/// Signs parameters; returns them with `hash` added, and the string to sign.
fn signed(args: &SignArgs) -> anyhow::Result<(Vec<(String, String)>, String)> {
    let mut params = parse_pairs(&args.params)?;
    let method = args.method.to_ascii_uppercase();
    let string_to_sign = signature::string_to_sign(&method, &args.path, &params, &args.token);
    let hash = signature::sign(args.secret.as_bytes(), &string_to_sign);
    params.push(("hash".to_string(), hash));
    Ok((params, string_to_sign))
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => crate::server::serve(Config::load(&config.config)?).await,
        Command::Migrate(config) => {
            open(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keygen => {
            println!("{}", MasterKey::generate_hex());
            Ok(())
        }
        Command::Client(ClientCommand::Add { config, name, allow, callback_hosts, token, secret, json }) => {
            let (config, db) = open(&config).await?;
            let key = engine::master_key(&config)?;
            let created = clients::create(&db, &key, &name, &allow, &callback_hosts, token, secret).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!("client:  {} (id {})", created.name, created.id);
                println!("token:   {}", created.token);
                println!("secret:  {}", created.secret);
                println!("allowed: {}", created.allowed_recipients.join(","));
                println!("callback hosts: {}", created.callback_hosts.join(","));
                println!("Store the token and secret now: they are not shown again.");
            }
            Ok(())
        }
        Command::Client(ClientCommand::List(config)) => {
            let (_, db) = open(&config).await?;
            println!("{:<6} {:<24} {:<30} {:<30} disabled", "id", "name", "allowed", "callback hosts");
            for client in clients::list(&db).await? {
                println!("{:<6} {:<24} {:<30} {:<30} {}", client.id, client.name, client.allowed_recipients, client.callback_hosts, client.disabled);
            }
            Ok(())
        }
        Command::Client(ClientCommand::RotateSecret { config, name, secret, keep_previous_hours, json }) => {
            let (config, db) = open(&config).await?;
            let key = engine::master_key(&config)?;
            let rotated = clients::rotate_secret(&db, &key, &name, secret, keep_previous_hours).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rotated)?);
            } else {
                println!("client:  {}", rotated.name);
                println!("secret:  {}", rotated.secret);
                println!("the previous secret stays valid until {}", crate::scheduler::format_ms(rotated.previous_valid_until));
                println!("Store the secret now: it is not shown again. Running gateways use it within 30 s.");
            }
            Ok(())
        }
        Command::Directory(DirectoryCommand::Import { config, file }) => {
            let (_, db) = open(&config).await?;
            let count = directory::import_csv(&db, &file).await?;
            println!("{count} mappings imported from {}; running gateways pick them up within a minute", file.display());
            Ok(())
        }
        Command::Message(MessageCommand::Show { config, id }) => {
            let (_, db) = open(&config).await?;
            let message = ledger::find(&db, id).await?.ok_or_else(|| anyhow::anyhow!("message {id} not found"))?;
            println!("id {}  client {}  {} -> {}/{}  status {}  attempts {}", message.id, message.client_id, message.direction, message.recipient, message.entity, message.status, message.attempts);
            println!("message: {}", message.message);
            println!("data:    {}", message.data.as_deref().unwrap_or("-"));
            println!("error:   {}", message.error.as_deref().unwrap_or("-"));
            println!("callback: {} ({})", message.callback_url.as_deref().unwrap_or("-"), message.callback_state.as_deref().unwrap_or("-"));
            for attempt in ledger::attempts_of(&db, id).await? {
                println!("  {} #{} at {} {} ms {} {}", attempt.kind, attempt.number, crate::api::messages::format_time(attempt.started_at), attempt.duration_ms, attempt.outcome, attempt.error.as_deref().unwrap_or(""));
            }
            Ok(())
        }
        Command::Message(MessageCommand::Count(config)) => {
            let (_, db) = open(&config).await?;
            let total = ledger::count_all(&db).await?;
            println!("{total}");
            Ok(())
        }
        Command::Message(MessageCommand::Retry { config, ids }) => {
            let (_, db) = open(&config).await?;
            let count = ledger::requeue_failed(&db, &ids).await?;
            println!("{count} of {} messages re-queued (only failed messages are)", ids.len());
            Ok(())
        }
        Command::Cursor(CursorCommand::List(config)) => {
            let (_, db) = open(&config).await?;
            let feeds = crate::feeds::list(&db).await?;
            if feeds.is_empty() {
                println!("no feed has been polled yet");
            }
            for feed in feeds {
                println!("{}/{}", feed.connector, feed.feed);
                println!("  pointer:     {}", feed.cursor.as_deref().unwrap_or("- (start of the feed)"));
                println!("  last poll:   {}", feed.last_polled_at.map(crate::scheduler::format_ms).unwrap_or_else(|| "-".into()));
                println!("  events:      {}", feed.events_total);
                println!("  last error:  {}", feed.last_error.as_deref().unwrap_or("-"));
                if let (Some(owner), Some(until)) = (&feed.lease_owner, feed.lease_until) {
                    println!("  polled by:   {owner} until {}", crate::scheduler::format_ms(until));
                }
            }
            Ok(())
        }
        Command::Cursor(CursorCommand::Set { config, feed, value, clear }) => {
            let (_, db) = open(&config).await?;
            let Some((connector, feed_name)) = feed.split_once('/').filter(|(connector, name)| !connector.is_empty() && !name.is_empty()) else {
                anyhow::bail!("feed \"{feed}\" is not CONNECTOR/FEED, such as kontur/6b1f0c2a-...; see `uig cursor list`");
            };
            let value = if clear { None } else { value };
            let previous = crate::feeds::set_cursor(&db, connector, feed_name, value.clone()).await?;
            println!("{feed}: pointer {} -> {}", previous.as_deref().unwrap_or("-"), value.as_deref().unwrap_or("- (start of the feed)"));
            Ok(())
        }
        Command::Jobs(config) => {
            let (config, db) = open(&config).await?;
            let jobs = crate::scheduler::list(&db, &config).await?;
            if jobs.is_empty() {
                println!("no jobs configured");
            }
            let time = |ms: Option<i64>| ms.map(crate::scheduler::format_ms).unwrap_or_else(|| "-".into());
            for job in jobs {
                let state = job.state.unwrap_or_default();
                println!("{} ({}, \"{}\"{})", job.name, job.task, job.schedule, if job.enabled { "" } else { ", disabled" });
                println!("  next run:  {}", time(job.next_run));
                println!("  last run:  {}", last_run(&state));
                println!("  runs:      {} ({} failed)", state.runs, state.failures);
            }
            Ok(())
        }
        Command::Sign(args) => {
            let (params, string_to_sign) = signed(&args)?;
            println!("string to sign:\n{string_to_sign}\n");
            for (name, value) in params {
                println!("{name}={value}");
            }
            Ok(())
        }
        Command::Call(args) => call(args).await,
    }
}

async fn call(args: CallArgs) -> anyhow::Result<()> {
    let (params, _) = signed(&args.sign)?;
    let method = reqwest::Method::from_bytes(args.sign.method.to_ascii_uppercase().as_bytes())?;
    let url = format!("{}{}", args.url.trim_end_matches('/'), args.sign.path);
    let client = reqwest::Client::new();
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
    let request = if method == reqwest::Method::GET {
        client.get(format!("{url}?{encoded}"))
    } else {
        client.request(method, url).header("content-type", "application/x-www-form-urlencoded").body(encoded)
    };
    let request = request.bearer_auth(&args.sign.token);
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    println!("HTTP {}", status.as_u16());
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) => println!("{}", serde_json::to_string_pretty(&value)?),
        Err(_) => println!("{text}"),
    }
    if !status.is_success() {
        std::process::exit(1);
    }
    Ok(())
}

/// Describes a job's last run for `uig jobs`: when it started, its outcome, how long it took and
/// its detail, or "never".
fn last_run(state: &crate::db::job::Model) -> String {
    let Some(started) = state.last_started_at else {
        return "never".to_string();
    };
    format!(
        "{} {} in {} ms: {}",
        crate::scheduler::format_ms(started),
        state.last_outcome.as_deref().unwrap_or("-"),
        state.last_duration_ms.unwrap_or(0),
        state.last_detail.as_deref().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::last_run;

    #[test]
    fn last_run_says_never_before_the_first() {
        let mut state = crate::db::job::Model::default();
        assert_eq!(last_run(&state), "never");

        state.last_started_at = Some(0);
        state.last_outcome = Some("ok".to_string());
        state.last_duration_ms = Some(12);
        state.last_detail = Some("3 entries".to_string());
        let described = last_run(&state);
        assert!(described.ends_with(" ok in 12 ms: 3 entries"), "{described}");
        assert!(described.starts_with(&crate::scheduler::format_ms(0)), "{described}");
    }
}
