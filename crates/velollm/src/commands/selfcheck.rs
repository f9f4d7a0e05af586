//! `velollm selfcheck`: measure velollm's own cost against its built-in loopback server, or serve that
//! server (`--serve`) so other clients can be measured against the same zero-cost server.

use crate::args::{Dur, JsonArg};
use crate::exit::InputError;
use anyhow::{Context, Result, anyhow};
use clap::Args;
use velollm_engine::loopback::LoopbackConfig;
use velollm_engine::selfcheck::SelfCheckOptions;

/// `velollm selfcheck`.
#[derive(Debug, Args)]
pub struct SelfcheckArgs {
    /// The brief check run before every benchmark (about 2 s).
    #[arg(long)]
    pub quick: bool,
    /// Concurrency of each paced level [default: 1,4,16,64,256; with --quick 1,16,64].
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    pub levels: Option<Vec<u32>>,
    /// Concurrency of the ceiling level (no delays); 0 skips it [default: 64].
    #[arg(long, value_name = "N")]
    pub ceiling: Option<u32>,
    /// Measured time per level [default: 2s; with --quick 400ms].
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<Dur>,
    /// The server's delay before the first token at the paced levels (with --serve: always) [default: 5ms;
    /// with --quick 2ms; with --serve 0ms].
    #[arg(long, value_name = "DURATION")]
    pub ttft: Option<Dur>,
    /// The server's delay between tokens at the paced levels (with --serve: always) [default: 5ms; with --quick
    /// 2ms; with --serve 0ms].
    #[arg(long, value_name = "DURATION")]
    pub itl: Option<Dur>,
    /// Tokens per response, one per chunk (with --serve: when the request sets no max_tokens) [default: 64;
    /// with --quick 16].
    #[arg(long)]
    pub tokens: Option<u32>,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: u32,
    /// The figures as JSON.
    #[command(flatten)]
    pub json: JsonArg,
    /// Do not measure: serve the loopback server on this address (e.g. 127.0.0.1:8099) until Ctrl-C.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["quick", "levels", "ceiling", "duration", "json"])]
    pub serve: Option<String>,
    /// With --serve: events sent in one write when they are due together (with no delays, a whole
    /// response in one or a few writes: a server that costs its clients fewer reads) [default: 1, every
    /// token its own write, as a token-by-token server streams].
    #[arg(long, value_name = "N", requires = "serve", value_parser = clap::value_parser!(u32).range(1..))]
    pub events_per_write: Option<u32>,
}

/// Run `velollm selfcheck`.
pub async fn run(args: SelfcheckArgs) -> Result<u8> {
    let ttft = args.ttft.map(|d| d.0);
    let itl = args.itl.map(|d| d.0);
    if args.tokens == Some(0) {
        return Err(InputError(anyhow!("--tokens 0: a response needs at least one token")).into());
    }
    if let Some(addr) = &args.serve {
        let config = LoopbackConfig {
            ttft: ttft.unwrap_or_default(),
            itl: itl.unwrap_or_default(),
            tokens: args.tokens.unwrap_or(64),
            stamps: None,
            events_per_write: args.events_per_write.unwrap_or(1),
        };
        return serve(addr, config).await;
    }
    let mut opts = if args.quick { SelfCheckOptions::quick() } else { SelfCheckOptions::full() };
    if let Some(levels) = args.levels {
        if levels.is_empty() || levels.contains(&0) {
            return Err(InputError(anyhow!("--levels: give concurrencies of at least 1, such as 1,16,64")).into());
        }
        opts.levels = levels;
    }
    if let Some(d) = args.duration {
        opts.level_duration = crate::server::positive("--duration", d)?;
    }
    opts.ttft = ttft.unwrap_or(opts.ttft);
    opts.itl = itl.unwrap_or(opts.itl);
    opts.tokens = args.tokens.unwrap_or(opts.tokens);
    opts.ceiling_concurrency = args.ceiling.unwrap_or(opts.ceiling_concurrency);
    opts.prompt_tokens = args.prompt_tokens;
    let (_cancel_tx, cancel) = crate::signal::cancel_on_signal();
    let check = velollm_engine::selfcheck::run(&opts, &cancel).await?;
    if !args.json.on_stdout() {
        print!("{}", velollm_report::selfcheck::render(&check));
    }
    args.json.write(&check)?;
    Ok(if *cancel.borrow() { crate::exit::INTERRUPTED } else { crate::exit::OK })
}

/// Serve the loopback server on `addr` until Ctrl-C or SIGTERM.
async fn serve(addr: &str, config: LoopbackConfig) -> Result<u8> {
    let addr: std::net::SocketAddr =
        addr.parse().map_err(|_| InputError(anyhow!("--serve '{addr}': write an address such as 127.0.0.1:8099")))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(|| format!("cannot listen on {addr} (is the port in use?)"))?;
    // A deep accept queue: thousands of clients may connect at once.
    let listener = socket.listen(4096)?;
    println!(
        "velollm loopback server on http://{} (OpenAI chat and completions, {} tokens unless max_tokens says; \
         Ctrl-C stops it)",
        listener.local_addr()?,
        config.tokens
    );
    let (_cancel_tx, cancel) = crate::signal::cancel_on_signal();
    velollm_engine::loopback::serve(listener, config, cancel).await;
    Ok(crate::exit::OK)
}
