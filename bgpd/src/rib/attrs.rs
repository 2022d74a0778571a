// Interned attribute sets. A full table carries few distinct sets of path
// attributes (one per neighbour and policy outcome, not one per prefix), so
// the RIB keeps one shared copy of each and every path points at it: memory
// grows with prefixes, not with attributes × prefixes.

use std::collections::HashSet;
use std::sync::Arc;

use super::route::PathAttributes;

#[derive(Debug, Default)]
pub struct AttrInterner {
    sets: HashSet<Arc<PathAttributes>, foldhash::fast::RandomState>,
    /// Interned since the last purge; a purge only pays when the set grew.
    added_since_purge: usize,
}

impl AttrInterner {
    pub fn new() -> AttrInterner {
        AttrInterner::default()
    }

    /// The shared copy equal to `attrs` (`attrs` itself when it is new).
    pub fn intern(&mut self, attrs: Arc<PathAttributes>) -> Arc<PathAttributes> {
        if let Some(shared) = self.sets.get(&attrs) {
            return shared.clone();
        }
        self.added_since_purge += 1;
        self.sets.insert(attrs.clone());
        attrs
    }

    /// Like `intern`, for an owned value.
    pub fn intern_owned(&mut self, attrs: PathAttributes) -> Arc<PathAttributes> {
        if let Some(shared) = self.sets.get(&attrs) {
            return shared.clone();
        }
        self.intern(Arc::new(attrs))
    }

    /// Drops the sets no path uses any more. Cheap to call often: it only
    /// walks the table when as many sets were added as it holds.
    pub fn purge(&mut self) {
        if self.added_since_purge < self.sets.len().max(64) / 2 {
            return;
        }
        self.sets.retain(|a| Arc::strong_count(a) > 1);
        self.added_since_purge = 0;
    }

    /// Distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Origin, PathAttribute};

    fn attrs(med: u32) -> PathAttributes {
        PathAttributes {
            attributes: vec![
                PathAttribute::Origin(Origin::Igp),
                PathAttribute::MultiExitDisc(med),
            ],
            next_hops: vec!["192.0.2.1".parse().expect("address")],
        }
    }

    #[test]
    fn equal_sets_share_one_allocation() {
        let mut interner = AttrInterner::new();
        let a = interner.intern(Arc::new(attrs(1)));
        let b = interner.intern(Arc::new(attrs(1)));
        let c = interner.intern_owned(attrs(2));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn purge_drops_only_unused_sets() {
        let mut interner = AttrInterner::new();
        let kept = interner.intern_owned(attrs(0));
        for med in 1..100 {
            interner.intern_owned(attrs(med));
        }
        interner.purge();
        assert_eq!(interner.len(), 1);
        assert!(Arc::ptr_eq(&kept, &interner.intern_owned(attrs(0))));
    }
}
