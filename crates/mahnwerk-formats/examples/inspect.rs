//! Run the inspect CLI on files: `cargo run -p mahnwerk-formats --example inspect -- statement FILE…`.
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: mahnwerk_formats::cli::InspectCommand,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = mahnwerk_formats::cli::run(args.cmd, &mut std::io::stdout().lock()) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
