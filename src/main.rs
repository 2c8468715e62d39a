//! The `hanko` binary: CLI parsing, config loading, wiring, printing. Nothing else: what
//! `drill`, `revert` and `resume` do is the library's ([`hanko::actions::cli`]).
//!
//! The commands are a contract other tools script against: exit 0 on success, 1 when the
//! answer is "no" (bad config, malformed finding, broken audit chain), 2 when the command
//! could not run (missing file, store locked by a running hanko).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};

use hanko::actions::cli;
use hanko::audit::{AuditQuery, EventKind};
use hanko::finding;
use hanko::plan;
use hanko::playbooks::Playbooks;
use hanko::store::{Store, StoreLocation};

/// jemalloc instead of glibc's malloc (BENCHMARKS.md §3): malloc was about a quarter of the CPU
/// of a 10,000-finding burst, and glibc kept freed memory in an arena per thread. With it the
/// burst is stored in 2.0 s instead of 2.8-3.3 s and peaks 7-10 MiB lower.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (`_RJEM_MALLOC_CONF` in the environment still
/// overrides them): two arenas (hanko's threads are the tokio workers and a few blocking ones),
/// freed pages handed back to the system after 100 ms by a background thread instead of kept,
/// and small per-thread caches. Measured on the burst: the default settings peaked at 125 MiB,
/// these at 85 MiB at the same speed.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] =
    b"narenas:2,background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0,tcache_max:1024\0";

#[derive(Parser)]
#[command(
    name = "hanko",
    version,
    about = "Approval-gated containment for AWS security findings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot: Discord gateway and cards, the engine, /healthz and /metrics, until
    /// SIGTERM or SIGINT.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a config file: prints OK, or one line per problem naming the key and the fix.
    CheckConfig { file: PathBuf },
    /// Work with finding documents.
    #[command(subcommand)]
    Finding(FindingCmd),
    /// Print the containment plan for a finding as JSON.
    Plan {
        finding_file: PathBuf,
        /// Playbook overrides (default: the built-in routing).
        #[arg(long)]
        playbooks: Option<PathBuf>,
    },
    /// Query, verify and export the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Set up the store: create the DynamoDB table, or copy a sled store into it.
    #[command(subcommand)]
    Store(StoreCmd),
    /// Game day or break-glass: the whole life of one request without chat (plan, request,
    /// approval by the named operators, execution, verification), against whatever AWS
    /// endpoint and credentials the environment gives.
    Drill(DrillArgs),
    /// Propose, approve (as the named operators) and run the revert of an executed request.
    Revert(RevertArgs),
    /// Finish every request left Approved or Executing (what `hanko run` does at start-up),
    /// e.g. after a crash during a drill. Steps check first, so nothing is done twice.
    Resume {
        /// The store; default with --config: the config's `store.path`.
        #[arg(long)]
        db: Option<PathBuf>,
        /// hanko's config: the checks before running hold each approval to its policy, and
        /// its `aws.regions` / `aws.accounts` allow-lists apply, as in `hanko run`.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        role_arn_template: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct DrillArgs {
    finding_file: PathBuf,
    /// The store; default with --config: the config's `store.path`.
    #[arg(long)]
    db: Option<PathBuf>,
    /// hanko's config: its policy, playbooks, `aws.regions` and `aws.accounts` allow-lists,
    /// endpoint and role template apply, as in `hanko run`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Playbook overrides (default: the config's, else the built-in routing).
    #[arg(long)]
    playbooks: Option<PathBuf>,
    /// Approve as this operator (audited as a CLI operator); repeat for plans that need
    /// several distinct approvers (each name once). Default: $USER.
    #[arg(long = "approve-as")]
    approve_as: Vec<String>,
    /// Make no mutating call: print every call with its parameters (EC2 calls are sent with
    /// DryRun=true to prove the permissions). Nothing is written to the store but the dry
    /// run's audit event (DryRunPerformed: who ran it, on what).
    #[arg(long)]
    dry_run: bool,
    /// Run destructive steps even if an evidence step (snapshot) fails.
    #[arg(long)]
    override_evidence: bool,
    /// Assume this role in member accounts, e.g. arn:aws:iam::{account}:role/HankoResponder.
    #[arg(long)]
    role_arn_template: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RevertArgs {
    request_id: uuid::Uuid,
    /// The store; default with --config: the config's `store.path`.
    #[arg(long)]
    db: Option<PathBuf>,
    /// hanko's config: its policy, `aws.regions` and `aws.accounts` allow-lists, endpoint and
    /// role template apply, as in `hanko run`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Approve as this operator; repeat with distinct names when the policy needs several
    /// approvers. Default: $USER.
    #[arg(long = "approve-as")]
    approve_as: Vec<String>,
    #[arg(long)]
    role_arn_template: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum FindingCmd {
    /// Parse a GuardDuty API document, EventBridge event or ASFF document; print the
    /// normalized finding(s) as JSON.
    Parse { file: PathBuf },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Events matching every filter given, newest first.
    Query(QueryArgs),
    /// Verify the hash chain: exit 0 when intact, 1 naming the first bad event. With
    /// --anchors, also check the signed digests hanko run wrote to S3 (their signatures and
    /// links) and that the store still holds every anchored head.
    Verify {
        #[command(flatten)]
        at: StoreArgs,
        /// Where the digests are: s3://BUCKET/PREFIX (the [audit] anchor_bucket and
        /// anchor_prefix). S3 is reached as the other commands reach AWS (AWS_ENDPOINT_URL,
        /// the standard credentials and region).
        #[arg(long, value_name = "s3://BUCKET/PREFIX", requires = "public_key")]
        anchors: Option<String>,
        /// The Ed25519 public key of the anchor key, SubjectPublicKeyInfo PEM
        /// (`openssl pkey -in anchor.pem -pubout`).
        #[arg(long, value_name = "PUB.pem", requires = "anchors")]
        public_key: Option<PathBuf>,
    },
    /// Export every event, oldest first.
    Export {
        #[command(flatten)]
        at: StoreArgs,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    at: StoreArgs,
    #[arg(long)]
    finding: Option<String>,
    #[arg(long)]
    request: Option<uuid::Uuid>,
    /// A Discord user id or name, a CLI operator name, or `system`.
    #[arg(long)]
    actor: Option<String>,
    /// An event kind, e.g. ApprovalGranted.
    #[arg(long)]
    kind: Option<String>,
    /// RFC 3339 time or an age such as 7d, 12h.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time or an age such as 7d, 12h.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// JSON output (an array of events).
    #[arg(long)]
    json: bool,
}

/// Which store a command reads: a sled directory, or the store a config names (its
/// `[store]`: sled or DynamoDB).
#[derive(Args)]
#[group(required = true, multiple = false)]
struct StoreArgs {
    /// A sled store's directory.
    #[arg(long)]
    db: Option<PathBuf>,
    /// hanko's config: the store its `[store]` section names (sled or DynamoDB).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Create the DynamoDB table of the config's `[store]` (backend = "dynamodb") with
    /// on-demand capacity, deletion protection and point-in-time recovery. Idempotent: an
    /// existing table with hanko's keys is left as it is.
    Init {
        #[arg(long)]
        config: PathBuf,
    },
    /// Copy a sled store into the config's DynamoDB table (which must be empty), keeping the
    /// audit chain; verifies the copy.
    Migrate {
        /// The sled store to copy.
        #[arg(long)]
        from_db: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The chain of causes, one sentence each; no secrets travel in these errors.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => runtime()?.block_on(run_bot(&config)),
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Finding(FindingCmd::Parse { file }) => parse_findings(&file),
        Command::Plan {
            finding_file,
            playbooks,
        } => plan_cmd(&finding_file, playbooks.as_deref()),
        Command::Audit(cmd) => audit(cmd),
        Command::Store(cmd) => store_command(cmd),
        Command::Drill(args) => runtime()?.block_on(drill(args)),
        Command::Revert(args) => runtime()?.block_on(revert(args)),
        Command::Resume {
            db,
            config,
            role_arn_template,
            json,
        } => runtime()?.block_on(resume(db, config, role_arn_template, json)),
    }
}

/// `hanko run`: 1 for a bad config (the lines of check-config), 2 when it cannot start
/// (no token, store locked), 0 after a clean shutdown.
async fn run_bot(config: &Path) -> anyhow::Result<ExitCode> {
    init_tracing_with("warn,hanko=info");
    let settings = match hanko::config::load(config) {
        Ok(s) => s,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let token = match settings.discord.token_source.read() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let playbooks = match load_playbooks(settings.playbooks_path.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let location = settings
        .store
        .location(settings.aws.endpoint_url.as_deref());
    let store = match Store::open_at(&location) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let clients = hanko::aws::ClientFactory::from_env(
        settings.aws.endpoint_url.clone(),
        settings.aws.role_arn_template.clone(),
        settings.aws.regions.first().cloned(),
    )
    .await;
    let app = hanko::app::App::new(settings, playbooks, store, clients);
    let options = hanko::run::Options::new(hanko::run::commands_dir());
    let running = hanko::run::start(app, &token, options).await?;
    hanko::run::termination_signal().await;
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(file: &Path) -> ExitCode {
    let problems = hanko::config::check(file);
    if problems.is_empty() {
        println!("OK");
        ExitCode::SUCCESS
    } else {
        for p in problems {
            println!("{p}");
        }
        ExitCode::from(1)
    }
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn parse_findings(file: &Path) -> anyhow::Result<ExitCode> {
    let text = read(file)?;
    match finding::parse_document(&text) {
        Ok(findings) => {
            print_json(&findings)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// Reads and validates a playbook file, or the defaults.
fn load_playbooks(file: Option<&Path>) -> anyhow::Result<Result<Playbooks, ExitCode>> {
    let Some(file) = file else {
        return Ok(Ok(Playbooks::defaults()));
    };
    let text = read(file)?;
    match Playbooks::parse(&text) {
        Ok(p) => Ok(Ok(p)),
        Err(problems) => {
            for p in problems {
                eprintln!("{}: {p}", file.display());
            }
            Ok(Err(ExitCode::from(1)))
        }
    }
}

fn plan_cmd(finding_file: &Path, playbooks: Option<&Path>) -> anyhow::Result<ExitCode> {
    let playbooks = match load_playbooks(playbooks)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let text = read(finding_file)?;
    let findings = match finding::parse_document(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", finding_file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let plans: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| plan_json(&plan::plan(f, &playbooks)))
        .collect();
    // One finding: the plan object; several (a GetFindings response): an array of plans.
    match plans.as_slice() {
        [one] => print_json(one)?,
        _ => print_json(&plans)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The documented plan shape: `{"finding_id", "plan_hash", "steps": [...], "notes"}`.
fn plan_json(p: &plan::Plan) -> serde_json::Value {
    serde_json::json!({
        "finding_id": p.finding_id,
        "account_id": p.account_id,
        "region": p.region,
        "sample": p.sample,
        "plan_hash": p.plan_hash,
        "steps": p.steps.iter().map(|s| serde_json::json!({
            "action": s.action,
            "service": s.service,
            "operation": s.operation,
            "target": s.target,
            "parameters": s.parameters,
            "risk": s.risk,
        })).collect::<Vec<_>>(),
        "notes": p.notes,
    })
}

fn open_store(at: &StoreLocation) -> anyhow::Result<Store> {
    // StoreError's Display is already the one sentence a person needs (e.g. "in use by
    // another hanko process"); it is kept as the error, with its chain.
    Ok(Store::open_at(at)?)
}

/// The store `--db` or `--config` names; a bad config is printed and becomes exit code 1.
fn store_location(at: &StoreArgs) -> Result<StoreLocation, ExitCode> {
    match (&at.db, &at.config) {
        (Some(db), _) => Ok(StoreLocation::Sled(db.clone())),
        (None, Some(config)) => match hanko::config::load(config) {
            Ok(settings) => Ok(settings
                .store
                .location(settings.aws.endpoint_url.as_deref())),
            Err(e) => {
                for line in e.lines() {
                    eprintln!("{line}");
                }
                Err(ExitCode::from(1))
            }
        },
        (None, None) => {
            eprintln!("error: give the store with --db DIR or --config FILE");
            Err(ExitCode::from(2))
        }
    }
}

/// The DynamoDB table a config's `[store]` names; anything else is printed as an error.
fn dynamo_target(config: &Path) -> Result<hanko::store::dynamo::DynamoTarget, ExitCode> {
    let at = StoreArgs {
        db: None,
        config: Some(config.to_path_buf()),
    };
    match store_location(&at)? {
        StoreLocation::DynamoDb(target) => Ok(target),
        StoreLocation::Sled(_) => {
            eprintln!(
                "error: {}: [store] backend is \"sled\"; set backend = \"dynamodb\" and table = \"NAME\" to use a DynamoDB table",
                config.display()
            );
            Err(ExitCode::from(1))
        }
    }
}

fn store_command(cmd: StoreCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCmd::Init { config } => {
            let target = match dynamo_target(&config) {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            match Store::init_dynamodb(&target, None) {
                Ok(created) => {
                    let what = if created { "created" } else { "already exists" };
                    println!(
                        "OK: DynamoDB table {} in {} {what} (on-demand, deletion protection, point-in-time recovery)",
                        target.table, target.region
                    );
                    // Opening writes the schema version, so the table is ready for `hanko run`.
                    Store::open_dynamodb(&target, None)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        StoreCmd::Migrate { from_db, config } => {
            let target = match dynamo_target(&config) {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            let from = Store::open(&from_db)?;
            let to = Store::open_dynamodb(&target, None)?;
            match from.copy_into(&to) {
                Ok(copied) => {
                    let events = to.verify_audit()?;
                    println!(
                        "OK: copied {copied} records from {} into DynamoDB table {}; {events} audit events, hash chain intact",
                        from_db.display(),
                        target.table
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

fn audit(cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCmd::Query(args) => {
            let now = Utc::now();
            let time = |s: &Option<String>, what: &str| -> anyhow::Result<_> {
                s.as_deref()
                    .map(|s| hanko::util::parse_time(s, now))
                    .transpose()
                    // `parse_time` says why in a sentence (a String): there is no chain to keep.
                    .map_err(|why| anyhow::anyhow!("--{what}: {why}"))
            };
            let kind = match args.kind.as_deref() {
                None => None,
                Some(k) => Some(EventKind::parse(k).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--kind: unknown event kind `{k}`; known kinds: {}",
                        EventKind::ALL.map(|k| k.as_str()).join(", ")
                    )
                })?),
            };
            let query = AuditQuery {
                finding_id: args.finding,
                request_id: args.request,
                actor: args.actor,
                kind,
                since: time(&args.since, "since")?,
                until: time(&args.until, "until")?,
                limit: Some(args.limit),
            };
            let at = match store_location(&args.at) {
                Ok(at) => at,
                Err(code) => return Ok(code),
            };
            let store = open_store(&at)?;
            let events = store.query_audit(&query)?;
            if args.json {
                print_json(&events)?;
            } else {
                let mut out = std::io::stdout().lock();
                for e in &events {
                    writeln!(
                        out,
                        "{:>8}  {}  {:<18}  {:<28}  finding={}  request={}",
                        e.seq,
                        e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        e.kind.as_str(),
                        e.actor.to_string(),
                        e.finding_id.as_deref().unwrap_or("-"),
                        e.request_id
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "-".into()),
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Verify {
            at,
            anchors: Some(url),
            public_key: Some(public_key),
        } => {
            let at = match store_location(&at) {
                Ok(at) => at,
                Err(code) => return Ok(code),
            };
            runtime()?.block_on(verify_anchored(&at, &url, &public_key))
        }
        AuditCmd::Verify { at, .. } => {
            let at = match store_location(&at) {
                Ok(at) => at,
                Err(code) => return Ok(code),
            };
            let store = open_store(&at)?;
            match store.verify_audit() {
                Ok(n) => {
                    println!("OK: {n} audit events, hash chain intact");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("BROKEN: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCmd::Export { at, format } => {
            let at = match store_location(&at) {
                Ok(at) => at,
                Err(code) => return Ok(code),
            };
            let store = open_store(&at)?;
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(stdout);
            match format {
                ExportFormat::Jsonl => {
                    for e in store.audit_events() {
                        let e = e?;
                        serde_json::to_writer(&mut out, &e)?;
                        out.write_all(b"\n")?;
                    }
                }
                ExportFormat::Csv => {
                    let mut w = csv::Writer::from_writer(out);
                    w.write_record([
                        "seq",
                        "at",
                        "actor",
                        "kind",
                        "finding_id",
                        "request_id",
                        "detail",
                        "prev_hash",
                        "hash",
                    ])?;
                    for e in store.audit_events() {
                        let e = e?;
                        w.write_record([
                            e.seq.to_string(),
                            e.at.to_rfc3339(),
                            e.actor.key(),
                            e.kind.as_str().to_string(),
                            e.finding_id.clone().unwrap_or_default(),
                            e.request_id.map(|r| r.to_string()).unwrap_or_default(),
                            e.detail.to_string(),
                            e.prev_hash.clone(),
                            e.hash.clone(),
                        ])?;
                    }
                    w.flush()?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `audit verify --anchors`: 0 intact and anchored, 1 broken (naming the digest or event and
/// the last anchored seq), 2 when it could not check (S3 unreachable, unreadable key file).
async fn verify_anchored(
    db: &StoreLocation,
    url: &str,
    public_key: &Path,
) -> anyhow::Result<ExitCode> {
    use hanko::anchor::verify::verify_anchored;
    use hanko::anchor::{AnchorLocation, AnchorPublicKey};
    init_tracing();
    let location = AnchorLocation::parse_url(url).context("--anchors")?;
    let key = AnchorPublicKey::read(public_key).context("--public-key")?;
    let store = open_store(db)?;
    let s3 = hanko::aws::ClientFactory::from_env(None, None, None)
        .await
        .own_s3(None);
    match verify_anchored(&store, &s3, &location, &key).await {
        Ok(r) => {
            println!(
                "OK: {} audit events, hash chain intact; {} digests at {} verified, last anchored seq {} (at {}){}",
                r.events,
                r.digests,
                location.url(),
                r.last_anchored_seq,
                r.last_anchored_at,
                match r.events - r.last_anchored_seq {
                    0 => String::new(),
                    n => format!("; {n} later events not anchored yet"),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_broken() => {
            println!("BROKEN: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    // Buffered: stdout is line-buffered, which made a report one write per line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, v)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_tracing() {
    init_tracing_with("warn");
}

/// Logs to stderr, filtered by `HANKO_LOG` (`default` when unset).
fn init_tracing_with(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HANKO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads the CLI setup; a refusal is printed and becomes the exit code (1: bad config, 2: a
/// repeated `--approve-as` or no store).
async fn cli_setup(
    approve_as: &[String],
    config: Option<&Path>,
    db: Option<PathBuf>,
    role_arn_template: Option<String>,
) -> Result<cli::CliSetup, ExitCode> {
    match cli::setup(approve_as, config, db, role_arn_template).await {
        Ok(setup) => Ok(setup),
        Err(cli::SetupRefused::Approvers(why)) => {
            eprintln!("{why}");
            Err(ExitCode::from(2))
        }
        Err(cli::SetupRefused::Config(lines)) => {
            for line in lines {
                eprintln!("{line}");
            }
            Err(ExitCode::from(1))
        }
        Err(cli::SetupRefused::NoStore) => {
            eprintln!("error: give the store with --db DIR (or a config with --config FILE)");
            Err(ExitCode::from(2))
        }
    }
}

/// Ends a one-shot command whose report is printed: flushes the store, then exits at once (0
/// when everything succeeded, 1 otherwise) instead of waiting for sled's and the runtime's
/// background threads to wind down, which flush again and took about 2 ms of a 35 ms drill
/// (BENCHMARKS.md §9). Nothing is lost: every write is durable after the flush.
fn exit_flushed(store: &Store, ok: bool) -> anyhow::Result<ExitCode> {
    store.flush()?;
    let _ = std::io::stderr().flush();
    std::process::exit(if ok { 0 } else { 1 })
}

/// 0 when everything succeeded, 1 otherwise.
fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn drill(args: DrillArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let setup = match cli_setup(
        &args.approve_as,
        args.config.as_deref(),
        args.db.clone(),
        args.role_arn_template.clone(),
    )
    .await
    {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let playbooks_path = args.playbooks.clone().or(setup.playbooks_path.clone());
    let playbooks = match load_playbooks(playbooks_path.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let text = read(&args.finding_file)?;
    let findings = match finding::parse_document(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", args.finding_file.display());
            return Ok(ExitCode::from(1));
        }
    };
    // The proof of hanko's own account (sts:GetCallerIdentity, kept by the client factory for
    // the planner) needs no store: it is on the wire while the store opens.
    let at = setup.store.clone();
    let opening = tokio::task::spawn_blocking(move || open_store(&at));
    if let Some(f) = findings.first() {
        setup.prove_reach(&f.region).await;
    }
    let store = opening.await.context("the store could not be opened")??;
    let options = cli::DrillOptions {
        approve_as: args.approve_as,
        dry_run: args.dry_run,
        override_evidence: args.override_evidence,
    };
    let outcome = cli::drill(&setup, &store, &playbooks, &findings, &options).await?;
    print_reports(&outcome.reports, args.json)?;
    exit_flushed(&store, outcome.ok)
}

async fn revert(args: RevertArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let setup = match cli_setup(
        &args.approve_as,
        args.config.as_deref(),
        args.db.clone(),
        args.role_arn_template.clone(),
    )
    .await
    {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let store = open_store(&setup.store)?;
    let outcome = cli::revert(&setup, &store, args.request_id, &args.approve_as).await?;
    print_reports(&outcome.reports, args.json)?;
    Ok(exit_code(outcome.ok))
}

/// Prints drill/revert reports as JSON, or as a short table per request.
fn print_reports(reports: &[serde_json::Value], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&reports);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let s = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_string()
    };
    for r in reports {
        writeln!(
            out,
            "request {}  finding {}  state {}",
            s(r, "request_id"),
            s(r, "finding_id"),
            s(r, "state")
        )?;
        if let Some(e) = r.get("error").and_then(|e| e.as_str()) {
            writeln!(out, "  {e}")?;
        }
        for n in r
            .get("notes")
            .and_then(|n| n.as_array())
            .into_iter()
            .flatten()
        {
            writeln!(out, "  note: {}", n.as_str().unwrap_or_default())?;
        }
        for st in r
            .get("steps")
            .and_then(|n| n.as_array())
            .into_iter()
            .flatten()
        {
            writeln!(
                out,
                "  {:>2}. {:<30} {:<45} {:<24} {}{}",
                st.get("index").and_then(|i| i.as_u64()).unwrap_or(0) + 1,
                s(st, "action"),
                s(st, "target"),
                s(st, "outcome"),
                st.get("error_code")
                    .and_then(|c| c.as_str())
                    .map(|c| format!("[{c}] "))
                    .unwrap_or_default(),
                s(st, "message"),
            )?;
            let captured = st.get("captured").cloned().unwrap_or_default();
            if !captured.is_null() {
                writeln!(out, "      captured: {captured}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

async fn resume(
    db: Option<PathBuf>,
    config: Option<PathBuf>,
    role_arn_template: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    init_tracing();
    if config.is_none() {
        eprintln!(
            "note: without --config, the checks before running hold each approval to the default \
             policy; give --config FILE to use hanko's"
        );
    }
    let setup = match cli_setup(&[], config.as_deref(), db, role_arn_template).await {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let store = open_store(&setup.store)?;
    let outcome = cli::resume(&setup, &store).await?;
    print_reports(&outcome.reports, json)?;
    Ok(exit_code(outcome.ok))
}
