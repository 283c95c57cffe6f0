//! Compact in-memory building blocks, so an open expectation costs a few
//! hundred bytes rather than the kilobyte its serde form would: small strings
//! kept inline, repeated codes interned, and indexes of `(hash, slot)` pairs.

use hashbrown::HashTable;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroU32;

/// The longest string a [`CStr`] keeps inline.
const INLINE: usize = 15;

/// The length of an inline [`CStr`]: an enum of the sixteen values 0 to 15,
/// so that the byte's other 240 values are free to tell the boxed forms
/// apart and a `CStr` (and an `Option` of one) fits in 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Len {
    L0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
}

const LENS: [Len; INLINE + 1] = [
    Len::L0,
    Len::L1,
    Len::L2,
    Len::L3,
    Len::L4,
    Len::L5,
    Len::L6,
    Len::L7,
    Len::L8,
    Len::L9,
    Len::L10,
    Len::L11,
    Len::L12,
    Len::L13,
    Len::L14,
    Len::L15,
];

/// A string stored inline when short (visit numbers and hospital numbers
/// mostly are), boxed as 16 bytes when it is 32 lowercase hex digits, and
/// boxed as it is otherwise. 16 bytes: two of them sit in every open
/// expectation (its visit number and its first local patient id).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum CStr {
    Inline(Len, [u8; INLINE]),
    Hex(Box<[u8; 16]>),
    Heap(Box<Box<str>>),
}

impl CStr {
    pub(crate) fn new(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            return Self::Inline(LENS[s.len()], buf);
        }
        if let Some(h) = pack_hex(s) {
            return Self::Hex(Box::new(h));
        }
        Self::Heap(Box::new(s.into()))
    }

    /// Calls `f` with the string, rendered on the stack when packed: for
    /// index keys, without allocating.
    pub(crate) fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Self::Hex(h) => {
                let mut buf = [0u8; 32];
                for (i, b) in h.iter().enumerate() {
                    buf[2 * i] = HEX[(b >> 4) as usize];
                    buf[2 * i + 1] = HEX[(b & 0xf) as usize];
                }
                f(std::str::from_utf8(&buf).unwrap_or(""))
            }
            Self::Inline(n, b) => f(std::str::from_utf8(&b[..*n as usize]).unwrap_or("")),
            Self::Heap(b) => f(b),
        }
    }

    /// Compares with a `&str` without allocating.
    pub(crate) fn eq_str(&self, s: &str) -> bool {
        match self {
            Self::Hex(h) => pack_hex(s).is_some_and(|p| p == **h),
            Self::Inline(n, b) => &b[..*n as usize] == s.as_bytes(),
            Self::Heap(b) => &***b == s,
        }
    }
}

impl fmt::Display for CStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hex(h) => {
                for b in h.iter() {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            // Built from a whole `&str`, so the bytes are valid UTF-8.
            Self::Inline(n, b) => f.write_str(std::str::from_utf8(&b[..*n as usize]).unwrap_or("")),
            Self::Heap(b) => f.write_str(b),
        }
    }
}

impl fmt::Debug for CStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Packs 32 lowercase hex digits into 16 bytes.
pub(crate) fn pack_hex(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

/// Renders 16 bytes as 32 lowercase hex digits.
pub(crate) fn hex16(b: &[u8; 16]) -> String {
    hex::encode(b)
}

/// An NHS number in 8 bytes rather than the 24 of a [`CStr`]: the
/// normalisers hand the tracker ten validated digits, kept here as their
/// value. Anything else (an event built by hand, a store written by another
/// tool) is interned in the tracker's [`Symbols`] and marked by the top bit,
/// so any string still round-trips.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Nhs(u64);

/// The top bit: the low 32 bits are a [`Sym`].
const NHS_INTERNED: u64 = 1 << 63;

impl Nhs {
    /// No NHS number.
    pub(crate) const NONE: Self = Self(u64::MAX);

    pub(crate) fn new(s: Option<&str>, syms: &mut Symbols) -> Self {
        match s {
            None => Self::NONE,
            Some(s) => match pack_digits10(s) {
                Some(v) => Self(v),
                None => Self(NHS_INTERNED | u64::from(syms.intern(s).get())),
            },
        }
    }

    /// Whether there is a number, without rendering it.
    pub(crate) fn is_known(self) -> bool {
        self != Self::NONE
    }

    /// Calls `f` with the number, rendered on the stack when packed.
    pub(crate) fn with_str<R>(self, syms: &Symbols, f: impl FnOnce(&str) -> R) -> Option<R> {
        if self == Self::NONE {
            None
        } else if self.0 & NHS_INTERNED != 0 {
            Some(f(syms.name(self.sym()?)))
        } else {
            let mut buf = [b'0'; 10];
            let mut v = self.0;
            for b in buf.iter_mut().rev() {
                *b = b'0' + (v % 10) as u8;
                v /= 10;
            }
            Some(f(std::str::from_utf8(&buf).unwrap_or("")))
        }
    }

    /// Whether both this and `other` are known and differ: the mark of
    /// another patient (visit numbers collide across systems, so a visit
    /// number alone never says whose a message is).
    pub(crate) fn differs(self, syms: &Symbols, other: Option<&str>) -> bool {
        other.is_some_and(|n| self.with_str(syms, |x| x != n).unwrap_or(false))
    }

    /// Compares with a `&str` without allocating.
    pub(crate) fn eq_str(self, syms: &Symbols, s: &str) -> bool {
        if self == Self::NONE {
            return false;
        }
        match pack_digits10(s) {
            Some(v) => self.0 == v,
            None => self.0 & NHS_INTERNED != 0 && self.sym() == syms.lookup(s),
        }
    }

    fn sym(self) -> Option<Sym> {
        NonZeroU32::new(self.0 as u32)
    }

    pub(crate) fn to_string(self, syms: &Symbols) -> Option<String> {
        self.with_str(syms, str::to_string)
    }
}

/// The value of exactly ten ASCII digits.
fn pack_digits10(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    (b.len() == 10 && b.iter().all(u8::is_ascii_digit))
        .then(|| b.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0')))
}

/// An interned code (site, specialty, GP practice, identifier system).
pub(crate) type Sym = NonZeroU32;

/// Interns the codes that repeat across many expectations, and the
/// combinations of an encounter's site, specialty and GP practice
/// ([`Context`]).
#[derive(Default)]
pub(crate) struct Symbols {
    ids: HashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
    context_ids: HashMap<Context, u32, FxBuild>,
    contexts: Vec<Context>,
}

/// An encounter's site, specialty and GP practice, and the system of its
/// patient's first local id, interned together as one `u32` in an open
/// expectation instead of four: a trust has tens of sites and specialties,
/// some thousands of practices and a few identifier systems, and their
/// combinations repeat across many expectations, so each is stored once
/// (12 bytes less for each of a million open expectations).
pub(crate) type Context = [Option<Sym>; 4];

impl Symbols {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        self.names.push(s.into());
        let id = NonZeroU32::new(self.names.len() as u32).unwrap_or(NonZeroU32::MIN);
        self.ids.insert(s.into(), id);
        id
    }

    pub(crate) fn lookup(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    pub(crate) fn name(&self, id: Sym) -> &str {
        self.names.get(id.get() as usize - 1).map_or("", |s| s)
    }

    /// The id of a combination of site, specialty and GP practice.
    pub(crate) fn intern_context(&mut self, c: Context) -> u32 {
        if let Some(&id) = self.context_ids.get(&c) {
            return id;
        }
        let id = self.contexts.len() as u32;
        self.contexts.push(c);
        self.context_ids.insert(c, id);
        id
    }

    /// The combination an id stands for (none of the three for an unknown
    /// id, which `intern_context` never gives).
    pub(crate) fn context(&self, id: u32) -> Context {
        self.contexts.get(id as usize).copied().unwrap_or_default()
    }
}

/// A fast, deterministic 64-bit hash (FxHash) for index keys. Collisions are
/// harmless: every index hit is checked against the slot's own fields.
pub(crate) fn key_hash(parts: &[&str]) -> u64 {
    let mut h = FxHasher(0);
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// FxHash as a `HashMap` hasher, for maps keyed by values that are already
/// hashes (duplicate keys) or short strings (message ids): much cheaper than
/// the default SipHash, and these keys are not chosen by an attacker who
/// could exploit collisions (they come from the trust's own systems).
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    /// Mixed once more at the end: FxHash's multiply leaves the low bits
    /// depending only on the low bytes of the input, and hash tables pick
    /// the bucket by the low bits, so keys sharing a prefix (`MDM…` message
    /// ids) would crowd into a few buckets.
    fn finish(&self) -> u64 {
        fmix64(self.0)
    }
}

/// A many-to-many index from a key hash to slots: `(folded key, slot)`
/// pairs in an open-addressing hash table (9 bytes a bucket), so a lookup
/// costs the same with a thousand entries or millions. The key is folded to
/// 32 bits: a rare false hit is harmless, since every hit is checked against
/// the slot's own fields.
#[derive(Default)]
pub(crate) struct MultiIndex(HashTable<(u32, u32)>);

/// Folds a 64-bit key hash to the 32 bits kept in a [`MultiIndex`].
fn fold(key: u64) -> u32 {
    (key ^ (key >> 32)) as u32
}

/// The table hash of a folded key (every bit mixed, since the table uses
/// the low bits for the bucket and the top 7 as tag).
fn spread(k: u32) -> u64 {
    fmix64(u64::from(k))
}

/// Murmur3's 64-bit finaliser: every output bit depends on every input bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl MultiIndex {
    pub(crate) fn insert(&mut self, key: u64, slot: u32) {
        let k = fold(key);
        self.0.insert_unique(spread(k), (k, slot), |e| spread(e.0));
    }
    pub(crate) fn remove(&mut self, key: u64, slot: u32) {
        let k = fold(key);
        if let Ok(e) = self.0.find_entry(spread(k), |e| *e == (k, slot)) {
            e.remove();
        }
    }
    /// The slots under a key, ascending, each once.
    pub(crate) fn get(&self, key: u64) -> impl Iterator<Item = u32> + use<> {
        let k = fold(key);
        let mut out: Vec<u32> = self
            .0
            .iter_hash(spread(k))
            .filter(|e| e.0 == k)
            .map(|e| e.1)
            .collect();
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        out.into_iter()
    }
}

/// A min-heap of `(instant, slot)` timers with lazy deletion: removing an
/// expectation leaves its timer in the heap, and the owner skips timers that
/// no longer match the slot's state when they come up (and drops them from
/// the top after every change, so the earliest timer is always a live one).
/// 12 bytes a timer and constant-time inserts for deadlines that mostly grow,
/// where a B-tree costs a search (and cache misses) per insert and remove.
#[derive(Default)]
pub(crate) struct TimerHeap(std::collections::BinaryHeap<std::cmp::Reverse<Timer>>);

/// A timer as three 32-bit words, the instant's high and low words (biased
/// so that they order as the signed instant does) then the slot: 12 bytes,
/// where an `(i64, u32)` is padded to 16. Words compare in order, so timers
/// order by `(instant, slot)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer([u32; 3]);

impl Timer {
    fn new(at: i64, slot: u32) -> Self {
        let u = (at as u64) ^ (1 << 63);
        Self([(u >> 32) as u32, u as u32, slot])
    }
    fn get(self) -> (i64, u32) {
        let u = (u64::from(self.0[0]) << 32) | u64::from(self.0[1]);
        ((u ^ (1 << 63)) as i64, self.0[2])
    }
}

impl TimerHeap {
    pub(crate) fn push(&mut self, at: i64, slot: u32) {
        self.0.push(std::cmp::Reverse(Timer::new(at, slot)));
    }
    pub(crate) fn peek(&self) -> Option<(i64, u32)> {
        self.0.peek().map(|r| r.0.get())
    }
    pub(crate) fn pop(&mut self) -> Option<(i64, u32)> {
        self.0.pop().map(|r| r.0.get())
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    /// Keeps only the timers `live` accepts, each once.
    pub(crate) fn retain(&mut self, mut live: impl FnMut(i64, u32) -> bool) {
        let mut v = std::mem::take(&mut self.0).into_vec();
        v.retain(|r| {
            let (at, slot) = r.0.get();
            live(at, slot)
        });
        v.sort_unstable();
        v.dedup();
        self.0 = v.into();
    }
}

/// log2 of the slots in one chunk of a [`Slab`].
const SLAB_CHUNK_BITS: u32 = 14;
/// Slots in one chunk of a [`Slab`] (16,384: some 2.5 MB of open records).
const SLAB_CHUNK: usize = 1 << SLAB_CHUNK_BITS;

/// Slots with a free list, so slot numbers stay small (`u32`). The slots
/// live in fixed-size chunks rather than one vector: a million open
/// expectations are about 160 MB of slots, and growing a single vector past
/// that meant allocating a 320 MB one and copying into it with both
/// resident, the largest step in a 1M-open replay's peak memory
/// (docs/performance.md, "Sixth session"). A chunk never moves.
pub(crate) struct Slab<T> {
    chunks: Vec<Vec<Option<T>>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

/// Where slot `i` lives: (chunk, position in it).
fn slab_place(i: u32) -> (usize, usize) {
    let i = i as usize;
    (i >> SLAB_CHUNK_BITS, i & (SLAB_CHUNK - 1))
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, v: T) -> u32 {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            let (c, k) = slab_place(i);
            self.chunks[c][k] = Some(v);
            return i;
        }
        if self.chunks.last().is_none_or(|c| c.len() == SLAB_CHUNK) {
            self.chunks.push(Vec::with_capacity(SLAB_CHUNK));
        }
        let c = self.chunks.len() - 1;
        let chunk = &mut self.chunks[c];
        chunk.push(Some(v));
        (c * SLAB_CHUNK + chunk.len() - 1) as u32
    }
    pub(crate) fn remove(&mut self, i: u32) -> Option<T> {
        let (c, k) = slab_place(i);
        let v = self.chunks.get_mut(c)?.get_mut(k)?.take();
        if v.is_some() {
            self.len -= 1;
            self.free.push(i);
        }
        v
    }
    pub(crate) fn get(&self, i: u32) -> Option<&T> {
        let (c, k) = slab_place(i);
        self.chunks.get(c)?.get(k)?.as_ref()
    }
    pub(crate) fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        let (c, k) = slab_place(i);
        self.chunks.get_mut(c)?.get_mut(k)?.as_mut()
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cstr_round_trips_every_representation() {
        for s in [
            "",
            "V123",
            "9434765919",
            "0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "a-rather-long-visit-number-from-some-pas-system",
            "123456789012345",
            "1234567890123456",
            "ünïcödé",
        ] {
            let c = CStr::new(s);
            assert_eq!(c.to_string(), s);
            assert!(c.eq_str(s));
            assert!(!c.eq_str("other"));
            assert_eq!(c.with_str(str::to_string), s);
        }
        assert!(matches!(
            CStr::new("0123456789abcdef0123456789abcdef"),
            CStr::Hex(_)
        ));
        assert!(matches!(CStr::new("123456789012345"), CStr::Inline(..)));
        assert!(matches!(CStr::new("1234567890123456"), CStr::Heap(_)));
        assert_eq!(std::mem::size_of::<CStr>(), 16);
        assert_eq!(std::mem::size_of::<Option<CStr>>(), 16);
    }

    #[test]
    fn nhs_numbers_pack_into_eight_bytes_and_round_trip() {
        let mut syms = Symbols::default();
        for s in [
            "9434765919",
            "0000000000",
            "0123456789",
            "943 476 5919",
            "12345",
            "",
        ] {
            let n = Nhs::new(Some(s), &mut syms);
            assert!(n != Nhs::NONE);
            assert_eq!(n.to_string(&syms).as_deref(), Some(s));
            assert!(n.eq_str(&syms, s));
            assert!(!n.eq_str(&syms, "9434765918"));
            assert!(!n.eq_str(&syms, "other"));
        }
        assert!(matches!(
            Nhs::new(Some("0123456789"), &mut syms),
            Nhs(123_456_789)
        ));
        assert_eq!(syms.names.len(), 3, "only the odd ones are interned");
        let none = Nhs::new(None, &mut syms);
        assert!(none == Nhs::NONE);
        assert_eq!(none.to_string(&syms), None);
        assert!(!none.eq_str(&syms, "9434765919"));
        assert_eq!(std::mem::size_of::<Nhs>(), 8);
    }

    #[test]
    fn contexts_are_interned_once_and_read_back() {
        let mut syms = Symbols::default();
        let (a, b) = (Some(syms.intern("RXX01")), Some(syms.intern("A81001")));
        let one = syms.intern_context([a, None, b, None]);
        let two = syms.intern_context([a, b, None, None]);
        let none = syms.intern_context([None; 4]);
        assert_eq!(
            syms.intern_context([a, None, b, None]),
            one,
            "the same id again"
        );
        assert_ne!(one, two, "the order counts");
        assert_eq!(syms.context(one), [a, None, b, None]);
        assert_eq!(syms.context(two), [a, b, None, None]);
        assert_eq!(syms.context(none), [None; 4]);
        assert_eq!(syms.contexts.len(), 3);
        assert_eq!(syms.context(99), [None; 4], "unknown id");
    }

    #[test]
    fn multi_index_and_slab() {
        let mut ix = MultiIndex::default();
        ix.insert(7, 1);
        ix.insert(7, 3);
        ix.insert(8, 2);
        assert_eq!(ix.get(7).collect::<Vec<_>>(), vec![1, 3]);
        ix.remove(7, 1);
        assert_eq!(ix.get(7).collect::<Vec<_>>(), vec![3]);
        ix.insert(7, 3);
        assert_eq!(ix.get(7).collect::<Vec<_>>(), vec![3], "each slot once");
        assert_eq!(ix.get(9).count(), 0);
        let mut t = TimerHeap::default();
        for (at, slot) in [(5, 1), (3, 2), (5, 0), (3, 2)] {
            t.push(at, slot);
        }
        t.retain(|_, slot| slot != 1);
        assert_eq!(t.len(), 2);
        assert_eq!(t.pop(), Some((3, 2)));
        assert_eq!(t.pop(), Some((5, 0)));
        assert_eq!(t.pop(), None);
        // Instants before the epoch, across a word boundary and at the ends
        // of the range come back whole and in order.
        let at = [
            i64::MIN,
            -1_700_000_000_000,
            -1,
            0,
            (1 << 32) - 1,
            1 << 32,
            1_764_000_000_123,
            i64::MAX,
        ];
        for (i, a) in at.iter().rev().enumerate() {
            t.push(*a, i as u32);
            t.push(*a, u32::MAX);
        }
        assert_eq!(std::mem::size_of::<Timer>(), 12);
        let mut popped = Vec::new();
        while let Some(x) = t.pop() {
            popped.push(x);
        }
        let mut want: Vec<(i64, u32)> = at
            .iter()
            .rev()
            .enumerate()
            .flat_map(|(i, a)| [(*a, i as u32), (*a, u32::MAX)])
            .collect();
        want.sort_unstable();
        assert_eq!(popped, want);
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.insert("c"), a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn slab_slots_cross_chunks_and_are_reused() {
        let n = 2 * SLAB_CHUNK + 5;
        let mut s = Slab::default();
        let slots: Vec<u32> = (0..n).map(|v| s.insert(v)).collect();
        assert_eq!(slots, (0..n as u32).collect::<Vec<_>>(), "dense from 0");
        assert_eq!(s.len(), n);
        for i in [0, SLAB_CHUNK - 1, SLAB_CHUNK, 2 * SLAB_CHUNK + 4] {
            assert_eq!(s.get(i as u32), Some(&i));
        }
        assert_eq!(s.get(n as u32), None, "past the end");
        assert_eq!(s.remove(SLAB_CHUNK as u32), Some(SLAB_CHUNK));
        assert_eq!(s.remove(SLAB_CHUNK as u32), None, "removed once");
        assert_eq!(s.get(SLAB_CHUNK as u32), None);
        *s.get_mut(3).unwrap() = 33;
        assert_eq!(s.insert(7), SLAB_CHUNK as u32, "the freed slot first");
        let seen: Vec<(u32, usize)> = s
            .iter()
            .filter(|&(i, _)| i < 4 || i == SLAB_CHUNK as u32)
            .map(|(i, v)| (i, *v))
            .collect();
        assert_eq!(
            seen,
            [(0, 0), (1, 1), (2, 2), (3, 33), (SLAB_CHUNK as u32, 7)]
        );
        assert_eq!(s.iter().count(), n);
    }
}
