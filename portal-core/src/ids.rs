//! Typed identifiers whose string form says what they name and sorts by creation time.
//!
//! Every id is a UUIDv7 (48 bits of Unix milliseconds, then randomness) written as a
//! prefix, an underscore and 26 characters of Crockford base32, the layout of the
//! [TypeID] convention: `org_01jd5x8y6kf3w9q2m7c4t0vbnr`. Because the time comes first
//! and base32 preserves order, ids sort by creation time both as values and as strings.
//!
//! A signature never takes a bare `String` or `Uuid` where an id is meant: `OrgId` and
//! `UserId` cannot be swapped by accident, and parsing `usr_…` as an [`OrgId`] fails
//! with a [`ParseIdError`] that names what was expected.
//!
//! [TypeID]: https://github.com/jetify-com/typeid

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

/// The string could not be parsed as the id it was meant to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {expected} id: {reason}")]
pub struct ParseIdError {
    /// The prefix the id should have carried, such as `org`.
    pub expected: &'static str,
    /// The rejected input, cut to 64 characters.
    pub input: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Makes the 128-bit values behind ids.
///
/// The default, [`RandomIds`], makes UUIDv7 values from the given time and the operating
/// system's randomness, strictly increasing within the process. Tests may supply their
/// own generator for reproducible ids.
pub trait IdGenerator: Send + Sync {
    /// Returns a new, never before returned UUID whose leading 48 bits are `at` in Unix
    /// milliseconds, so that ids sort by creation time.
    fn generate(&self, at: OffsetDateTime) -> Uuid;
}

/// UUIDv7 ids from the system's randomness, strictly increasing within this process.
///
/// The randomness is read from the operating system 640 bytes at a time and used up ten
/// bytes an id: one `getrandom` call for 64 ids, not one for each (a
/// request makes four: its own id and its events'). The unread bytes stay in this value
/// alone and never show in its `Debug`.
#[derive(Default)]
pub struct RandomIds {
    state: Mutex<RandomState>,
}

/// How many bytes of the system's randomness a [`RandomIds`] reads at a time.
const RANDOM_AHEAD: usize = 640;

/// The last id a [`RandomIds`] gave and the randomness it has read but not used.
struct RandomState {
    last: u128,
    ahead: [u8; RANDOM_AHEAD],
    /// How many bytes of `ahead` are used (all of them until the first read).
    used: usize,
}

impl Default for RandomState {
    fn default() -> Self {
        Self {
            last: 0,
            ahead: [0; RANDOM_AHEAD],
            used: RANDOM_AHEAD,
        }
    }
}

impl RandomState {
    /// The next ten bytes of the system's randomness.
    fn take(&mut self) -> [u8; 10] {
        if self.used + 10 > RANDOM_AHEAD {
            // The operating system's generator does not fail on supported platforms; if
            // it ever did, the monotonic counter of `generate` still keeps ids unique in
            // this process (and the bytes left are the last ones read, not zeros).
            let _ = getrandom::fill(&mut self.ahead);
            self.used = 0;
        }
        let mut random = [0u8; 10];
        random.copy_from_slice(&self.ahead[self.used..self.used + 10]);
        // Used bytes are wiped: what is left in memory is only what no id has taken.
        self.ahead[self.used..self.used + 10].fill(0);
        self.used += 10;
        random
    }
}

impl fmt::Debug for RandomIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The randomness read ahead would tell the next ids: never printed.
        f.debug_struct("RandomIds").finish_non_exhaustive()
    }
}

impl IdGenerator for RandomIds {
    fn generate(&self, at: OffsetDateTime) -> Uuid {
        let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let random = state.take();
        let fresh = uuid::Builder::from_unix_timestamp_millis(millis, &random)
            .into_uuid()
            .as_u128();
        // Within one millisecond random bits would sort arbitrarily; step past the last
        // id instead, by a random amount so that the next id cannot be guessed from one
        // seen (RFC 9562, section 6.2, method 2, with a random increment).
        let step = 1 + u128::from(u32::from_le_bytes([random[0], random[1], random[2], random[3]]));
        let value = if fresh > state.last {
            fresh
        } else {
            state.last.checked_add(step).unwrap_or(fresh)
        };
        state.last = value;
        Uuid::from_u128(value)
    }
}

/// Reproducible ids for tests: the given time, then a counter instead of randomness.
#[derive(Debug, Default)]
pub struct SequentialIds {
    counter: Mutex<u64>,
}

impl IdGenerator for SequentialIds {
    fn generate(&self, at: OffsetDateTime) -> Uuid {
        let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let mut counter = self.counter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counter += 1;
        let mut bytes = [0u8; 10];
        bytes[2..].copy_from_slice(&counter.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }
}

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Encodes 128 bits as 26 Crockford base32 characters (the first carries two zero bits).
fn encode(value: u128) -> [u8; 26] {
    let mut out = [0u8; 26];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (25 - i);
        *slot = ALPHABET[((value >> shift) & 0x1f) as usize];
    }
    out
}

/// The longest prefix of an id kind.
const MAX_PREFIX: usize = 3;

/// An id's string form (`prefix_` and 26 characters), held on the stack.
struct IdText {
    bytes: [u8; MAX_PREFIX + 1 + 26],
    len: usize,
}

impl IdText {
    fn new(prefix: &'static str, value: u128) -> Self {
        let mut bytes = [0u8; MAX_PREFIX + 1 + 26];
        // Every prefix is a literal of at most `MAX_PREFIX` bytes (asserted at compile time).
        let prefix = &prefix.as_bytes()[..prefix.len().min(MAX_PREFIX)];
        bytes[..prefix.len()].copy_from_slice(prefix);
        bytes[prefix.len()] = b'_';
        bytes[prefix.len() + 1..prefix.len() + 27].copy_from_slice(&encode(value));
        Self {
            bytes,
            len: prefix.len() + 27,
        }
    }

    /// The text; the prefix and the alphabet are ASCII, so this never fails.
    fn as_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.bytes[..self.len])
    }
}

fn decode_char(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).and_then(|p| u8::try_from(p).ok())
}

/// Decodes 26 lowercase Crockford base32 characters into 128 bits.
fn decode(text: &str) -> Result<u128, &'static str> {
    let bytes = text.as_bytes();
    if bytes.len() != 26 {
        return Err("the suffix must be 26 characters");
    }
    let first = decode_char(bytes[0]).ok_or("the suffix holds a character outside base32")?;
    if first > 7 {
        return Err("the suffix is out of range");
    }
    let mut value: u128 = 0;
    for &b in bytes {
        let digit = decode_char(b).ok_or("the suffix holds a character outside base32")?;
        value = (value << 5) | u128::from(digit);
    }
    Ok(value)
}

/// Parses `prefix_suffix` into the UUID it holds.
fn parse_prefixed(input: &str, prefix: &'static str) -> Result<Uuid, ParseIdError> {
    let fail = |reason| ParseIdError {
        expected: prefix,
        input: input.chars().take(64).collect(),
        reason,
    };
    let (found, suffix) = input.split_once('_').ok_or_else(|| fail("it has no `_` separator"))?;
    if found != prefix {
        return Err(fail("the prefix names another kind of id"));
    }
    decode(suffix).map(Uuid::from_u128).map_err(fail)
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix of this id's string form.
            pub const PREFIX: &'static str = $prefix;

            /// A new id made by `ids` at time `at`.
            pub fn generate(ids: &dyn IdGenerator, at: OffsetDateTime) -> Self {
                Self(ids.generate(at))
            }

            /// Wraps a UUID read back from storage.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID behind this id, for storage.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        const _: () = assert!($prefix.len() <= MAX_PREFIX, "an id prefix is at most MAX_PREFIX bytes");

        impl $name {
            /// The string form, written on the stack.
            fn text(&self) -> IdText {
                IdText::new($prefix, self.0.as_u128())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.text().as_str().map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_prefixed(s, $prefix).map(Self)
            }
        }

        impl Serialize for $name {
            /// The string form, handed over whole: no intermediate `String` (an id is
            /// serialized into every diagnostic event's detail).
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.text().as_str().map_err(serde::ser::Error::custom)?)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// An organization: the tenant, and the domain of every permission inside it.
    OrgId,
    "org"
);
typed_id!(
    /// A person who signs in.
    UserId,
    "usr"
);
typed_id!(
    /// An invitation to join an organization.
    InvitationId,
    "inv"
);
typed_id!(
    /// A workflow instance: a support case, a return, a quote approval.
    WorkflowId,
    "wf"
);
typed_id!(
    /// One request to the host service; every diagnostic event carries it.
    RequestId,
    "req"
);
typed_id!(
    /// An API key owned by an organization.
    ApiKeyId,
    "key"
);
typed_id!(
    /// A signed-in session.
    SessionId,
    "ses"
);
typed_id!(
    /// A group an org's directory provisions through SCIM.
    GroupId,
    "grp"
);
typed_id!(
    /// One recorded diagnostic event.
    EventId,
    "evt"
);
typed_id!(
    /// One event of an organization's customer audit log (and the transactional outbox).
    AuditEventId,
    "aud"
);
typed_id!(
    /// A support access grant: time-bound access of vendor staff to a customer org.
    GrantId,
    "sag"
);
typed_id!(
    /// A webhook endpoint of an organization.
    WebhookEndpointId,
    "whk"
);
typed_id!(
    /// A webhook message: the `webhook-id` of every delivery of one audit event, the same
    /// UUID as the event's [`AuditEventId`].
    WebhookMessageId,
    "msg"
);
typed_id!(
    /// One delivery attempt of a webhook message to an endpoint.
    WebhookAttemptId,
    "wha"
);
typed_id!(
    /// A passkey (WebAuthn credential) a user registered.
    PasskeyId,
    "pky"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(millis: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap()
    }

    #[test]
    fn string_form_names_the_kind() {
        let id = OrgId::generate(&RandomIds::default(), OffsetDateTime::now_utc());
        let text = id.to_string();
        assert!(text.starts_with("org_"), "{text}");
        assert_eq!(text.len(), 4 + 26);
    }

    #[test]
    fn every_kind_serializes_as_its_string_form_and_back() {
        fn check<T: fmt::Display + Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug>(id: T) {
            let text = id.to_string();
            assert_eq!(
                serde_json::to_value(&id).unwrap(),
                serde_json::Value::String(text.clone())
            );
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<T>(&format!("\"{text}\"")).unwrap(), id);
        }
        let (ids, now) = (RandomIds::default(), OffsetDateTime::now_utc());
        check(OrgId::generate(&ids, now));
        check(UserId::generate(&ids, now));
        check(InvitationId::generate(&ids, now));
        check(WorkflowId::generate(&ids, now));
        check(RequestId::generate(&ids, now));
        check(ApiKeyId::generate(&ids, now));
        check(SessionId::generate(&ids, now));
        check(EventId::generate(&ids, now));
        check(GrantId::generate(&ids, now));
        assert_eq!(
            OrgId::from_uuid(Uuid::from_u128(0)).to_string(),
            "org_00000000000000000000000000"
        );
        assert_eq!(
            UserId::from_uuid(Uuid::from_u128(u128::MAX)).to_string(),
            "usr_7zzzzzzzzzzzzzzzzzzzzzzzzz"
        );
    }

    #[test]
    fn random_ids_read_ahead_stay_random_unique_and_unprinted() {
        let ids = RandomIds::default();
        // Across several reads of the system's randomness (64 ids each), ids in different
        // milliseconds carry their time and fresh random bits, and none repeats.
        let mut seen = std::collections::HashSet::new();
        let mut randoms = std::collections::HashSet::new();
        for i in 0..300 {
            let id = ids.generate(at(1_700_000_000_000 + i));
            assert!(seen.insert(id), "id {i} repeated");
            let bits = id.as_u128() & ((1 << 74) - 1);
            assert!(randoms.insert(bits), "id {i} reused random bits");
            assert_eq!(id.as_u128() >> 80, u128::try_from(1_700_000_000_000 + i).unwrap());
        }
        // Within one millisecond they still strictly increase.
        let mut last = Uuid::nil();
        for _ in 0..300 {
            let id = ids.generate(at(1_800_000_000_000));
            assert!(id > last);
            last = id;
        }
        // The bytes read ahead tell the next ids: Debug shows none of them.
        assert_eq!(format!("{ids:?}"), "RandomIds { .. }");
    }

    #[test]
    fn parsing_another_kind_of_id_fails_with_the_expected_kind() {
        let user = UserId::generate(&RandomIds::default(), OffsetDateTime::now_utc());
        let err = user.to_string().parse::<OrgId>().unwrap_err();
        assert_eq!(err.expected, "org");
        assert_eq!(err.reason, "the prefix names another kind of id");
    }

    #[test]
    fn malformed_suffixes_are_rejected() {
        for bad in [
            "org",
            "org_",
            "org_0000000000000000000000000",   // 25 characters
            "org_000000000000000000000000000", // 27 characters
            "org_8zzzzzzzzzzzzzzzzzzzzzzzzz",  // above 128 bits
            "org_0000000000000000000000000u",  // `u` is not in the alphabet
            "org_0000000000000000000000000A",  // upper case is not the canonical form
            "ORG_00000000000000000000000000",
        ] {
            assert!(bad.parse::<OrgId>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn ids_made_later_sort_later_even_within_one_millisecond() {
        let ids = RandomIds::default();
        let now = at(1_700_000_000_000);
        let mut previous = OrgId::generate(&ids, now);
        for _ in 0..1000 {
            let next = OrgId::generate(&ids, now);
            assert!(next > previous);
            assert!(next.to_string() > previous.to_string());
            previous = next;
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = WorkflowId::generate(&SequentialIds::default(), at(5));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: WorkflowId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<OrgId>(&json).is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(raw in any::<u128>()) {
            let id = OrgId::from_uuid(Uuid::from_u128(raw));
            let parsed: OrgId = id.to_string().parse().unwrap();
            prop_assert_eq!(parsed, id);
        }

        #[test]
        fn string_order_equals_value_order(a in any::<u128>(), b in any::<u128>()) {
            let (x, y) = (UserId::from_uuid(Uuid::from_u128(a)), UserId::from_uuid(Uuid::from_u128(b)));
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
        }

        #[test]
        fn ids_sort_by_creation_time(t1 in 0i64..4_000_000_000_000, t2 in 0i64..4_000_000_000_000) {
            // Separate generators: one generator also keeps ids increasing when its
            // clock goes backwards, which is tested above.
            let a = OrgId::generate(&RandomIds::default(), at(t1));
            let b = OrgId::generate(&RandomIds::default(), at(t2));
            if t1 < t2 { prop_assert!(a < b); }
            if t1 > t2 { prop_assert!(a > b); }
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = text.parse::<OrgId>();
        }
    }
}
