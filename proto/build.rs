//! Compiles proto/shop/** with protox (pure Rust: no system `protoc`), keeps
//! the descriptor set for gRPC server reflection and the gateway's policy,
//! and writes the Connect face's OpenAPI document from it (`openapi.rs`).

#[path = "openapi.rs"]
mod openapi;
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
    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    // Reflection and the gateway's policy read this set. Encoded by protox
    // itself, it keeps our own method options (`shop.api.v1.access`), which
    // prost's FileDescriptorSet would drop as unknown fields.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = compiler.encode_file_descriptor_set();
    std::fs::write(out_dir.join("shop_descriptor.bin"), &encoded)?;
    let pool = prost_reflect::DescriptorPool::decode(encoded.as_slice())?;
    let document = openapi::generate(&pool)?;
    std::fs::write(out_dir.join("openapi.json"), serde_json::to_string_pretty(&document)? + "\n")?;
    tonic_prost_build::configure()
        // Every RPC must have its handler: a forgotten one does not compile.
        .generate_default_stubs(false)
        .codec_path("crate::codec::ShopCodec")
        // One file that nests every package's module as its package path.
        .include_file("packages.rs")
        .compile_fds(compiler.file_descriptor_set())?;
    println!("cargo:rerun-if-changed=shop");
    println!("cargo:rerun-if-changed=google");
    println!("cargo:rerun-if-changed=openapi.rs");
    Ok(())
}
