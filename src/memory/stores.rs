//! The engine's memory stores: named [`MemoryStore`]s in the loaded model's vector space, and the
//! memory file that holds them all (`--memory-path`, `EchoEngine.create({ memoryPath })`).
//!
//! File format: magic `ECHOMEMS`, version (u32), the number of stores (u32), then for each its
//! name and its export (each a u32 length and the bytes; see `MemoryStore::export`). Importing a
//! store of another space (memories another model embedded) embeds its texts again with this
//! model, one model pass per memory, keeping ids and metadata: spaces never mix.

use std::collections::BTreeMap;

use super::store::{Hit, Memory, MemoryStore};
use super::Embedder;
use crate::error::{Error, Result};
use crate::generate::Session;

/// The store calls use when none is named.
pub const DEFAULT_STORE: &str = "default";

const MAGIC: &[u8; 8] = b"ECHOMEMS";
const VERSION: u32 = 1;
const SINGLE_MAGIC: &[u8; 8] = b"ECHOMEM\0";

/// What an import did to one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub store: String,
    pub memories: usize,
    /// The memories came from another model and were embedded again.
    pub reembedded: bool,
}

pub struct Stores {
    embedder: Embedder,
    stores: BTreeMap<String, MemoryStore>,
}

impl Stores {
    pub fn new(embedder: Embedder) -> Stores {
        Stores { embedder, stores: BTreeMap::new() }
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The stores that exist (a store exists once something was remembered or imported into it).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    /// Store `name` (None if it does not exist yet); `InvalidOptions` for a malformed name.
    pub fn get(&self, name: &str) -> Result<Option<&MemoryStore>> {
        check_name(name)?;
        Ok(self.stores.get(name))
    }

    fn get_or_create(&mut self, name: &str) -> Result<&mut MemoryStore> {
        check_name(name)?;
        if !self.stores.contains_key(name) {
            let store = MemoryStore::new(self.embedder.space(), self.embedder.dim())?;
            self.stores.insert(name.to_string(), store);
        }
        Ok(self.stores.get_mut(name).unwrap())
    }

    pub fn remember(&mut self, session: &mut Session, name: &str, text: &str, metadata: &str) -> Result<u64> {
        check_name(name)?;
        let vector = self.embedder.embed(session, text)?;
        self.get_or_create(name)?.remember(text, metadata, &vector)
    }

    /// The `k` best memories of store `name` for `query` (none if the store does not exist).
    pub fn recall(&mut self, session: &mut Session, name: &str, query: &str, k: usize) -> Result<Vec<Hit>> {
        let Some(store) = self.get(name)? else { return Ok(Vec::new()) };
        if store.is_empty() {
            return Ok(Vec::new());
        }
        let vector = self.embedder.embed(session, query)?;
        self.stores[name].recall(&vector, query, k)
    }

    pub fn forget(&mut self, name: &str, id: u64) -> Result<bool> {
        Ok(self.get(name)?.is_some() && self.stores.get_mut(name).unwrap().forget(id))
    }

    /// `(total, memories)` of store `name`, oldest first.
    pub fn list(&self, name: &str, offset: usize, limit: usize) -> Result<(usize, Vec<&Memory>)> {
        Ok(self.get(name)?.map_or((0, Vec::new()), |s| s.list(offset, limit)))
    }

    /// Store `name`'s export (an empty store's if it does not exist), or with no name the file of
    /// every store.
    pub fn export(&self, name: Option<&str>) -> Result<Vec<u8>> {
        if let Some(name) = name {
            return self.or_empty(name, MemoryStore::export);
        }
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.stores.len() as u32).to_le_bytes());
        for (name, store) in &self.stores {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, &store.export());
        }
        Ok(out)
    }

    /// Store `name`'s export header (an empty store's if it does not exist).
    pub fn header(&self, name: &str) -> Result<Vec<u8>> {
        self.or_empty(name, MemoryStore::header)
    }

    /// `f` of store `name`, or of an empty store of this space if there is none.
    fn or_empty(&self, name: &str, f: fn(&MemoryStore) -> Vec<u8>) -> Result<Vec<u8>> {
        match self.get(name)? {
            Some(store) => Ok(f(store)),
            None => Ok(f(&MemoryStore::new(self.embedder.space(), self.embedder.dim())?)),
        }
    }

    /// Reads a store's export into store `name` (default: [`DEFAULT_STORE`]), or a memory file
    /// into the stores it names (`name` must then be None); each store read replaces the store of
    /// that name. Nothing changes unless every part is valid.
    pub fn import(&mut self, session: &mut Session, bytes: &[u8], name: Option<&str>) -> Result<Vec<Imported>> {
        let parts = if bytes.starts_with(SINGLE_MAGIC) {
            let name = name.unwrap_or(DEFAULT_STORE);
            check_name(name)?;
            vec![(name.to_string(), MemoryStore::parse(bytes)?)]
        } else if name.is_some() {
            return Err(Error::invalid_options(
                "a store name was given but the bytes are not one store's export (a memory file holds its own store names)",
            ));
        } else {
            parse_file(bytes)?
        };
        let mut ready = Vec::with_capacity(parts.len());
        for (name, store) in parts {
            let reembedded = store.space() != self.embedder.space();
            let store = if reembedded { self.rebase(session, &store)? } else { store };
            ready.push((name, store, reembedded));
        }
        Ok(ready
            .into_iter()
            .map(|(name, store, reembedded)| {
                let memories = store.len();
                self.stores.insert(name.clone(), store);
                Imported { store: name, memories, reembedded }
            })
            .collect())
    }

    /// These stores for another model (`embedder`, `session` holding that model): every memory
    /// embedded again.
    pub fn for_model(&self, embedder: Embedder, session: &mut Session) -> Result<Stores> {
        let mut stores = Stores::new(embedder);
        for (name, store) in &self.stores {
            let store = stores.rebase(session, store)?;
            stores.stores.insert(name.clone(), store);
        }
        Ok(stores)
    }

    fn rebase(&self, session: &mut Session, store: &MemoryStore) -> Result<MemoryStore> {
        let e = &self.embedder;
        store.reembed(e.space(), e.dim(), &mut |text| e.embed(session, text))
    }

    /// Heap bytes held by every store.
    pub fn bytes(&self) -> usize {
        self.stores.values().map(MemoryStore::bytes).sum()
    }
}

/// 1 to 64 characters: letters, digits, `-`, `_` and `.` (a store's name is also the name of its
/// IndexedDB object store).
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        return Ok(());
    }
    Err(Error::invalid_options(format!(
        "store '{name}': a store name has 1 to 64 characters, each a letter, a digit, '-', '_' or '.'"
    )))
}

fn parse_file(bytes: &[u8]) -> Result<Vec<(String, MemoryStore)>> {
    let corrupt = |why: &str| Error::invalid_options(format!("not a valid memory file: {why}"));
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(corrupt("it starts like neither a memory file nor a store's export"));
    }
    let u32_at = |pos: usize| -> Result<u32> {
        let b = bytes.get(pos..pos + 4).ok_or_else(|| corrupt("it ends early"))?;
        Ok(u32::from_le_bytes(b.try_into().unwrap()))
    };
    let version = u32_at(8)?;
    if version != VERSION {
        return Err(corrupt(&format!("format version {version}; this engine reads version {VERSION}")));
    }
    let count = u32_at(12)?;
    let mut pos = 16;
    let sized = |pos: &mut usize| -> Result<&[u8]> {
        let n = u32_at(*pos)? as usize;
        let part = bytes.get(*pos + 4..*pos + 4 + n).ok_or_else(|| corrupt("it ends early"))?;
        *pos += 4 + n;
        Ok(part)
    };
    let mut stores = Vec::new();
    for _ in 0..count {
        let name = std::str::from_utf8(sized(&mut pos)?).map_err(|_| corrupt("a store name is not UTF-8"))?.to_string();
        check_name(&name)?;
        if stores.iter().any(|(n, _)| *n == name) {
            return Err(corrupt(&format!("store '{name}' appears twice")));
        }
        let store = MemoryStore::parse(sized(&mut pos)?)?;
        stores.push((name, store));
    }
    if pos != bytes.len() {
        return Err(corrupt(&format!("{} bytes follow the last store", bytes.len() - pos)));
    }
    Ok(stores)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}
