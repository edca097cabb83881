// Every call allocates (header maps, frames, messages); glibc's malloc was a
// tenth of the suite's CPU under load (bench/README.md, "Hop cost").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // No transparent huge pages: mimalloc asks for them, and a buffer that
    // is reserved whole but filled sparsely (a decoder's room for a message
    // its sender announced and never sends) would then cost 2 MiB of memory
    // per touched page instead of the bytes that came. With them off, what
    // the suite holds is what the body budget counts (bench/README.md,
    // "Budgets"). Best effort: a kernel without THP has nothing to turn off.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shop: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let cli = shop::cli::Cli::parse_or_exit();
        match shop::cli::run(cli).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("shop: {}", shop_platform::error::chain_without_repeats(error.as_ref()));
                std::process::ExitCode::FAILURE
            }
        }
    })
}
