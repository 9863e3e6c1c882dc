//! The compiled index: one immutable [`DomainIndex`] per domain, in a [`Snapshot`] that
//! checks read without locks and changes replace copy-on-write.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use smallvec::SmallVec;

/// The hasher of the writer's sets: foldhash (seeded per process), faster than SipHash on
/// the short names a policy holds.
pub(crate) type FastHash = foldhash::fast::RandomState;

use portal_core::OrgId;
use portal_core::access::{Domain, Effect, Name, PolicyLine, PolicyRule, Revision};

use super::PolicyError;
use super::pattern::{self, CompiledPattern, ObjectPattern};
use super::validate::MAX_INHERITANCE_DEPTH;

/// A permission rule as text: subject, object, action (`*` for any), effect (0 allow, 1 deny).
pub(crate) type RawRule<'l> = (&'l str, &'l str, &'l str, u8);

/// An inheritance edge as text: role, parent.
pub(crate) type RawEdge<'l> = (&'l str, &'l str);

/// `*`, the object or action of a rule for any: a constant name, so that a decision naming
/// it allocates nothing and counts no reference.
pub(crate) const ANY: Name = Name::from_static("*");

/// A line as the text the index compiles.
pub(crate) fn raw(line: &PolicyLine) -> Result<RawRule<'_>, RawEdge<'_>> {
    match line {
        PolicyLine::Permission(rule) => Ok((
            &rule.subject,
            &rule.object,
            &rule.action,
            match rule.effect {
                Effect::Allow => 0,
                Effect::Deny => 1,
            },
        )),
        PolicyLine::Inherit { role, parent, .. } => Err((role, parent)),
    }
}

/// One permission rule, decoded from its word in the table. Its subject is a role id of
/// the domain it belongs to; its action is the index of a name (`None` for `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) subject: u32,
    action: Option<u32>,
    pub(crate) effect: Effect,
}

impl Rule {
    const DENY: u64 = 1 << 63;
    const ACTION_MASK: u64 = (1 << 31) - 1;

    /// The rule as one table word: subject in the low half, then the action's name index
    /// plus one (0 for `*`) in 31 bits, then the effect in the top bit.
    fn encode(self) -> u64 {
        let action = self.action.map_or(0, |a| u64::from(a) + 1);
        let deny = if self.effect == Effect::Deny { Self::DENY } else { 0 };
        u64::from(self.subject) | (action << 32) | deny
    }

    #[inline]
    fn decode(word: u64) -> Self {
        let action = (word >> 32) & Self::ACTION_MASK;
        Self {
            subject: word as u32,
            action: (action != 0).then(|| action as u32 - 1),
            effect: if word & Self::DENY != 0 {
                Effect::Deny
            } else {
                Effect::Allow
            },
        }
    }
}

/// The compiled policy of one domain, in two allocations a check reads from start to end:
/// the domain's names and a table of words.
///
/// `names` holds, each section sorted, the role names (a role's id is its position), the
/// exact objects, the objects of patterns (in `patterns` order) and the actions rules
/// name. The strings are interned across domains, so a comparison reads shared text.
///
/// `table` holds, for each role, the first word of its reach row and its parents range;
/// for each exact object the range of its rules; the rules, sorted by (object, subject,
/// action, effect), one word each (see [`Rule::encode`]); the parents; and, when a domain
/// has more than 64 roles, the full reach rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct DomainIndex {
    names: Arc<[Arc<str>]>,
    table: Arc<[u64]>,
    /// Object patterns (interned across domains), each with the range of its rules.
    patterns: Arc<[(Arc<CompiledPattern>, Range)]>,
    layout: Layout,
}

/// Where each section starts in `names` and `table`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Layout {
    roles: u32,
    exact: u32,
    actions: u32,
    rules: u32,
    parents: u32,
    /// Words of one reach row.
    words: u32,
    /// The range of the rules whose object is `*`.
    any: Range,
}

impl Layout {
    // Sections of `names`.
    fn role_names(&self) -> std::ops::Range<usize> {
        0..self.roles as usize
    }
    fn exact_names(&self) -> std::ops::Range<usize> {
        self.roles as usize..(self.roles + self.exact) as usize
    }
    fn pattern_names(&self, patterns: usize) -> std::ops::Range<usize> {
        let start = (self.roles + self.exact) as usize;
        start..start + patterns
    }
    fn action_names(&self, patterns: usize) -> std::ops::Range<usize> {
        let start = (self.roles + self.exact) as usize + patterns;
        start..start + self.actions as usize
    }

    // Sections of `table`: two words per role, one per exact object, one per rule, one
    // per parent, then the reach rows.
    fn role_words(&self, id: u32) -> usize {
        2 * id as usize
    }
    fn exact_word(&self, i: usize) -> usize {
        2 * self.roles as usize + i
    }
    fn rule_word(&self, id: u32) -> usize {
        2 * self.roles as usize + self.exact as usize + id as usize
    }
    fn parent_words(&self) -> usize {
        self.rule_word(self.rules)
    }
    fn reach_words(&self) -> usize {
        self.parent_words() + self.parents as usize
    }
    /// The search keys of the names (see [`key_of`]), one word per name, in `names` order.
    fn key_words(&self) -> usize {
        self.reach_words()
            + if self.words > 1 {
                self.roles as usize * self.words as usize
            } else {
                0
            }
    }
}

/// Marks a key whose text is longer than the seven bytes it holds.
const LONG: u64 = 0xFF;

/// A name's search key: its first seven bytes (zero-padded, big-endian) and then its length,
/// or [`LONG`] for longer names. Keys sort as the names do, so a binary search over the
/// keys (contiguous words in the table) finds a name without reading its text, and equal
/// keys of names up to seven bytes mean equal names; only longer names are compared as
/// text to confirm.
#[inline]
pub(crate) fn key_of(text: &str) -> u64 {
    let bytes = text.as_bytes();
    if let Some(head) = bytes.first_chunk::<8>() {
        return (u64::from_be_bytes(*head) & !0xFF) | LONG;
    }
    // Seven bytes or fewer: shifted in, then moved to the top, the length in the last byte.
    let mut key = 0u64;
    for &b in bytes {
        key = (key << 8) | u64::from(b);
    }
    if bytes.is_empty() {
        0
    } else {
        (key << (8 * (8 - bytes.len()))) | bytes.len() as u64
    }
}

/// A range of ids, `start..end`.
type Range = (u32, u32);

/// A name with its search key ([`key_of`]): ordered by the key, and by the text only when
/// both keys say "longer than seven bytes" and are equal. The order is the text's.
#[derive(Debug, Clone, Copy)]
struct Keyed<'l> {
    key: u64,
    text: &'l str,
}

impl<'l> Keyed<'l> {
    #[inline]
    fn new(text: &'l str) -> Self {
        Self {
            key: key_of(text),
            text,
        }
    }

    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match self.key.cmp(&other.key) {
            std::cmp::Ordering::Equal if self.key & LONG == LONG => self.text.cmp(other.text),
            order => order,
        }
    }
}

/// A rule as text, with its names' search keys.
#[derive(Debug, Clone, Copy)]
struct KeyedRule<'l> {
    object: Keyed<'l>,
    subject: Keyed<'l>,
    action: Keyed<'l>,
    effect: u8,
}

impl<'l> KeyedRule<'l> {
    #[inline]
    fn new((subject, object, action, effect): RawRule<'l>) -> Self {
        Self {
            object: Keyed::new(object),
            subject: Keyed::new(subject),
            action: Keyed::new(action),
            effect,
        }
    }

    /// By object, subject, action, effect: the table's order of rules.
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.object
            .cmp(&other.object)
            .then_with(|| self.subject.cmp(&other.subject))
            .then_with(|| self.action.cmp(&other.action))
            .then(self.effect.cmp(&other.effect))
    }
}

/// An inheritance edge as text, with its names' search keys.
#[derive(Debug, Clone, Copy)]
struct KeyedEdge<'l> {
    role: Keyed<'l>,
    parent: Keyed<'l>,
}

impl<'l> KeyedEdge<'l> {
    #[inline]
    fn new((role, parent): RawEdge<'l>) -> Self {
        Self {
            role: Keyed::new(role),
            parent: Keyed::new(parent),
        }
    }

    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.role.cmp(&other.role).then_with(|| self.parent.cmp(&other.parent))
    }
}

/// The inheritance graph being compiled: each role's direct parents, a range of `parents`.
#[derive(Debug, Clone, Copy)]
struct Graph<'g> {
    ranges: &'g [Range],
    parents: &'g [u32],
}

impl Graph<'_> {
    fn len(&self) -> usize {
        self.ranges.len()
    }

    #[inline]
    fn of(&self, role: u32) -> &[u32] {
        let (start, end) = self.ranges.get(role as usize).copied().unwrap_or((0, 0));
        &self.parents[start as usize..end as usize]
    }
}

/// The lines one change removes from and adds to one domain, as text.
#[derive(Debug, Default)]
pub(crate) struct Pending<'l> {
    pub(crate) removed_rules: Vec<RawRule<'l>>,
    pub(crate) removed_edges: Vec<RawEdge<'l>>,
    pub(crate) added_rules: Vec<RawRule<'l>>,
    pub(crate) added_edges: Vec<RawEdge<'l>>,
}

/// `items`, sorted by `cmp`.
fn sorted_keyed<T, const N: usize>(
    items: impl Iterator<Item = T>,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> SmallVec<[T; N]>
where
    [T; N]: smallvec::Array<Item = T>,
{
    let mut out: SmallVec<[T; N]> = items.collect();
    out.sort_unstable_by(cmp);
    out
}

/// The distinct names of `names`, sorted. A domain names a few roles and actions many
/// times over, so names are inserted one by one into the sorted result while it holds
/// fewer than 64; past that the rest are pushed, and the whole sorted and deduplicated (a
/// domain with thousands of roles stays `n log n`).
fn distinct<'l, const N: usize>(names: impl Iterator<Item = Keyed<'l>>) -> SmallVec<[Keyed<'l>; N]>
where
    [Keyed<'l>; N]: smallvec::Array<Item = Keyed<'l>>,
{
    let mut out: SmallVec<[Keyed<'l>; N]> = SmallVec::new();
    let mut in_order = true;
    for name in names {
        if !in_order {
            out.push(name);
        } else if let Err(at) = out.binary_search_by(|n| n.cmp(&name)) {
            if out.len() < 64 {
                out.insert(at, name);
            } else {
                out.push(name);
                in_order = false;
            }
        }
    }
    if !in_order {
        out.sort_unstable_by(Keyed::cmp);
        out.dedup_by(|a, b| a.cmp(b).is_eq());
    }
    out
}

/// Adds `added` to `v`, which holds a base's items in order, each once: moved into place
/// ([`sort_after`]), duplicates counted once.
fn add_sorted<T, const N: usize>(
    v: &mut SmallVec<[T; N]>,
    added: impl Iterator<Item = T>,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) where
    [T; N]: smallvec::Array<Item = T>,
{
    let kept = v.len();
    v.extend(added);
    sort_after(v, kept, &cmp);
    v.dedup_by(|a, b| cmp(a, b).is_eq());
}

/// Sorts `v`, whose first `sorted` elements are in order already: a few more are moved
/// into place one by one (a change of a line or two), many are sorted with the rest.
pub(crate) fn sort_after<T>(v: &mut [T], sorted: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    let extra = v.len() - sorted;
    if extra == 0 {
        return;
    }
    if extra > 8 {
        v.sort_unstable_by(cmp);
        return;
    }
    for i in sorted..v.len() {
        let at = v[..i].partition_point(|x| cmp(x, &v[i]).is_le());
        v[at..=i].rotate_right(1);
    }
}

/// A compiled index before it is shared: [`Interner::share`] hands out an equal index
/// another domain holds, or makes this one.
#[derive(Debug)]
struct Parts {
    names: Vec<Arc<str>>,
    table: Vec<u64>,
    patterns: Vec<(Arc<CompiledPattern>, Range)>,
    layout: Layout,
}

impl Parts {
    /// A hash of what the index holds: its table and its names. Names are interned, so
    /// equal names are one allocation while any index holds them, and their addresses
    /// stand for their text (the table's search keys alone would not: long names that
    /// share their first seven bytes, `archive/1` and `archive/2`, have equal keys).
    fn content_hash(&self) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut hasher = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
        self.table.hash(&mut hasher);
        for name in &self.names {
            Arc::as_ptr(name).cast::<u8>().hash(&mut hasher);
        }
        for (pattern, _) in &self.patterns {
            Arc::as_ptr(pattern).hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Whether `index` holds the same names, table, patterns and layout, so that it
    /// decides every request as these parts would.
    fn same_as(&self, index: &DomainIndex) -> bool {
        self.layout == index.layout
            && *self.table == *index.table
            && self.names.len() == index.names.len()
            && self
                .names
                .iter()
                .zip(index.names.iter())
                .all(|(a, b)| Arc::ptr_eq(a, b))
            && self.patterns.len() == index.patterns.len()
            && self
                .patterns
                .iter()
                .zip(index.patterns.iter())
                .all(|((a, ra), (b, rb))| ra == rb && Arc::ptr_eq(a, b))
    }

    fn into_index(self) -> DomainIndex {
        DomainIndex {
            names: self.names.into(),
            table: self.table.into(),
            patterns: self.patterns.into(),
            layout: self.layout,
        }
    }
}

fn pack((start, end): Range) -> u64 {
    u64::from(start) | (u64::from(end) << 32)
}

#[inline]
fn unpack(word: u64) -> Range {
    (word as u32, (word >> 32) as u32)
}

/// Strings and patterns shared by every domain's index, so that `orders` and `cases/*`
/// are stored once for ten thousand orgs; and whole compiled indexes, shared by every
/// domain whose policy compiles to the same one. Only writers use it.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    set: HashSet<Arc<str>, FastHash>,
    patterns: HashMap<Arc<str>, Arc<CompiledPattern>, FastHash>,
    /// Compiled indexes by [`DomainIndex::content_hash`], each bucket holding distinct
    /// indexes (equal hashes are confirmed by comparing the contents).
    indexes: HashMap<u64, Vec<DomainIndex>, FastHash>,
    size_after_prune: usize,
    indexes_after_prune: usize,
}

impl Interner {
    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(found) = self.set.get(text) {
            return Arc::clone(found);
        }
        let fresh: Arc<str> = Arc::from(text);
        self.set.insert(Arc::clone(&fresh));
        fresh
    }

    fn pattern(&mut self, text: &Arc<str>, compiled: CompiledPattern) -> Arc<CompiledPattern> {
        Arc::clone(
            self.patterns
                .entry(Arc::clone(text))
                .or_insert_with(|| Arc::new(compiled)),
        )
    }

    /// The index equal to `parts` that another domain already uses, or a new one made
    /// of them, kept for the next domain that compiles to the same. Domains with the same
    /// policy (orgs provisioned from one template, say) then share one table and one list
    /// of names, which a check reads from cache instead of from memory, whichever org it
    /// is for. The index holds nothing of its domain, so sharing it cannot leak one org's
    /// policy into another's: equal contents decide equally. An index found is not
    /// allocated again: the parts are compared as they are.
    fn share(&mut self, parts: Parts) -> DomainIndex {
        let bucket = self.indexes.entry(parts.content_hash()).or_default();
        if let Some(known) = bucket.iter().find(|known| parts.same_as(known)) {
            return known.clone();
        }
        let fresh = parts.into_index();
        bucket.push(fresh.clone());
        fresh
    }

    /// Forgets strings and patterns no index holds any more, once the set has doubled
    /// since the last time; and the same for the shared indexes.
    pub(crate) fn prune(&mut self) {
        let shared = self.indexes.len();
        if shared > 1024 && shared > 2 * self.indexes_after_prune {
            self.indexes.retain(|_, bucket| {
                bucket.retain(|index| Arc::strong_count(&index.table) > 1);
                !bucket.is_empty()
            });
            self.indexes_after_prune = self.indexes.len();
        }
        if self.set.len() > 1024 && self.set.len() > 2 * self.size_after_prune {
            self.patterns.retain(|_, p| Arc::strong_count(p) > 1);
            self.set.retain(|s| Arc::strong_count(s) > 1);
            self.size_after_prune = self.set.len();
        }
    }
}

impl DomainIndex {
    /// Compiles the rules and inheritance edges of `domain`, which the caller validated.
    /// Duplicates count once and order does not matter.
    ///
    /// Names are sorted and searched by their search keys ([`key_of`]), so compiling
    /// compares words and reads text only for long names that share their first seven
    /// bytes; the working lists live on the stack for domains of ordinary size.
    ///
    /// # Errors
    ///
    /// [`PolicyError::InheritanceCycle`] and [`PolicyError::InheritanceTooDeep`] for role
    /// inheritance that is circular or deeper than [`MAX_INHERITANCE_DEPTH`].
    pub(crate) fn compile<'l>(
        domain: Domain,
        base: &'l DomainIndex,
        pending: &Pending<'l>,
        interner: &mut Interner,
    ) -> Result<Self, PolicyError> {
        // Rules sorted by (object, subject, action, effect), so that the rules of one
        // object are one range; duplicates count once. The base's rules come sorted, with
        // their keys read from its table; only the added ones are sorted in.
        let removed: SmallVec<[KeyedRule<'l>; 8]> =
            sorted_keyed(pending.removed_rules.iter().map(|r| KeyedRule::new(*r)), KeyedRule::cmp);
        let mut sorted: SmallVec<[KeyedRule<'l>; 32]> =
            SmallVec::with_capacity(base.layout.rules as usize + pending.added_rules.len());
        base.keyed_rules(&removed, &mut sorted);
        add_sorted(
            &mut sorted,
            pending.added_rules.iter().map(|r| KeyedRule::new(*r)),
            KeyedRule::cmp,
        );
        // Edges sorted by (role, parent): a role's parents are then one run.
        let removed: SmallVec<[KeyedEdge<'l>; 8]> =
            sorted_keyed(pending.removed_edges.iter().map(|e| KeyedEdge::new(*e)), KeyedEdge::cmp);
        let mut edges: SmallVec<[KeyedEdge<'l>; 16]> = SmallVec::new();
        base.keyed_edges(&removed, &mut edges);
        add_sorted(
            &mut edges,
            pending.added_edges.iter().map(|e| KeyedEdge::new(*e)),
            KeyedEdge::cmp,
        );
        // The distinct role names and actions, sorted.
        let roles: SmallVec<[Keyed<'l>; 32]> = distinct(
            sorted
                .iter()
                .map(|r| r.subject)
                .chain(edges.iter().flat_map(|e| [e.role, e.parent])),
        );
        let actions: SmallVec<[Keyed<'l>; 16]> = distinct(sorted.iter().map(|r| r.action).filter(|a| a.text != "*"));
        // Every name was collected above, so the searches always find it.
        let role_id =
            |name: &Keyed<'_>| -> u32 { roles.binary_search_by(|r| r.cmp(name)).map_or(u32::MAX, |i| i as u32) };
        let action_id = |name: &Keyed<'_>| -> Option<u32> {
            (name.text != "*").then(|| actions.binary_search_by(|a| a.cmp(name)).map_or(u32::MAX, |i| i as u32))
        };
        // Each role's parents, as a range of `parents`: the edges are sorted by role, and
        // role ids follow the same order.
        let mut parent_ranges: SmallVec<[Range; 32]> = smallvec::smallvec![(0, 0); roles.len()];
        let mut parents: SmallVec<[u32; 16]> = SmallVec::with_capacity(edges.len());
        for (i, edge) in edges.iter().enumerate() {
            let role = role_id(&edge.role) as usize;
            if let Some(range) = parent_ranges.get_mut(role) {
                if range.1 == 0 {
                    range.0 = i as u32;
                }
                range.1 = i as u32 + 1;
            }
            parents.push(role_id(&edge.parent));
        }
        let graph = Graph {
            ranges: &parent_ranges,
            parents: &parents,
        };
        check_depth(domain, &roles, graph)?;
        let words = roles.len().div_ceil(64);
        let mut reach: SmallVec<[u64; 32]> = smallvec::smallvec![0; words * roles.len()];
        let mut stack: SmallVec<[u32; 32]> = SmallVec::new();
        for start in 0..roles.len() {
            let row = &mut reach[start * words..(start + 1) * words];
            stack.clear();
            stack.push(start as u32);
            while let Some(role) = stack.pop() {
                let (word, bit) = (role as usize / 64, role % 64);
                if row[word] & (1 << bit) != 0 {
                    continue;
                }
                row[word] |= 1 << bit;
                stack.extend_from_slice(graph.of(role));
            }
        }

        let mut rule_words: SmallVec<[u64; 32]> = SmallVec::with_capacity(sorted.len());
        let mut exact: SmallVec<[(Keyed<'l>, Range); 16]> = SmallVec::new();
        let mut any: Range = (0, 0);
        let mut patterns: Vec<(Arc<str>, Arc<CompiledPattern>, Range)> = Vec::new();
        let mut start = 0;
        while start < sorted.len() {
            let object = sorted[start].object;
            let end = start
                + sorted[start..]
                    .iter()
                    .take_while(|r| r.object.cmp(&object).is_eq())
                    .count();
            let range = (start as u32, end as u32);
            match pattern::compile(object.text) {
                Ok(ObjectPattern::Any) => any = range,
                Ok(ObjectPattern::Exact) => exact.push((object, range)),
                Ok(ObjectPattern::Pattern(compiled)) => {
                    let text = interner.intern(object.text);
                    let compiled = interner.pattern(&text, compiled);
                    patterns.push((text, compiled, range));
                }
                // Validation compiled the object already; this arm is never taken.
                Err(reason) => return Err(PolicyError::invalid_text(object.text, reason)),
            }
            for rule in &sorted[start..end] {
                let encoded = Rule {
                    subject: role_id(&rule.subject),
                    action: action_id(&rule.action),
                    effect: if rule.effect == 0 { Effect::Allow } else { Effect::Deny },
                };
                rule_words.push(encoded.encode());
            }
            start = end;
        }

        let layout = Layout {
            roles: roles.len() as u32,
            exact: exact.len() as u32,
            actions: actions.len() as u32,
            rules: rule_words.len() as u32,
            parents: parents.len() as u32,
            words: words as u32,
            any,
        };
        let name_count = roles.len() + exact.len() + patterns.len() + actions.len();
        let mut names: Vec<Arc<str>> = Vec::with_capacity(name_count);
        names.extend(roles.iter().map(|r| interner.intern(r.text)));
        names.extend(exact.iter().map(|(o, _)| interner.intern(o.text)));
        names.extend(patterns.iter().map(|(text, _, _)| Arc::clone(text)));
        names.extend(actions.iter().map(|a| interner.intern(a.text)));
        let mut table: Vec<u64> =
            Vec::with_capacity(layout.reach_words() + if words > 1 { reach.len() } else { 0 } + name_count);
        for (i, range) in parent_ranges.iter().enumerate() {
            table.push(reach.get(i * words).copied().unwrap_or(0));
            table.push(pack(*range));
        }
        table.extend(exact.iter().map(|(_, range)| pack(*range)));
        table.extend(rule_words);
        table.extend(parents.iter().map(|p| u64::from(*p)));
        if words > 1 {
            table.extend(reach);
        }
        table.extend(roles.iter().map(|r| r.key));
        table.extend(exact.iter().map(|(o, _)| o.key));
        table.extend(patterns.iter().map(|(text, _, _)| key_of(text)));
        table.extend(actions.iter().map(|a| a.key));
        Ok(interner.share(Parts {
            names,
            table,
            patterns: patterns
                .into_iter()
                .map(|(_, compiled, range)| (compiled, range))
                .collect(),
            layout,
        }))
    }

    /// Whether this index and `other` are one shared index (see [`Interner::share`]).
    #[cfg(test)]
    pub(crate) fn shares_table_with(&self, other: &DomainIndex) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }

    /// The number of roles.
    fn role_count(&self) -> u32 {
        self.layout.roles
    }

    /// The position in `names` of a rule's action, `None` for `*`.
    fn action_at(&self, rule: &Rule) -> Option<usize> {
        rule.action
            .map(|a| self.layout.action_names(self.patterns.len()).start + a as usize)
    }

    /// The position in `names` of the object of rule `id`, found from the section its range
    /// lies in; `None` for `*`.
    fn object_at(&self, id: u32) -> Option<usize> {
        let inside = |(start, end): Range| start <= id && id < end;
        if inside(self.layout.any) {
            return None;
        }
        for i in 0..self.layout.exact as usize {
            if inside(unpack(self.table[self.layout.exact_word(i)])) {
                return Some(self.layout.exact_names().start + i);
            }
        }
        for (i, (_, range)) in self.patterns.iter().enumerate() {
            if inside(*range) {
                return Some(self.layout.pattern_names(self.patterns.len()).start + i);
            }
        }
        // Every rule lies in one of the sections above.
        None
    }

    /// Name `i` of `names` (or `*` for `None`), shared: a reference count, no copy.
    #[inline]
    fn name(&self, i: Option<usize>) -> Name {
        match i {
            Some(i) => Name::from(Arc::clone(&self.names[i])),
            None => ANY,
        }
    }

    /// Pushes the rules, with their names' search keys, borrowed from the index, in the
    /// table's (sorted) order, to `out`, but for those in `removed` (sorted).
    fn keyed_rules<'i>(&'i self, removed: &[KeyedRule<'_>], out: &mut SmallVec<[KeyedRule<'i>; 32]>) {
        // The object sections (exact objects, `*`, patterns) as (rules, object), in the
        // order of their rules: each rule's object is then known without a search.
        let mut sections: SmallVec<[(Range, Keyed<'_>); 16]> = SmallVec::new();
        for i in 0..self.layout.exact as usize {
            let at = self.layout.exact_names().start + i;
            sections.push((unpack(self.table[self.layout.exact_word(i)]), self.keyed(at)));
        }
        sections.push((self.layout.any, Keyed::new("*")));
        let pattern_names = self.layout.pattern_names(self.patterns.len());
        for (i, (_, range)) in self.patterns.iter().enumerate() {
            sections.push((*range, self.keyed(pattern_names.start + i)));
        }
        sections.sort_unstable_by_key(|((start, _), _)| *start);
        // The names' keys, and where the actions' names start.
        let keys = &self.table[self.layout.key_words()..];
        let names = &self.names[..];
        let actions = self.layout.action_names(self.patterns.len()).start;
        let keyed = |i: usize| Keyed {
            key: keys[i],
            text: &names[i],
        };
        let any_action = Keyed::new("*");
        for ((start, end), object) in sections {
            for id in start..end {
                let rule = self.rule(id);
                let keyed = KeyedRule {
                    object,
                    subject: keyed(rule.subject as usize),
                    action: rule.action.map_or(any_action, |a| keyed(actions + a as usize)),
                    effect: match rule.effect {
                        Effect::Allow => 0,
                        Effect::Deny => 1,
                    },
                };
                if removed.binary_search_by(|x| x.cmp(&keyed)).is_err() {
                    out.push(keyed);
                }
            }
        }
    }

    /// Pushes the inheritance edges, with their names' search keys, in the table's (sorted)
    /// order, to `out`, but for those in `removed` (sorted).
    fn keyed_edges<'i>(&'i self, removed: &[KeyedEdge<'_>], out: &mut SmallVec<[KeyedEdge<'i>; 16]>) {
        for role in 0..self.role_count() {
            for parent in self.parents_of(role) {
                let edge = KeyedEdge {
                    role: self.keyed(role as usize),
                    parent: self.keyed(*parent as usize),
                };
                if removed.binary_search_by(|x| x.cmp(&edge)).is_err() {
                    out.push(edge);
                }
            }
        }
    }

    /// Name `i` of `names` with its search key from the table.
    #[inline]
    fn keyed(&self, i: usize) -> Keyed<'_> {
        Keyed {
            key: self.key(i),
            text: &self.names[i],
        }
    }

    /// The inheritance edges as text, borrowed from the index.
    fn raw_edges(&self) -> impl Iterator<Item = RawEdge<'_>> {
        (0..self.role_count()).flat_map(move |role| {
            self.parents_of(role)
                .iter()
                .map(move |parent| (self.role_name(role), self.role_name(*parent as u32)))
        })
    }

    /// The lines this index was compiled from, in its canonical order.
    pub(crate) fn lines(&self, domain: Domain) -> Vec<PolicyLine> {
        let mut out = Vec::with_capacity(self.len());
        for id in 0..self.layout.rules {
            out.push(PolicyLine::Permission(self.policy_rule(id, domain)));
        }
        for (role, parent) in self.raw_edges() {
            out.push(PolicyLine::Inherit {
                role: role.to_owned(),
                parent: parent.to_owned(),
                domain,
            });
        }
        out
    }

    /// How many lines the index holds.
    pub(crate) fn len(&self) -> usize {
        (self.layout.rules + self.layout.parents) as usize
    }

    /// Whether the index holds no line.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rule `id` as the policy line it came from, its names shared with the index.
    pub(crate) fn policy_rule(&self, id: u32, domain: Domain) -> PolicyRule {
        let rule = self.rule(id);
        PolicyRule {
            subject: self.name(Some(rule.subject as usize)),
            domain,
            object: self.name(self.object_at(id)),
            action: self.name(self.action_at(&rule)),
            effect: rule.effect,
        }
    }

    #[inline]
    pub(crate) fn rule(&self, id: u32) -> Rule {
        Rule::decode(self.table[self.layout.rule_word(id)])
    }

    pub(crate) fn role_name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// The roles `role` directly inherits from.
    fn parents_of(&self, role: u32) -> &[u64] {
        let (start, end) = unpack(self.table[self.layout.role_words(role) + 1]);
        let base = self.layout.parent_words();
        &self.table[base + start as usize..base + end as usize]
    }

    /// The reach row of role `id`.
    #[inline]
    fn row(&self, id: u32) -> &[u64] {
        if self.layout.words > 1 {
            let words = self.layout.words as usize;
            let start = self.layout.reach_words() + id as usize * words;
            &self.table[start..start + words]
        } else {
            let at = self.layout.role_words(id);
            &self.table[at..at + 1]
        }
    }

    /// The id of the role `name`, if a line of this domain names it.
    #[inline]
    pub(crate) fn role_id(&self, name: &str) -> Option<u32> {
        self.find(self.layout.role_names(), name, key_of(name))
    }

    /// The position of `text` (whose key is `key`) in the section `section` of `names`,
    /// found by its key; the text is read only to confirm a long name. A section of a few
    /// names (a domain's roles, actions or objects, usually) is scanned in order, which
    /// stops at the first key not below `key`; a longer one is searched by halves.
    #[inline]
    fn find(&self, section: std::ops::Range<usize>, text: &str, key: u64) -> Option<u32> {
        let base = self.layout.key_words();
        let keys = self.table.get(base + section.start..base + section.end)?;
        let mut i = if keys.len() <= 16 {
            keys.iter().position(|&k| k >= key).unwrap_or(keys.len())
        } else {
            keys.partition_point(|&k| k < key)
        };
        while keys.get(i) == Some(&key) {
            if key & LONG != LONG || *self.names[section.start + i] == *text {
                return Some(i as u32);
            }
            i += 1;
        }
        None
    }

    /// The search key of name `i` of `names`.
    #[inline]
    fn key(&self, i: usize) -> u64 {
        self.table[self.layout.key_words() + i]
    }

    /// Calls `visit` with every rule whose object and action match, until it breaks.
    #[inline]
    pub(crate) fn for_each_match(
        &self,
        object: &str,
        action: &str,
        mut visit: impl FnMut(u32, Rule) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.layout.rules == 0 {
            return ControlFlow::Continue(());
        }
        // The request's action as a name index: rules naming another action never match.
        let action = self.find(self.layout.action_names(self.patterns.len()), action, key_of(action));
        let mut each = |(start, end): Range| -> ControlFlow<()> {
            for id in start..end {
                let rule = self.rule(id);
                if rule.action.is_none() || rule.action == action {
                    visit(id, rule)?;
                }
            }
            ControlFlow::Continue(())
        };
        if let Some(i) = self.find(self.layout.exact_names(), object, key_of(object)) {
            each(unpack(self.table[self.layout.exact_word(i as usize)]))?;
        }
        each(self.layout.any)?;
        for (pattern, range) in self.patterns.iter() {
            if pattern.matches(object) {
                each(*range)?;
            }
        }
        ControlFlow::Continue(())
    }

    /// The roles reachable from the roles named `direct` (names this domain does not know
    /// reach only themselves).
    pub(crate) fn reach<'n, I>(&self, direct: I) -> Reach<'_, I>
    where
        I: Iterator<Item = &'n str> + Clone,
    {
        let mut bits = Bits::new(self.layout.words as usize);
        let mut held = SmallVec::new();
        for name in direct.clone() {
            if let Some(id) = self.role_id(name) {
                held.push(id);
                let row = self.row(id);
                for (w, r) in bits.words_mut().iter_mut().zip(row) {
                    *w |= r;
                }
            }
        }
        Reach {
            index: self,
            bits,
            held,
            direct,
        }
    }

    /// The shortest inheritance chain from one of the roles `held` (ids of this index, in
    /// the actor's order: [`Reach::held`]) to the role `target` (its id here, if this index
    /// names it), both ends included, its names shared with the index (and `target`). A
    /// target the actor holds, or one this index does not name (a template role the actor
    /// holds by name), is a chain of itself. The roles were resolved when the request was
    /// decided, so no name is searched again.
    pub(crate) fn chain(&self, held: &[u32], target: &Name, target_id: Option<u32>) -> Vec<Name> {
        let Some(target_id) = target_id.filter(|id| !held.contains(id)) else {
            return vec![target.clone()];
        };
        // Breadth-first search with predecessor links, on the stack for up to 64 roles.
        let n = self.role_count() as usize;
        let (mut previous_small, mut queue_small) = ([u32::MAX; 64], [0u32; 64]);
        let (mut previous_large, mut queue_large) = (Vec::new(), Vec::new());
        let (previous, queue): (&mut [u32], &mut [u32]) = if n <= 64 {
            (&mut previous_small[..n], &mut queue_small[..n])
        } else {
            previous_large.resize(n, u32::MAX);
            queue_large.resize(n, 0);
            (&mut previous_large, &mut queue_large)
        };
        let (mut head, mut tail) = (0, 0);
        for &id in held {
            if previous[id as usize] == u32::MAX {
                previous[id as usize] = id;
                queue[tail] = id;
                tail += 1;
            }
        }
        while head < tail {
            let role = queue[head];
            head += 1;
            if role == target_id {
                // Walk the predecessor links back to the held role, filling from the end.
                let mut length = 1;
                let mut at = role;
                while previous[at as usize] != at {
                    at = previous[at as usize];
                    length += 1;
                }
                let mut chain = Vec::with_capacity(length);
                let mut at = role;
                for _ in 0..length {
                    chain.push(self.name(Some(at as usize)));
                    at = previous[at as usize];
                }
                chain.reverse();
                return chain;
            }
            for &parent in self.parents_of(role) {
                let parent = parent as u32;
                if previous[parent as usize] == u32::MAX {
                    previous[parent as usize] = role;
                    queue[tail] = parent;
                    tail += 1;
                }
            }
        }
        vec![target.clone()]
    }
}

/// Rejects inheritance cycles and chains longer than [`MAX_INHERITANCE_DEPTH`] edges.
fn check_depth(domain: Domain, roles: &[Keyed<'_>], graph: Graph<'_>) -> Result<(), PolicyError> {
    // Depth in edges of the longest chain starting at each role; VISITING while on the
    // search path, UNKNOWN before.
    const UNKNOWN: u32 = u32::MAX;
    const VISITING: u32 = u32::MAX - 1;
    let mut depth: SmallVec<[u32; 32]> = smallvec::smallvec![UNKNOWN; graph.len()];
    // Iterative depth-first search: (role, index of the next parent to visit).
    let mut stack: SmallVec<[(u32, u32); 16]> = SmallVec::new();
    for start in 0..graph.len() as u32 {
        if depth[start as usize] != UNKNOWN {
            continue;
        }
        stack.clear();
        stack.push((start, 0));
        depth[start as usize] = VISITING;
        while let Some((role, next)) = stack.last().copied() {
            if let Some(&parent) = graph.of(role).get(next as usize) {
                if let Some(frame) = stack.last_mut() {
                    frame.1 += 1;
                }
                match depth[parent as usize] {
                    VISITING => {
                        return Err(PolicyError::InheritanceCycle {
                            domain,
                            role: roles[parent as usize].text.to_owned(),
                        });
                    }
                    UNKNOWN => {
                        depth[parent as usize] = VISITING;
                        stack.push((parent, 0));
                    }
                    _ => {}
                }
            } else {
                stack.pop();
                let own = graph.of(role).iter().map(|&p| depth[p as usize] + 1).max().unwrap_or(0);
                if own as usize > MAX_INHERITANCE_DEPTH {
                    return Err(PolicyError::InheritanceTooDeep {
                        domain,
                        role: roles[role as usize].text.to_owned(),
                        max: MAX_INHERITANCE_DEPTH,
                    });
                }
                depth[role as usize] = own;
            }
        }
    }
    Ok(())
}

/// A small bitset over a domain's role ids, on the stack for up to 256 roles.
#[derive(Debug)]
pub(crate) struct Bits {
    inline: [u64; 4],
    heap: Vec<u64>,
    words: usize,
}

impl Bits {
    fn new(words: usize) -> Self {
        Self {
            inline: [0; 4],
            heap: if words > 4 { vec![0; words] } else { Vec::new() },
            words,
        }
    }

    fn words(&self) -> &[u64] {
        if self.words > 4 {
            &self.heap
        } else {
            &self.inline[..self.words]
        }
    }

    fn words_mut(&mut self) -> &mut [u64] {
        if self.words > 4 {
            &mut self.heap
        } else {
            &mut self.inline[..self.words]
        }
    }

    fn contains(&self, id: u32) -> bool {
        self.words()
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }
}

/// What an actor reaches in one domain: the roles it holds and everything they inherit.
#[derive(Debug)]
pub(crate) struct Reach<'d, I> {
    index: &'d DomainIndex,
    bits: Bits,
    /// The ids of the roles held that this domain names, in the actor's order (inline up
    /// to eight, so deciding allocates nothing for an actor of eight roles or fewer).
    held: SmallVec<[u32; 8]>,
    direct: I,
}

impl<'d, 'n, I> Reach<'d, I>
where
    I: Iterator<Item = &'n str> + Clone,
{
    /// The ids of the roles the actor holds that this domain names, in the actor's order
    /// (what [`DomainIndex::chain`] starts from).
    #[inline]
    pub(crate) fn held(&self) -> &[u32] {
        &self.held
    }

    /// Whether the actor reaches the role `id` of this domain.
    #[inline]
    pub(crate) fn own(&self, id: u32) -> bool {
        self.bits.contains(id)
    }

    /// Whether the actor reaches the role named `name` (a role of the template).
    #[inline]
    pub(crate) fn named(&self, name: &str) -> bool {
        match self.index.role_id(name) {
            Some(id) => self.bits.contains(id),
            None => self.direct.clone().any(|d| d == name),
        }
    }
}

/// Where a rule lives: in the request's own domain or in the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Own,
    Template,
}

/// The outcome of evaluating the rules, before any explanation is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow(Source, u32),
    Deny(Source, u32),
    NoGrant,
}

/// Decides with deny over allow: the first reachable deny rule wins; otherwise the first
/// reachable allow rule grants; otherwise nothing does. Own rules come before the template's.
#[inline]
pub(crate) fn decide<'n, I>(reach: &Reach<'_, I>, template: Option<&DomainIndex>, object: &str, action: &str) -> Verdict
where
    I: Iterator<Item = &'n str> + Clone,
{
    let mut allow = None;
    let mut deny = None;
    let _ = reach.index.for_each_match(object, action, |id, rule| {
        if reach.own(rule.subject) {
            if rule.effect == Effect::Deny {
                deny = Some((Source::Own, id));
                return ControlFlow::Break(());
            }
            allow.get_or_insert((Source::Own, id));
        }
        ControlFlow::Continue(())
    });
    if deny.is_none()
        && let Some(template) = template
    {
        let _ = template.for_each_match(object, action, |id, rule| {
            if reach.named(template.role_name(rule.subject)) {
                if rule.effect == Effect::Deny {
                    deny = Some((Source::Template, id));
                    return ControlFlow::Break(());
                }
                allow.get_or_insert((Source::Template, id));
            }
            ControlFlow::Continue(())
        });
    }
    match (deny, allow) {
        (Some((source, id)), _) => Verdict::Deny(source, id),
        (None, Some((source, id))) => Verdict::Allow(source, id),
        (None, None) => Verdict::NoGrant,
    }
}

/// Who a matching rule is for: a role of the request's domain, or a template role by name
/// (with its id in the request's domain, when the domain names it too).
#[derive(Debug, Clone, Copy)]
enum Holder<'t> {
    Own(u32),
    Template(&'t str, Option<u32>),
}

/// The roles of the domain (and the template) that would grant the request to an actor
/// holding that role alone, sorted by name, shared with the indexes.
pub(crate) fn would_grant(own: &DomainIndex, template: Option<&DomainIndex>, object: &str, action: &str) -> Vec<Name> {
    // The matching rules, on the stack for the common case of a few.
    let mut matched: SmallVec<[(Effect, Holder<'_>); 16]> = SmallVec::new();
    let _ = own.for_each_match(object, action, |_, rule| {
        matched.push((rule.effect, Holder::Own(rule.subject)));
        ControlFlow::Continue(())
    });
    if let Some(template) = template {
        let _ = template.for_each_match(object, action, |_, rule| {
            let name = template.role_name(rule.subject);
            matched.push((rule.effect, Holder::Template(name, own.role_id(name))));
            ControlFlow::Continue(())
        });
    }
    if !matched.iter().any(|(effect, _)| *effect == Effect::Allow) {
        return Vec::new();
    }
    // The candidates are the roles both indexes name, merged in name order.
    let own_roles = &own.names[own.layout.role_names()];
    let template_roles: &[Arc<str>] = template.map_or(&[], |t| &t.names[t.layout.role_names()]);
    // Names compare by their keys first: only long names sharing seven bytes read text.
    let order = |i: usize, j: usize| -> std::cmp::Ordering {
        let t = template.map_or(0, |t| t.key(j));
        own.key(i)
            .cmp(&t)
            .then_with(|| own_roles[i].as_ref().cmp(template_roles[j].as_ref()))
    };
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(own_roles.len() + template_roles.len());
    while i < own_roles.len() || j < template_roles.len() {
        let (shared, own_id) = match (i < own_roles.len(), j < template_roles.len()) {
            (true, true) if order(i, j).is_eq() => {
                i += 1;
                j += 1;
                (&own_roles[i - 1], Some(i as u32 - 1))
            }
            (true, true) if order(i, j).is_lt() => {
                i += 1;
                (&own_roles[i - 1], Some(i as u32 - 1))
            }
            (true, false) => {
                i += 1;
                (&own_roles[i - 1], Some(i as u32 - 1))
            }
            (_, true) => {
                j += 1;
                (&template_roles[j - 1], None)
            }
            (false, false) => break,
        };
        let name: &str = shared;
        let row = own_id.map(|id| own.row(id));
        let holds = |holder: &Holder<'_>| match (holder, row) {
            (Holder::Own(id) | Holder::Template(_, Some(id)), Some(row)) => {
                row[*id as usize / 64] & (1 << (id % 64)) != 0
            }
            (Holder::Template(other, _), _) => *other == name,
            (Holder::Own(_), None) => false,
        };
        let allowed = matched.iter().any(|(e, h)| *e == Effect::Allow && holds(h))
            && !matched.iter().any(|(e, h)| *e == Effect::Deny && holds(h));
        if allowed {
            out.push(Name::from(Arc::clone(shared)));
        }
    }
    out
}

/// How many slots each level of the org map has.
const FANOUT: usize = 16;

/// Orgs' indexes in a fixed three-level trie of 16 × 16 × 16 sorted leaves: a lookup is
/// three array steps and a binary search, and a change copies three arrays of 16 pointers
/// and one small leaf, whatever the number of orgs. The top level is held inline (in the
/// snapshot), so a lookup makes as many hops as a two-level trie behind a pointer would;
/// sixteen slots a level (rather than 64 on two levels) keep the reference counts a change
/// writes to 48 instead of 128, each an atomic operation.
#[derive(Debug, Clone)]
pub(crate) struct OrgMap {
    top: [Arc<Mid>; FANOUT],
    len: usize,
}

#[derive(Debug, Clone)]
struct Mid {
    lows: [Arc<Low>; FANOUT],
}

#[derive(Debug, Clone)]
struct Low {
    /// Inline, so a lookup goes from this level to the leaf in one hop.
    leaves: [Leaf; FANOUT],
}

/// One leaf: orgs sorted by id, each with its index inline (cloning an index only
/// counts references), so a lookup reaches the index's fields without another hop.
type Leaf = Arc<[(OrgId, DomainIndex)]>;

/// An org's slot on each level of the trie.
type Slots = (usize, usize, usize);

impl Default for OrgMap {
    fn default() -> Self {
        let leaf: Leaf = Arc::new([]);
        let low = Arc::new(Low {
            leaves: std::array::from_fn(|_| Arc::clone(&leaf)),
        });
        let mid = Arc::new(Mid {
            lows: std::array::from_fn(|_| Arc::clone(&low)),
        });
        Self {
            top: std::array::from_fn(|_| Arc::clone(&mid)),
            len: 0,
        }
    }
}

impl OrgMap {
    /// The three slots of `org`: from a mix of its UUID's bits, so that sequential and
    /// random ids both spread.
    #[inline]
    fn slots(org: OrgId) -> Slots {
        let v = org.as_uuid().as_u128();
        let mixed = ((v as u64) ^ ((v >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (
            (mixed >> 60) as usize,
            ((mixed >> 56) & 15) as usize,
            ((mixed >> 52) & 15) as usize,
        )
    }

    #[inline]
    pub(crate) fn get(&self, org: OrgId) -> Option<&DomainIndex> {
        let (a, b, c) = Self::slots(org);
        let leaf = &self.top[a].lows[b].leaves[c];
        leaf.binary_search_by(|(o, _)| o.cmp(&org)).ok().map(|i| &leaf[i].1)
    }

    /// Sets (or with `None` removes) the index of each org in `changes`, copying only
    /// their paths: each array and leaf they touch once, however many orgs one change
    /// touches (a whole policy's, when it is loaded).
    pub(crate) fn update(&mut self, changes: impl IntoIterator<Item = (OrgId, Option<DomainIndex>)>) {
        let mut changes: Vec<(Slots, OrgId, Option<DomainIndex>)> = changes
            .into_iter()
            .map(|(org, index)| (Self::slots(org), org, index))
            .collect();
        changes.sort_unstable_by_key(|(slots, org, _)| (*slots, *org));
        let mut changes = changes.into_iter().peekable();
        while let Some(&((a, _, _), _, _)) = changes.peek() {
            let mut mid = (*self.top[a]).clone();
            while let Some(&((_, b, _), _, _)) = changes.peek().filter(|(s, _, _)| s.0 == a) {
                let mut low = (*mid.lows[b]).clone();
                while let Some(&((_, _, c), _, _)) = changes.peek().filter(|(s, _, _)| (s.0, s.1) == (a, b)) {
                    let mut leaf: Vec<(OrgId, DomainIndex)> = low.leaves[c].to_vec();
                    while let Some((_, org, index)) = changes.next_if(|(s, _, _)| *s == (a, b, c)) {
                        match (leaf.binary_search_by(|(o, _)| o.cmp(&org)), index) {
                            (Ok(i), Some(index)) => leaf[i].1 = index,
                            (Ok(i), None) => {
                                leaf.remove(i);
                                self.len -= 1;
                            }
                            (Err(i), Some(index)) => {
                                leaf.insert(i, (org, index));
                                self.len += 1;
                            }
                            (Err(_), None) => {}
                        }
                    }
                    low.leaves[c] = leaf.into();
                }
                mid.lows[b] = Arc::new(low);
            }
            self.top[a] = Arc::new(mid);
        }
    }

    /// Every org and its index. No two slots share a leaf that holds an org.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (OrgId, &DomainIndex)> {
        self.top
            .iter()
            .flat_map(|m| m.lows.iter())
            .flat_map(|l| l.leaves.iter())
            .flat_map(|l| l.iter().map(|(o, i)| (*o, i)))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// One state of the whole policy. Checks read it through an `ArcSwap`; a change builds
/// the next one, sharing every untouched domain.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) revision: Revision,
    pub(crate) template: DomainIndex,
    pub(crate) platform: DomainIndex,
    pub(crate) orgs: OrgMap,
    pub(crate) empty: DomainIndex,
}

impl Snapshot {
    pub(crate) fn empty(revision: Revision) -> Self {
        Self {
            revision,
            template: DomainIndex::default(),
            platform: DomainIndex::default(),
            orgs: OrgMap::default(),
            empty: DomainIndex::default(),
        }
    }

    /// The index of `domain`, empty when it holds no line.
    pub(crate) fn domain(&self, domain: Domain) -> &DomainIndex {
        match domain {
            Domain::AllOrgs => &self.template,
            Domain::Platform => &self.platform,
            Domain::Org(org) => self.orgs.get(org).unwrap_or(&self.empty),
        }
    }

    /// Replaces the indexes of the domains in `changes`.
    pub(crate) fn set(&mut self, changes: impl IntoIterator<Item = (Domain, DomainIndex)>) {
        let (template, platform) = (&mut self.template, &mut self.platform);
        self.orgs
            .update(changes.into_iter().filter_map(|(domain, index)| match domain {
                Domain::AllOrgs => {
                    *template = index;
                    None
                }
                Domain::Platform => {
                    *platform = index;
                    None
                }
                Domain::Org(org) => Some((org, (!index.is_empty()).then_some(index))),
            }));
    }

    /// Every line of the policy.
    pub(crate) fn lines(&self) -> Vec<PolicyLine> {
        let mut out = self.template.lines(Domain::AllOrgs);
        out.extend(self.platform.lines(Domain::Platform));
        for (org, index) in self.orgs.iter() {
            out.extend(index.lines(Domain::Org(org)));
        }
        out
    }

    /// How many lines the policy holds.
    pub(crate) fn len(&self) -> usize {
        self.template.len() + self.platform.len() + self.orgs.iter().map(|(_, i)| i.len()).sum::<usize>()
    }
}
