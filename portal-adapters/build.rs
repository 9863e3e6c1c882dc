//! Rebuilds the crate when a migration is added or changed, so `sqlx::migrate!` always
//! embeds the current set (the macro alone does not tell cargo to watch the directory).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
