#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = shop::cli::Cli::parse_or_exit();
    match shop::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shop: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
