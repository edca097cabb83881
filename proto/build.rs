//! Compiles proto/shop/** with protox (pure Rust: no system `protoc`) and keeps
//! the descriptor set for gRPC server reflection.
use prost::Message as _;

const PROTOS: &[&str] = &[
    "shop/identity/v1/identity.proto",
    "shop/identity/v1/internal.proto",
    "shop/catalog/v1/catalog.proto",
    "shop/catalog/v1/internal.proto",
    "shop/order/v1/order.proto",
    "shop/cart/v1/cart.proto",
    "shop/reporting/v1/reporting.proto",
    // Only for reflection: clients decode INVALID_ARGUMENT details with it.
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(PROTOS, ["."])?;
    // Reflection serves this set; compile_fds does not write it for us.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("shop_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure()
        // Services whose logic lands in later issues answer UNIMPLEMENTED.
        .generate_default_stubs(true)
        .codec_path("crate::codec::ShopCodec")
        // One file that nests every package's module as its package path.
        .include_file("packages.rs")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=shop");
    println!("cargo:rerun-if-changed=google");
    Ok(())
}
