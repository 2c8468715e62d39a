//! The engine under the store: ordered trees of byte keys, with transactions over several of
//! them. Two engines implement it: sled (one process, a local directory; the default) and
//! DynamoDB ([`super::dynamo`]: several replicas on one table).
//!
//! The store's code above this module ([`super::Store`] and its `impl` files) is written once,
//! against [`Tree`] and [`TxTree`], so both engines keep the same key layouts, the same audit
//! chain and the same decisions: the store's tests run on both (`tests/core/store.rs`).
//!
//! What each engine guarantees:
//!
//! | | sled | DynamoDB |
//! |---|---|---|
//! | a transaction | serializable: sled runs it under its process-wide write lock and retries the closure on a conflict | serializable by optimistic concurrency: every item the closure read is checked unchanged (its version token) in the same `TransactWriteItems` that writes; a cancelled transaction runs the closure again ([`super::dynamo`]) |
//! | a transaction's size | any | at most 100 items ([`Backend::max_transaction_items`]); the store splits batches accordingly |
//! | durability | at [`super::Store::flush`] | when the write returns |
//! | a scan | a snapshot-free iterator over the tree | pages of `Query`, strongly consistent, lazily fetched |

use std::ops::{Bound, Deref, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use super::dynamo::{DynTx, DynamoIter, DynamoKv};
use super::{sled_error, StoreError};

/// A value or key read from a tree: sled's shared buffer, or bytes DynamoDB returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bytes {
    Sled(sled::IVec),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Sled(v) => v,
            Bytes::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// The engine a store runs on.
pub(super) enum Backend {
    Sled(sled::Db),
    Dynamo(Arc<DynamoKv>),
}

impl Backend {
    /// The most items one transaction may write and check (DynamoDB's `TransactWriteItems`
    /// takes 100); `None`: no limit.
    pub(super) fn max_transaction_items(&self) -> Option<usize> {
        match self {
            Backend::Sled(_) => None,
            Backend::Dynamo(_) => Some(super::dynamo::MAX_TRANSACTION_ITEMS),
        }
    }

    /// The largest value one key may hold (DynamoDB's item limit); `None`: no limit.
    pub(super) fn max_value_bytes(&self) -> Option<usize> {
        match self {
            Backend::Sled(_) => None,
            Backend::Dynamo(_) => Some(super::dynamo::MAX_VALUE_BYTES),
        }
    }

    /// The backend's name, as `/healthz` and the logs say it.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Backend::Sled(_) => "sled",
            Backend::Dynamo(_) => "dynamodb",
        }
    }
}

/// One tree: a sled tree, or one partition (`pk` = the tree's name) of the DynamoDB table.
#[derive(Clone)]
pub(super) enum Tree {
    Sled {
        tree: sled::Tree,
        path: Arc<Path>,
    },
    Dynamo {
        kv: Arc<DynamoKv>,
        name: &'static str,
    },
}

/// The value a compare-and-swap found instead of the expected one.
pub(super) struct CasMismatch {
    pub(super) current: Option<Bytes>,
}

impl Tree {
    pub(super) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, StoreError> {
        match self {
            Tree::Sled { tree, path } => tree
                .get(key)
                .map(|v| v.map(Bytes::Sled))
                .map_err(|e| sled_error(path, e)),
            Tree::Dynamo { kv, name } => Ok(kv.get(name, key.as_ref())?.map(|(v, _)| v)),
        }
    }

    pub(super) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), StoreError> {
        match self {
            Tree::Sled { tree, path } => tree
                .insert(key.as_ref(), value.as_ref())
                .map(|_| ())
                .map_err(|e| sled_error(path, e)),
            Tree::Dynamo { kv, name } => kv.put(name, key.as_ref(), value.as_ref()),
        }
    }

    /// Removes a key; whether it was there.
    pub(super) fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        match self {
            Tree::Sled { tree, path } => tree
                .remove(key)
                .map(|old| old.is_some())
                .map_err(|e| sled_error(path, e)),
            Tree::Dynamo { kv, name } => kv.delete(name, key.as_ref()),
        }
    }

    /// Writes `new` (or removes the key, for `None`) only if the key holds `old` (`None`:
    /// absent); otherwise returns what it holds.
    pub(super) fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), CasMismatch>, StoreError> {
        match self {
            Tree::Sled { tree, path } => match tree.compare_and_swap(key, old, new) {
                Ok(Ok(())) => Ok(Ok(())),
                Ok(Err(cas)) => Ok(Err(CasMismatch {
                    current: cas.current.map(Bytes::Sled),
                })),
                Err(e) => Err(sled_error(path, e)),
            },
            Tree::Dynamo { kv, name } => kv.compare_and_swap(name, key.as_ref(), old, new),
        }
    }

    /// Every entry, in key order (`.rev()` for the reverse).
    pub(super) fn iter(&self) -> Iter {
        self.range::<&[u8], _>(..)
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub(super) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        match self {
            Tree::Sled { tree, path } => Iter::Sled {
                iter: tree.scan_prefix(prefix),
                path: path.clone(),
            },
            Tree::Dynamo { kv, name } => {
                let prefix = prefix.as_ref().to_vec();
                let upper = match prefix_successor(&prefix) {
                    Some(succ) => Bound::Excluded(succ),
                    None => Bound::Unbounded,
                };
                Iter::Dynamo(DynamoIter::new(
                    kv.clone(),
                    name,
                    Bound::Included(prefix),
                    upper,
                ))
            }
        }
    }

    /// The entries with keys in `range`, in key order.
    pub(super) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        match self {
            Tree::Sled { tree, path } => {
                let owned = (
                    owned_bound(range.start_bound()),
                    owned_bound(range.end_bound()),
                );
                Iter::Sled {
                    iter: tree.range::<Vec<u8>, _>(owned),
                    path: path.clone(),
                }
            }
            Tree::Dynamo { kv, name } => Iter::Dynamo(DynamoIter::new(
                kv.clone(),
                name,
                owned_bound(range.start_bound()),
                owned_bound(range.end_bound()),
            )),
        }
    }

    /// The entry with the smallest key.
    pub(super) fn first(&self) -> Result<Option<(Bytes, Bytes)>, StoreError> {
        self.iter().next().transpose()
    }
}

fn owned_bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key starting with `prefix`; `None` when there is
/// none (the prefix is empty or all `0xff`).
pub(super) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut succ = prefix.to_vec();
    while let Some(last) = succ.pop() {
        if last < 0xff {
            succ.push(last + 1);
            return Some(succ);
        }
    }
    None
}

/// Entries of a tree, in key order or (`.rev()`) the reverse.
pub(super) enum Iter {
    Sled { iter: sled::Iter, path: Arc<Path> },
    Dynamo(DynamoIter),
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Sled { iter, path } => iter.next().map(|item| {
                item.map(|(k, v)| (Bytes::Sled(k), Bytes::Sled(v)))
                    .map_err(|e| sled_error(path, e))
            }),
            Iter::Dynamo(iter) => iter.next_in(true),
        }
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Sled { iter, path } => iter.next_back().map(|item| {
                item.map(|(k, v)| (Bytes::Sled(k), Bytes::Sled(v)))
                    .map_err(|e| sled_error(path, e))
            }),
            Iter::Dynamo(iter) => iter.next_in(false),
        }
    }
}

// -------------------------------------------------------------------------------------------
// Transactions
// -------------------------------------------------------------------------------------------

/// Why a transaction's closure stopped.
pub(super) enum TxError<E> {
    /// The closure gave up: the transaction writes nothing and returns `E`.
    Abort(E),
    /// A concurrent write met this one (sled): the engine runs the closure again.
    Conflict,
    /// The engine could not read or write.
    Storage(StoreError),
}

/// What a transaction's closure returns.
pub(super) type TxResult<T, E = StoreError> = Result<T, TxError<E>>;

/// A read or write inside a transaction failed: a conflict (the closure runs again) or storage.
pub(super) enum TxOpError {
    Conflict,
    Storage(StoreError),
}

impl<E> From<TxOpError> for TxError<E> {
    fn from(e: TxOpError) -> Self {
        match e {
            TxOpError::Conflict => TxError::Conflict,
            TxOpError::Storage(e) => TxError::Storage(e),
        }
    }
}

/// Aborts a transaction with a store error.
pub(super) fn abort<T, E: From<StoreError>>(e: StoreError) -> TxResult<T, E> {
    Err(TxError::Abort(E::from(e)))
}

/// One tree inside a transaction.
#[derive(Clone, Copy)]
pub(super) enum TxTree<'a> {
    Sled {
        tree: &'a TransactionalTree,
        path: &'a Path,
    },
    Dynamo {
        tx: &'a DynTx,
        name: &'static str,
    },
}

impl TxTree<'_> {
    fn sled_op<T>(path: &Path, r: Result<T, UnabortableTransactionError>) -> Result<T, TxOpError> {
        r.map_err(|e| match e {
            UnabortableTransactionError::Conflict => TxOpError::Conflict,
            UnabortableTransactionError::Storage(e) => TxOpError::Storage(sled_error(path, e)),
        })
    }

    pub(super) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, TxOpError> {
        match self {
            TxTree::Sled { tree, path } => {
                Self::sled_op(path, tree.get(key)).map(|v| v.map(Bytes::Sled))
            }
            TxTree::Dynamo { tx, name } => tx.get(name, key.as_ref()).map_err(TxOpError::Storage),
        }
    }

    pub(super) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), TxOpError> {
        match self {
            TxTree::Sled { tree, path } => {
                Self::sled_op(path, tree.insert(key.as_ref(), value.as_ref())).map(|_| ())
            }
            TxTree::Dynamo { tx, name } => {
                tx.put(name, key.as_ref(), Some(value.as_ref().to_vec()));
                Ok(())
            }
        }
    }

    /// Removes a key; what it held.
    pub(super) fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, TxOpError> {
        match self {
            TxTree::Sled { tree, path } => {
                Self::sled_op(path, tree.remove(key.as_ref())).map(|v| v.map(Bytes::Sled))
            }
            TxTree::Dynamo { tx, name } => {
                let old = tx.get(name, key.as_ref()).map_err(TxOpError::Storage)?;
                tx.put(name, key.as_ref(), None);
                Ok(old)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_of_a_prefix_bounds_exactly_its_keys() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
