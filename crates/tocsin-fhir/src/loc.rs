//! Where a resource sits in the input, e.g.
//! `Bundle.entry[2].resource.contained[0]`.
//!
//! Every prepared resource carries its location, but only errors and
//! warnings ever show it, so it is kept as the root resource type and a
//! short list of indices, and written out only when one is made: building
//! the text for every entry of every bundle cost an allocation and a
//! formatting pass each.

use std::borrow::Cow;
use std::fmt;

/// Steps held without allocating: a message holding a document holding a
/// contained resource is three steps deep.
const INLINE: usize = 3;

/// A location in the input (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Loc<'a> {
    /// The type of the resource at the root, e.g. `Bundle`.
    root: Cow<'a, str>,
    steps: Steps,
}

/// The steps from the root: each an index shifted left by one, with the
/// low bit set for a contained resource and clear for a bundle entry.
#[derive(Debug, Clone)]
enum Steps {
    Inline { len: u8, steps: [usize; INLINE] },
    Heap(Vec<usize>),
}

impl<'a> Loc<'a> {
    /// The root resource, named by its type.
    pub fn root(rtype: Cow<'a, str>) -> Self {
        Loc {
            root: rtype,
            steps: Steps::Inline {
                len: 0,
                steps: [0; INLINE],
            },
        }
    }

    /// The resource of this bundle's `i`-th entry.
    pub fn entry(&self, i: usize) -> Self {
        self.step(i << 1)
    }

    /// This resource's `i`-th contained resource.
    pub fn contained(&self, i: usize) -> Self {
        self.step(i << 1 | 1)
    }

    fn step(&self, step: usize) -> Self {
        let steps = match &self.steps {
            Steps::Inline { len, steps } if usize::from(*len) < INLINE => {
                let mut steps = *steps;
                steps[usize::from(*len)] = step;
                Steps::Inline {
                    len: len + 1,
                    steps,
                }
            }
            other => {
                let mut v = other.as_slice().to_vec();
                v.push(step);
                Steps::Heap(v)
            }
        };
        Loc {
            root: self.root.clone(),
            steps,
        }
    }
}

impl Steps {
    fn as_slice(&self) -> &[usize] {
        match self {
            Steps::Inline { len, steps } => &steps[..usize::from(*len)],
            Steps::Heap(v) => v,
        }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        for step in self.steps.as_slice() {
            let i = step >> 1;
            if step & 1 == 0 {
                write!(f, ".entry[{i}].resource")?;
            } else {
                write!(f, ".contained[{i}]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_read_as_fhir_paths_at_any_depth() {
        let root = Loc::root(Cow::Borrowed("Bundle"));
        assert_eq!(root.to_string(), "Bundle");
        let c = root.entry(2).contained(0);
        assert_eq!(c.to_string(), "Bundle.entry[2].resource.contained[0]");
        // Deeper than the inline steps: the path goes on the heap.
        let deep = c.entry(1).entry(7).contained(3);
        assert_eq!(
            deep.to_string(),
            "Bundle.entry[2].resource.contained[0].entry[1].resource\
             .entry[7].resource.contained[3]"
        );
        // The parent is unchanged by its children.
        assert_eq!(c.to_string(), "Bundle.entry[2].resource.contained[0]");
    }
}
