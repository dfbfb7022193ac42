//! `holdfast-bench`: see `holdfast_tests::bench`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let options = <holdfast_tests::bench::Options as clap::Parser>::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(holdfast_tests::bench::main(options))
}
