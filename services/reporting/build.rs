// The migrations are embedded at compile time (`sqlx::migrate!`): adding one
// must rebuild the crate, which cargo does not know without this.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
