//! Property test: any single-byte change to a valid bearer token is refused.
//!
//! A compact JWS is ASCII, so every change here replaces one byte with another ASCII byte
//! (the token must stay a string to be presented at all). Whatever the position, in the
//! header, the payload, the signature or a separating dot, the token must not sign anyone
//! in. The unchanged token must sign in, so the property cannot hold vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

mod jwt_common;

use jwt_common::*;
use portal_core::identity::AuthError;
use proptest::prelude::*;

/// Signs in with `token` on a fresh runtime.
fn sign_in(world: &World, token: &str) -> Result<portal_core::identity::Authenticated, AuthError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(world.sign_in(token))
}

fn world_and_tokens() -> (World, Vec<String>) {
    let world = World::standard();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(world.linked_user("alice", "alice@example.com"));
    let tokens = vec![
        RSA_1.sign(&claims("alice")),
        EC_1.sign(&claims("alice")),
        ED_1.sign(&claims("alice")),
    ];
    for token in &tokens {
        assert!(sign_in(&world, token).is_ok(), "the unchanged token signs in");
    }
    (world, tokens)
}

proptest! {
    // Each case verifies one signature (RSA, ECDSA or EdDSA); 256 cases keep the test
    // within a few seconds on a debug build.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_is_refused(which in 0usize..3, position in any::<prop::sample::Index>(), byte in 0u8..128) {
        static WORLD: std::sync::OnceLock<(World, Vec<String>)> = std::sync::OnceLock::new();
        let (world, tokens) = WORLD.get_or_init(world_and_tokens);
        let token = &tokens[which];
        let mut bytes = token.clone().into_bytes();
        let at = position.index(bytes.len());
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        let changed = String::from_utf8(bytes).unwrap();
        let result = sign_in(world, &changed);
        prop_assert!(
            matches!(result, Err(AuthError::InvalidCredentials { .. })),
            "byte {at} of token {which} set to {byte:#04x} was not refused: {result:?}"
        );
    }
}
