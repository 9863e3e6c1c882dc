//! The compiled index: one immutable [`DomainIndex`] per domain, in a [`Snapshot`] that
//! checks read without locks and changes replace copy-on-write.

use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use portal_core::OrgId;
use portal_core::access::{Domain, Effect, PolicyLine, PolicyRule, Revision};

use super::PolicyError;
use super::pattern::{self, CompiledPattern, ObjectPattern};
use super::validate::MAX_INHERITANCE_DEPTH;

/// A permission rule as text: subject, object, action (`*` for any), effect (0 allow, 1 deny).
pub(crate) type RawRule<'l> = (&'l str, &'l str, &'l str, u8);

/// An inheritance edge as text: role, parent.
pub(crate) type RawEdge<'l> = (&'l str, &'l str);

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

/// One permission rule, compiled. Its subject is a role id of the domain it belongs to.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) subject: u32,
    pub(crate) object: Arc<str>,
    /// `None` for `*`.
    pub(crate) action: Option<Arc<str>>,
    pub(crate) effect: Effect,
}

/// The compiled policy of one domain: its roles, their inheritance closure and its rules,
/// indexed by object. The fields a check reads come first, in this order.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub(crate) struct DomainIndex {
    /// Role names, sorted (a role's id is its position), each with the first word of its
    /// `reach` row, so that a domain of up to 64 roles reads a role's closure from the
    /// same cache line as its name.
    roles: Arc<[RoleEntry]>,
    /// Words of one row of `reach`.
    words: usize,
    /// For each role, a bitset of the roles it reaches through inheritance, itself
    /// included; empty when one word holds every row (see `roles`).
    reach: Arc<[u64]>,
    /// Exact objects, sorted, each with the range of its rules.
    exact: Arc<[(Arc<str>, Range)]>,
    /// The rules, sorted by (object, subject, action, effect).
    rules: Arc<[Rule]>,
    /// The range of the rules whose object is `*`.
    any: Range,
    /// Object patterns, each with the range of its rules.
    patterns: Arc<[(CompiledPattern, Range)]>,
    /// The roles each role directly inherits from (the `g` lines), by id, in the ranges
    /// the role entries give.
    parents: Arc<[u32]>,
}

/// A range of ids, `start..end`.
type Range = (u32, u32);

/// A role of a domain: its name, the first word of its reach row, and the range of its
/// parents in `DomainIndex::parents`.
#[derive(Debug)]
struct RoleEntry {
    name: Arc<str>,
    reach: u64,
    parents: Range,
}

/// Strings shared by every domain's index, so that `orders` is stored once for ten
/// thousand orgs. Only writers use it.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    set: HashSet<Arc<str>>,
    size_after_prune: usize,
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

    /// Forgets strings no index holds any more, once the set has doubled since the last time.
    pub(crate) fn prune(&mut self) {
        if self.set.len() > 1024 && self.set.len() > 2 * self.size_after_prune {
            self.set.retain(|s| Arc::strong_count(s) > 1);
            self.size_after_prune = self.set.len();
        }
    }
}

impl DomainIndex {
    /// Compiles the rules and inheritance edges of `domain`, which the caller validated.
    /// Duplicates count once and order does not matter.
    ///
    /// # Errors
    ///
    /// [`PolicyError::InheritanceCycle`] and [`PolicyError::InheritanceTooDeep`] for role
    /// inheritance that is circular or deeper than [`MAX_INHERITANCE_DEPTH`].
    pub(crate) fn compile<'l>(
        domain: Domain,
        raw_rules: impl IntoIterator<Item = RawRule<'l>>,
        raw_edges: impl IntoIterator<Item = RawEdge<'l>>,
        interner: &mut Interner,
    ) -> Result<Self, PolicyError> {
        let rules: BTreeSet<RawRule<'l>> = raw_rules.into_iter().collect();
        let edges: BTreeSet<RawEdge<'l>> = raw_edges.into_iter().collect();
        let mut names: BTreeSet<&str> = BTreeSet::new();
        names.extend(rules.iter().map(|r| r.0));
        names.extend(edges.iter().flat_map(|(role, parent)| [*role, *parent]));
        let roles: Vec<&str> = names.into_iter().collect();
        let id = |name: &str| -> u32 {
            // Every name was collected above, so the search always finds it.
            roles.binary_search(&name).map_or(u32::MAX, |i| i as u32)
        };
        let mut parents: Vec<Vec<u32>> = vec![Vec::new(); roles.len()];
        for (role, parent) in &edges {
            parents[id(role) as usize].push(id(parent));
        }
        check_depth(domain, &roles, &parents)?;
        let words = roles.len().div_ceil(64);
        let mut reach = vec![0u64; words * roles.len()];
        for start in 0..roles.len() {
            let row = &mut reach[start * words..(start + 1) * words];
            let mut stack = vec![start as u32];
            while let Some(role) = stack.pop() {
                let (word, bit) = (role as usize / 64, role % 64);
                if row[word] & (1 << bit) != 0 {
                    continue;
                }
                row[word] |= 1 << bit;
                stack.extend(parents[role as usize].iter().copied());
            }
        }

        // Rules sorted by object, so that the rules of one object are one range.
        let mut sorted: Vec<RawRule<'l>> = rules.into_iter().collect();
        sorted.sort_by(|a, b| (a.1, a.0, a.2, a.3).cmp(&(b.1, b.0, b.2, b.3)));
        let mut compiled_rules = Vec::with_capacity(sorted.len());
        let mut exact: Vec<(Arc<str>, Range)> = Vec::new();
        let mut any: Range = (0, 0);
        let mut patterns: Vec<(CompiledPattern, Range)> = Vec::new();
        let mut start = 0;
        while start < sorted.len() {
            let object = sorted[start].1;
            let end = start + sorted[start..].iter().take_while(|r| r.1 == object).count();
            let range = (start as u32, end as u32);
            let object_text = interner.intern(object);
            match pattern::compile(object) {
                Ok(ObjectPattern::Any) => any = range,
                Ok(ObjectPattern::Exact) => exact.push((Arc::clone(&object_text), range)),
                Ok(ObjectPattern::Pattern(compiled)) => patterns.push((compiled, range)),
                // Validation compiled the object already; this arm is never taken.
                Err(reason) => return Err(PolicyError::invalid_text(object, reason)),
            }
            for &(subject, _, action, effect) in &sorted[start..end] {
                compiled_rules.push(Rule {
                    subject: id(subject),
                    object: Arc::clone(&object_text),
                    action: (action != "*").then(|| interner.intern(action)),
                    effect: if effect == 0 { Effect::Allow } else { Effect::Deny },
                });
            }
            start = end;
        }
        Ok(Self {
            roles: {
                let mut start = 0u32;
                roles
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let end = start + parents[i].len() as u32;
                        let entry = RoleEntry {
                            name: interner.intern(r),
                            reach: reach.get(i * words).copied().unwrap_or(0),
                            parents: (start, end),
                        };
                        start = end;
                        entry
                    })
                    .collect()
            },
            words,
            reach: if words > 1 { reach.into() } else { Arc::default() },
            exact: exact.into(),
            rules: compiled_rules.into(),
            any,
            patterns: patterns.into(),
            parents: parents.into_iter().flatten().collect(),
        })
    }

    /// The rules as text, borrowed from the index.
    pub(crate) fn raw_rules(&self) -> impl Iterator<Item = RawRule<'_>> {
        self.rules.iter().map(|rule| {
            let effect = match rule.effect {
                Effect::Allow => 0,
                Effect::Deny => 1,
            };
            (
                &*self.roles[rule.subject as usize].name,
                &*rule.object,
                rule.action.as_deref().unwrap_or("*"),
                effect,
            )
        })
    }

    /// The inheritance edges as text, borrowed from the index.
    pub(crate) fn raw_edges(&self) -> impl Iterator<Item = RawEdge<'_>> {
        self.roles.iter().flat_map(move |role| {
            self.parents_of(role)
                .iter()
                .map(move |parent| (&*role.name, &*self.roles[*parent as usize].name))
        })
    }

    /// The lines this index was compiled from, in its canonical order.
    pub(crate) fn lines(&self, domain: Domain) -> Vec<PolicyLine> {
        let mut out = Vec::with_capacity(self.len());
        for rule in self.rules.iter() {
            out.push(PolicyLine::Permission(self.policy_rule(rule, domain)));
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
        self.rules.len() + self.parents.len()
    }

    /// Whether the index holds no line.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A rule as the policy line it came from.
    pub(crate) fn policy_rule(&self, rule: &Rule, domain: Domain) -> PolicyRule {
        PolicyRule {
            subject: self.roles[rule.subject as usize].name.to_string(),
            domain,
            object: rule.object.to_string(),
            action: rule.action.as_deref().unwrap_or("*").to_owned(),
            effect: rule.effect,
        }
    }

    pub(crate) fn rule(&self, id: u32) -> &Rule {
        &self.rules[id as usize]
    }

    pub(crate) fn role_name(&self, id: u32) -> &str {
        &self.roles[id as usize].name
    }

    /// The roles `role` directly inherits from.
    fn parents_of(&self, role: &RoleEntry) -> &[u32] {
        &self.parents[role.parents.0 as usize..role.parents.1 as usize]
    }

    /// The reach row of role `id`.
    #[inline]
    fn row(&self, id: u32) -> &[u64] {
        if self.words > 1 {
            &self.reach[id as usize * self.words..(id as usize + 1) * self.words]
        } else {
            std::slice::from_ref(&self.roles[id as usize].reach)
        }
    }

    /// The id of the role `name`, if a line of this domain names it.
    pub(crate) fn role_id(&self, name: &str) -> Option<u32> {
        self.roles
            .binary_search_by(|r| (*r.name).cmp(name))
            .ok()
            .map(|i| i as u32)
    }

    /// Calls `visit` with every rule whose object and action match, until it breaks.
    #[inline]
    pub(crate) fn for_each_match(
        &self,
        object: &str,
        action: &str,
        mut visit: impl FnMut(u32, &Rule) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut each = |(start, end): Range| -> ControlFlow<()> {
            for id in start..end {
                let rule = &self.rules[id as usize];
                if rule.action.as_deref().is_none_or(|a| a == action) {
                    visit(id, rule)?;
                }
            }
            ControlFlow::Continue(())
        };
        if let Ok(i) = self.exact.binary_search_by(|(o, _)| (**o).cmp(object)) {
            each(self.exact[i].1)?;
        }
        each(self.any)?;
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
        let mut bits = Bits::new(self.words);
        for name in direct.clone() {
            if let Some(id) = self.role_id(name) {
                let row = self.row(id);
                for (w, r) in bits.words_mut().iter_mut().zip(row) {
                    *w |= r;
                }
            }
        }
        Reach {
            index: self,
            bits,
            direct,
        }
    }

    /// The shortest inheritance chain from one of `direct` to `target`, both ends included.
    pub(crate) fn chain<'n>(&self, direct: impl Iterator<Item = &'n str> + Clone, target: &str) -> Vec<String> {
        if direct.clone().any(|d| d == target) {
            return vec![target.to_owned()];
        }
        let Some(target_id) = self.role_id(target) else {
            return vec![target.to_owned()];
        };
        // Breadth-first search with predecessor links, on the stack for up to 64 roles.
        let n = self.roles.len();
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
        for id in direct.filter_map(|d| self.role_id(d)) {
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
                let mut chain = vec![self.roles[role as usize].name.to_string()];
                let mut at = role;
                while previous[at as usize] != at {
                    at = previous[at as usize];
                    chain.push(self.roles[at as usize].name.to_string());
                }
                chain.reverse();
                return chain;
            }
            for &parent in self.parents_of(&self.roles[role as usize]) {
                if previous[parent as usize] == u32::MAX {
                    previous[parent as usize] = role;
                    queue[tail] = parent;
                    tail += 1;
                }
            }
        }
        vec![target.to_owned()]
    }
}

/// Rejects inheritance cycles and chains longer than [`MAX_INHERITANCE_DEPTH`] edges.
fn check_depth(domain: Domain, roles: &[&str], parents: &[Vec<u32>]) -> Result<(), PolicyError> {
    // Depth in edges of the longest chain starting at each role; `None` while unknown.
    const VISITING: usize = usize::MAX;
    let mut depth: Vec<Option<usize>> = vec![None; roles.len()];
    for start in 0..roles.len() {
        if depth[start].is_some() {
            continue;
        }
        // Iterative depth-first search: (role, index of the next parent to visit).
        let mut stack = vec![(start, 0usize)];
        depth[start] = Some(VISITING);
        while let Some((role, next)) = stack.last().copied() {
            if let Some(&parent) = parents[role].get(next) {
                if let Some(frame) = stack.last_mut() {
                    frame.1 += 1;
                }
                match depth[parent as usize] {
                    Some(VISITING) => {
                        return Err(PolicyError::InheritanceCycle {
                            domain,
                            role: roles[parent as usize].to_owned(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        depth[parent as usize] = Some(VISITING);
                        stack.push((parent as usize, 0));
                    }
                }
            } else {
                stack.pop();
                let own = parents[role]
                    .iter()
                    .map(|&p| depth[p as usize].map_or(0, |d| d + 1))
                    .max()
                    .unwrap_or(0);
                if own > MAX_INHERITANCE_DEPTH {
                    return Err(PolicyError::InheritanceTooDeep {
                        domain,
                        role: roles[role].to_owned(),
                        max: MAX_INHERITANCE_DEPTH,
                    });
                }
                depth[role] = Some(own);
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
    direct: I,
}

impl<'d, 'n, I> Reach<'d, I>
where
    I: Iterator<Item = &'n str> + Clone,
{
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
/// holding that role alone, sorted by name.
pub(crate) fn would_grant(
    own: &DomainIndex,
    template: Option<&DomainIndex>,
    object: &str,
    action: &str,
) -> Vec<String> {
    let mut matched: Vec<(Effect, Holder<'_>)> = Vec::new();
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
    let template_roles: &[RoleEntry] = template.map_or(&[], |t| &t.roles);
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < own.roles.len() || j < template_roles.len() {
        let (name, own_id) = match (own.roles.get(i), template_roles.get(j)) {
            (Some(a), Some(b)) if a.name == b.name => {
                i += 1;
                j += 1;
                (&*a.name, Some(i as u32 - 1))
            }
            (Some(a), Some(b)) if a.name < b.name => {
                i += 1;
                (&*a.name, Some(i as u32 - 1))
            }
            (Some(a), None) => {
                i += 1;
                (&*a.name, Some(i as u32 - 1))
            }
            (_, Some(b)) => {
                j += 1;
                (&*b.name, None)
            }
            (None, None) => break,
        };
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
            out.push(name.to_owned());
        }
    }
    out
}

/// How many top-level and second-level slots the org map has.
const FANOUT: usize = 64;

/// Orgs' indexes in a fixed two-level trie of 64 × 64 sorted leaves: a lookup is two array
/// steps and a binary search, and a change copies two arrays of 64 pointers and one small
/// leaf, whatever the number of orgs.
#[derive(Debug, Clone)]
pub(crate) struct OrgMap {
    top: Arc<[Arc<Mid>]>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Mid {
    leaves: Box<[Arc<Leaf>]>,
}

/// One leaf: orgs sorted by id, each with its index inline (cloning an index only
/// counts references), so a lookup reaches the index's fields without another hop.
type Leaf = Box<[(OrgId, DomainIndex)]>;

impl Default for OrgMap {
    fn default() -> Self {
        let leaf: Arc<Leaf> = Arc::new(Box::new([]));
        let mid = Arc::new(Mid {
            leaves: (0..FANOUT).map(|_| Arc::clone(&leaf)).collect(),
        });
        Self {
            top: (0..FANOUT).map(|_| Arc::clone(&mid)).collect(),
            len: 0,
        }
    }
}

impl OrgMap {
    /// The two slots of `org`: from a mix of its UUID's bits, so that sequential and
    /// random ids both spread.
    #[inline]
    fn slots(org: OrgId) -> (usize, usize) {
        let v = org.as_uuid().as_u128();
        let mixed = ((v as u64) ^ ((v >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((mixed >> 58) as usize, ((mixed >> 52) & 63) as usize)
    }

    #[inline]
    pub(crate) fn get(&self, org: OrgId) -> Option<&DomainIndex> {
        let (a, b) = Self::slots(org);
        let leaf = &self.top[a].leaves[b];
        leaf.binary_search_by(|(o, _)| o.cmp(&org)).ok().map(|i| &leaf[i].1)
    }

    /// Sets (or with `None` removes) the index of `org`, copying only its path.
    pub(crate) fn set(&mut self, org: OrgId, index: Option<DomainIndex>) {
        let (a, b) = Self::slots(org);
        let mut leaf: Vec<(OrgId, DomainIndex)> = self.top[a].leaves[b].to_vec();
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
            (Err(_), None) => return,
        }
        let mut mid = (*self.top[a]).clone();
        mid.leaves[b] = Arc::new(leaf.into_boxed_slice());
        let mut top: Vec<Arc<Mid>> = self.top.to_vec();
        top[a] = Arc::new(mid);
        self.top = top.into();
    }

    /// Every org and its index. No two slots share a leaf that holds an org.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (OrgId, &DomainIndex)> {
        self.top
            .iter()
            .flat_map(|m| m.leaves.iter())
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

    /// Replaces the index of `domain`.
    pub(crate) fn set(&mut self, domain: Domain, index: DomainIndex) {
        match domain {
            Domain::AllOrgs => self.template = index,
            Domain::Platform => self.platform = index,
            Domain::Org(org) => {
                let index = (!index.is_empty()).then_some(index);
                self.orgs.set(org, index);
            }
        }
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
