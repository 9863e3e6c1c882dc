//! `testing::tracing_capture::capture` hears a callsite that another thread, with no
//! subscriber, reached first; `tracing::subscriber::set_default` alone does not. Its own
//! test binary: no other test may register a dispatcher while this one counts them.

#![allow(clippy::unwrap_used, reason = "tests assert")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

/// Counts the events it is given.
#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Count {
    fn on_event(&self, _event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Count {
    fn seen(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn plain() {
    tracing::info!("reached by a thread without a subscriber first");
}

fn captured() {
    tracing::info!("reached by a thread without a subscriber first, then captured");
}

/// Runs `f` on a thread of its own, which has no default subscriber.
fn elsewhere(f: fn()) {
    std::thread::spawn(f).join().unwrap();
}

#[test]
fn a_capture_hears_a_callsite_another_thread_reached_first() {
    {
        let count = Count::default();
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(count.clone()));
        elsewhere(plain);
        plain();
        assert_eq!(
            count.seen(),
            0,
            "with `set_default` alone, the other thread cached the callsite as unwanted \
             (if tracing no longer does, `capture` is no longer needed)"
        );
    }
    let count = Count::default();
    let _capture = portal_core::testing::tracing_capture::capture(tracing_subscriber::registry().with(count.clone()));
    elsewhere(captured);
    captured();
    assert_eq!(count.seen(), 1, "the capture heard this thread's event, and only it");
    plain();
    assert_eq!(count.seen(), 2, "and a callsite cached as unwanted before it was made");
}
