// The embedded store's redb file: its layout (table "kv": key → 8-byte big-endian
// mod_revision + value; table "meta": format tag and the global revision), opening
// it (creating the directory 0700, refusing files that are damaged or not ours,
// never resetting them), loading every record, and committing one batch with fsync.

use std::collections::{BTreeMap, HashMap};
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::state::Entry;
use crate::store::{Revision, StoreError};

/// File name inside the store directory.
pub const FILE_NAME: &str = "ipam.redb";

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_FORMAT: &str = "format";
const META_REVISION: &str = "revision";
/// Written once when the file is created; an open checks it, so a redb file of
/// another program is refused instead of being written into.
const FORMAT_TAG: &[u8] = b"podroute-ipam/1";
/// Bytes of the mod_revision in front of each value.
const REVISION_LEN: usize = 8;

/// The open database; used by the writer thread only.
pub(super) struct File {
    db: Database,
    path: PathBuf,
}

/// What the file held when opened.
pub(super) struct Loaded {
    pub file: File,
    pub kvs: BTreeMap<String, Entry>,
    pub revision: Revision,
}

impl File {
    /// Opens (or creates) `<dir>/ipam.redb` and reads every record.
    pub(super) fn open(dir: &Path) -> Result<Loaded, StoreError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let path = dir.join(FILE_NAME);
        let db = redb::Builder::new()
            // A file damaged outside redb then fails to open with Corrupted
            // instead of possibly panicking later; the store is small, the read cheap.
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| redb_error(&path, e))?;
        let file = File { db, path };
        file.init_meta()?;
        // A new file's directory entry must be durable too, or a power cut
        // soon after the first start could lose the file, and the next start
        // would begin again from an empty store.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let (kvs, revision) = file.load()?;
        Ok(Loaded {
            file,
            kvs,
            revision,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one batch of changes (None deletes) and the new revision in one redb
    /// transaction; returns once it is on disk.
    pub(super) fn commit(
        &self,
        writes: &HashMap<String, Option<Entry>>,
        revision: Revision,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(self.err())?;
        // The default, spelled out: commit() returns only after fsync.
        txn.set_durability(Durability::Immediate)
            .map_err(self.err())?;
        {
            let mut kv = txn.open_table(KV).map_err(self.err())?;
            let mut buf = Vec::new();
            for (key, entry) in writes {
                match entry {
                    Some(entry) => {
                        buf.clear();
                        buf.extend_from_slice(&entry.mod_revision.to_be_bytes());
                        buf.extend_from_slice(&entry.value);
                        kv.insert(key.as_str(), buf.as_slice())
                            .map_err(self.err())?;
                    }
                    None => {
                        kv.remove(key.as_str()).map_err(self.err())?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(self.err())?;
            meta.insert(META_REVISION, revision.to_be_bytes().as_slice())
                .map_err(self.err())?;
        }
        txn.commit().map_err(self.err())
    }

    /// Tags a new file as ours, or checks the tag of an existing one.
    fn init_meta(&self) -> Result<(), StoreError> {
        let read = self.db.begin_read().map_err(self.err())?;
        let tables: Vec<String> = read
            .list_tables()
            .map_err(self.err())?
            .map(|t| t.name().to_string())
            .collect();
        if tables.iter().any(|t| t == META.name()) {
            let meta = read.open_table(META).map_err(self.err())?;
            let format = meta.get(META_FORMAT).map_err(self.err())?;
            return match format {
                Some(tag) if tag.value() == FORMAT_TAG => Ok(()),
                Some(tag) => Err(self.corrupt(format!(
                    "format {:?} is not {:?}",
                    String::from_utf8_lossy(tag.value()),
                    String::from_utf8_lossy(FORMAT_TAG)
                ))),
                None => Err(self.corrupt("the format tag is missing".into())),
            };
        }
        if !tables.is_empty() {
            return Err(self.corrupt(format!(
                "a redb database of another program (tables {tables:?})"
            )));
        }
        drop(read);
        let txn = self.db.begin_write().map_err(self.err())?;
        {
            let mut meta = txn.open_table(META).map_err(self.err())?;
            meta.insert(META_FORMAT, FORMAT_TAG).map_err(self.err())?;
            meta.insert(META_REVISION, 0i64.to_be_bytes().as_slice())
                .map_err(self.err())?;
            txn.open_table(KV).map_err(self.err())?;
        }
        txn.commit().map_err(self.err())
    }

    fn load(&self) -> Result<(BTreeMap<String, Entry>, Revision), StoreError> {
        let read = self.db.begin_read().map_err(self.err())?;
        let meta = read.open_table(META).map_err(self.err())?;
        let revision = match meta.get(META_REVISION).map_err(self.err())? {
            Some(bytes) => decode_revision(bytes.value())
                .ok_or_else(|| self.corrupt("the revision is not 8 bytes".into()))?,
            None => return Err(self.corrupt("the revision is missing".into())),
        };
        let table = read.open_table(KV).map_err(self.err())?;
        let mut kvs = BTreeMap::new();
        for item in table.iter().map_err(self.err())? {
            let (key, value) = item.map_err(self.err())?;
            let (key, value) = (key.value(), value.value());
            let mod_revision = decode_revision(value)
                .filter(|r| (1..=revision).contains(r))
                .ok_or_else(|| self.corrupt(format!("record {key:?} has no valid mod_revision")))?;
            let value = value[REVISION_LEN..].to_vec();
            kvs.insert(
                key.to_string(),
                Entry {
                    value,
                    mod_revision,
                },
            );
        }
        Ok((kvs, revision))
    }

    /// Maps a redb error of this file (for `map_err`).
    fn err<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StoreError + '_ {
        move |e| redb_error(&self.path, e)
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

/// The big-endian revision at the start of `bytes`, if there are 8 bytes.
fn decode_revision(bytes: &[u8]) -> Option<Revision> {
    let head = bytes.get(..REVISION_LEN)?;
    Some(Revision::from_be_bytes(head.try_into().ok()?))
}

/// Sorts redb's errors into ours: damage is Corrupt, a held lock is a clear Io error.
fn redb_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let path = path.to_path_buf();
    let io = |kind, msg: String| StoreError::Io {
        path: path.clone(),
        source: io::Error::new(kind, msg),
    };
    match e.into() {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => io(
            io::ErrorKind::ResourceBusy,
            "the file is locked: another process (or store) has it open; \
             stop it or use another directory"
                .into(),
        ),
        // redb reports a file that is not redb at all (bad magic, too short) this way.
        redb::Error::Io(source)
            if matches!(
                source.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Corrupt {
                path,
                reason: source.to_string(),
            }
        }
        redb::Error::Io(source) => StoreError::Io { path, source },
        redb::Error::Corrupted(reason) => StoreError::Corrupt { path, reason },
        redb::Error::UpgradeRequired(version) => StoreError::Corrupt {
            path,
            reason: format!("redb file format {version} needs an upgrade with redb's tools"),
        },
        e @ (redb::Error::RepairAborted
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }) => StoreError::Corrupt {
            path,
            reason: e.to_string(),
        },
        e => io(io::ErrorKind::Other, e.to_string()),
    }
}
