// Every call allocates (header maps, frames, messages); glibc's malloc was a
// tenth of the suite's CPU under load (bench/README.md, "Hop cost").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = shop::cli::Cli::parse_or_exit();
    match shop::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shop: {}", shop_platform::error::chain_without_repeats(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
