//! A test's own `tracing` subscriber, in a test binary whose other tests run at once.
//!
//! `tracing` caches, for each callsite, whether any subscriber wants it. While at most
//! one dispatcher is registered, tracing-core 0.1 asks only the default subscriber of the
//! thread that reaches the callsite first (`Rebuilder::JustOne`). A test that installs a
//! capturing subscriber with `tracing::subscriber::set_default` therefore loses every span
//! or event whose callsite another test's thread, with no subscriber, reached first: the
//! callsite is cached as unwanted for the whole process, and the capture misses it. Such
//! a test fails now and then under `cargo test`; a test that asserts something is *not*
//! logged passes without proving it.
//!
//! [`capture`] installs the subscriber and registers a second, silent dispatcher beside
//! it. With two registered, tracing asks every live dispatcher about a callsite, when it
//! is registered and again for those registered before, so the capturing one is heard
//! whichever thread came first.

use tracing::Dispatch;
use tracing::dispatcher::DefaultGuard;
use tracing::subscriber::NoSubscriber;

/// The capturing subscriber installed by [`capture`]: this thread's default until dropped.
#[must_use = "the subscriber is this thread's default only while the guard lives"]
pub struct CapturedTracing {
    _default: DefaultGuard,
    _dispatch: Dispatch,
    _silent: Dispatch,
}

impl std::fmt::Debug for CapturedTracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedTracing").finish_non_exhaustive()
    }
}

/// Makes `subscriber` this thread's default `tracing` subscriber, in a way that every
/// callsite reaches it even if another thread reached the callsite first (see the
/// [module documentation](self)).
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let subscriber = tracing_subscriber::registry();
/// let _capture = portal_core::testing::tracing_capture::capture(subscriber);
/// tracing::info!("seen by `subscriber`, whichever test thread logged here first");
/// ```
pub fn capture(subscriber: impl Into<Dispatch>) -> CapturedTracing {
    let dispatch = subscriber.into();
    // Registering a dispatcher rebuilds every registered callsite's interest; once two
    // are registered, each rebuild and each new callsite asks both.
    let silent = Dispatch::new(NoSubscriber::default());
    let default = tracing::dispatcher::set_default(&dispatch);
    tracing::callsite::rebuild_interest_cache();
    CapturedTracing {
        _default: default,
        _dispatch: dispatch,
        _silent: silent,
    }
}
